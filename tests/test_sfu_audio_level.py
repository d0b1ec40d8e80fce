"""Audio levels (RFC 6464) read on the producer, and the active-speaker detector.

Real producers on real (forwarding) receivers; packets are synthetic, built and
parsed by aiortc's own RTP code with the extension id a publisher negotiated.
"""

from __future__ import annotations

import itertools

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.active_speaker import ActiveSpeakerDetector, level_to_amplitude
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.audio_level import AUDIO_LEVEL_URI, AudioLevelMeter
from sfu.producer import Producer
from tests.sfu_support import WireRecorder, make_producer, publish, rtp

OPUS_PT = 111
FRAME = 960  # 20 ms at 48 kHz


def extension_map(audio_level_id: int) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=audio_level_id, uri=AUDIO_LEVEL_URI),
            ]
        )
    )
    return extensions


def audio_packet(seq: int, ts: int, level: int | None, voice: bool = False) -> RtpPacket:
    packet = rtp(seq, ts, b"\xfc\x01\x02", payload_type=OPUS_PT)
    if level is not None:
        packet.extensions.audio_level = (voice, level)
    return packet


class Publisher:
    """One audio producer fed 20 ms packets of a chosen level."""

    def __init__(self, producer: Producer, receiver: ForwardingReceiver) -> None:
        self.producer, self.receiver = producer, receiver
        self.seq = itertools.count(1)
        self.ts = 0

    async def send(self, levels: list[int | None], step: int = FRAME) -> None:
        for level in levels:
            self.ts += step
            await publish(self.receiver, audio_packet(next(self.seq), self.ts, level))


async def audio_publisher(producer_id: str) -> Publisher:
    producer, receiver = await make_producer(WireRecorder(), kind="audio", producer_id=producer_id)
    return Publisher(producer, receiver)


# ----------------------------------------------------------------- reading the level


async def test_the_level_and_voice_bit_are_read_from_the_negotiated_extension_id() -> None:
    publisher = await audio_publisher("pr_a")
    for negotiated in (1, 2, 14):  # Chromium's id, aiortc's, any other
        wire = extension_map(negotiated)
        packet = audio_packet(1, 960, 23, voice=True)
        packet.extensions.mid = "0"
        parsed = RtpPacket.parse(packet.serialize(wire), wire)
        assert parsed.extensions.audio_level == (True, 23)
        # Another id than the one negotiated is not taken for a level.
        other = RtpPacket.parse(packet.serialize(wire), extension_map(negotiated % 14 + 1))
        assert other.extensions.audio_level is None
        await publish(publisher.receiver, parsed)
        interval = publisher.producer.audio_meter.take()  # type: ignore[union-attr]
        assert (interval.loudest, interval.packets, interval.voiced_ms) == (23, 1, 20.0)


async def test_the_meter_counts_time_from_timestamps_not_packets() -> None:
    publisher = await audio_publisher("pr_a")
    meter = publisher.producer.audio_meter
    assert meter is not None
    await publisher.send([10, 10, 90, 90])  # 40 ms loud, 40 ms quiet
    await publisher.send([127], step=20 * FRAME)  # a DTX gap: the packet is 20 ms, not 400
    await publisher.send([30], step=2 * FRAME)  # 40 ms packets
    interval = meter.take()
    assert interval.packets == 6
    assert interval.heard_ms == 20 * 4 + 20 + 40
    assert interval.active_ms == 40 + 40
    assert interval.loudest == 10
    assert meter.take().packets == 0  # the next interval starts empty


async def test_packets_without_a_level_and_paused_producers_are_not_metered() -> None:
    publisher = await audio_publisher("pr_a")
    await publisher.send([None, None])
    assert publisher.producer.audio_meter.packets_with_level == 0  # type: ignore[union-attr]
    publisher.producer.pause()
    await publisher.send([5, 5])
    assert publisher.producer.audio_meter.take().packets == 0  # type: ignore[union-attr]
    video, _ = await make_producer(WireRecorder(), kind="video")
    assert video.audio_meter is None


def test_the_meter_alone_takes_wrapping_timestamps() -> None:
    meter = AudioLevelMeter()
    meter.observe(False, 20, 0xFFFFFFFF - 479, 48000)
    meter.observe(False, 20, 480, 48000)  # wrapped: 960 ticks later
    assert meter.take().heard_ms == 20 + 20


# ----------------------------------------------------------------- the detector

INTERVAL = 0.4
LOUD, TALK, QUIET, SILENT = 13, 25, 50, 127  # -dBov


async def run(
    detector: ActiveSpeakerDetector, publishers: list[Publisher], levels: list[list[int]], at: float
) -> list[str]:
    """One 400 ms interval: each publisher sends its 20 levels; the detector updates."""
    for publisher, sequence in zip(publishers, levels, strict=True):
        await publisher.send(sequence)
    speakers = detector.update([p.producer for p in publishers], at)
    return [s.producer_id for s in speakers]


def steady(level: int) -> list[int]:
    return [level] * 20


async def test_the_loud_one_speaks_and_the_silent_and_quiet_do_not() -> None:
    detector = ActiveSpeakerDetector()
    publishers = [await audio_publisher(n) for n in ("pr_loud", "pr_silent", "pr_quiet")]
    detector.update([p.producer for p in publishers], 0.0)
    ids = await run(detector, publishers, [steady(LOUD), steady(SILENT), steady(QUIET)], INTERVAL)
    assert ids == ["pr_loud"]  # within one interval
    assert detector.level_of("pr_loud") > level_to_amplitude(35)
    assert detector.level_of("pr_silent") == 0.0
    for i in range(2, 10):
        ids = await run(
            detector, publishers, [steady(LOUD), steady(SILENT), steady(QUIET)], i * INTERVAL
        )
        assert ids == ["pr_loud"]


async def test_a_short_sound_in_an_interval_is_no_speech() -> None:
    detector = ActiveSpeakerDetector()
    (cough,) = [await audio_publisher("pr_cough")]
    detector.update([cough.producer], 0.0)
    # 7 loud packets of 20 (35 %): under the 40 % an interval needs.
    for i in range(1, 6):
        assert await run(detector, [cough], [[LOUD] * 7 + [SILENT] * 13], i * INTERVAL) == []
    # 9 of 20 (45 %) is speech.
    assert await run(detector, [cough], [[LOUD] * 9 + [SILENT] * 11], 6 * INTERVAL) == ["pr_cough"]


async def test_pauses_between_words_do_not_flap_and_silence_ends_it_within_2_s() -> None:
    detector = ActiveSpeakerDetector()
    (talker,) = [await audio_publisher("pr_talk")]
    detector.update([talker.producer], 0.0)
    at = INTERVAL
    # Words and pauses: every other interval has too little speech to count.
    words = [steady(TALK), [TALK] * 4 + [SILENT] * 16]
    for i in range(11):  # ends with words
        assert await run(detector, [talker], [words[i % 2]], at) == ["pr_talk"], i
        at += INTERVAL
    released = None
    for i in range(10):
        if await run(detector, [talker], [steady(SILENT)], at) == []:
            released = i + 1
            break
        at += INTERVAL
    # Not at the first silent interval (that is a pause), and within 2 s.
    assert released is not None and 2 <= released and released * INTERVAL <= 2.0


async def test_the_order_holds_between_similar_speakers_and_follows_a_louder_one() -> None:
    detector = ActiveSpeakerDetector()
    a, b = await audio_publisher("pr_a"), await audio_publisher("pr_b")
    detector.update([a.producer, b.producer], 0.0)
    assert await run(detector, [a, b], [steady(20), steady(22)], INTERVAL) == ["pr_a", "pr_b"]
    # b is now 1 dB louder than a, then 2: within the 3 dB margin, the order stays.
    assert await run(detector, [a, b], [steady(21), steady(20)], 2 * INTERVAL) == ["pr_a", "pr_b"]
    assert await run(detector, [a, b], [steady(21), steady(19)], 3 * INTERVAL) == ["pr_a", "pr_b"]
    # 9 dB louder: b goes first.
    at = 4 * INTERVAL
    for _ in range(3):
        ids = await run(detector, [a, b], [steady(25), steady(16)], at)
        at += INTERVAL
    assert ids == ["pr_b", "pr_a"]
    assert [s.producer_id for s in detector.loudest(1)] == ["pr_b"]


async def test_a_paused_producer_never_speaks_and_resumes_from_silence() -> None:
    detector = ActiveSpeakerDetector()
    muted, other = await audio_publisher("pr_muted"), await audio_publisher("pr_other")
    producers = [muted.producer, other.producer]
    detector.update(producers, 0.0)
    assert await run(detector, [muted, other], [steady(LOUD), steady(SILENT)], 0.4) == ["pr_muted"]
    muted.producer.pause()
    # Loud packets keep arriving (a client that ignores its mute): no speaker, at once.
    assert await run(detector, [muted, other], [steady(LOUD), steady(SILENT)], 0.8) == []
    assert detector.level_of("pr_muted") == 0.0
    await muted.producer.resume()
    await run(detector, [muted, other], [[SILENT] * 20, steady(SILENT)], 1.2)
    assert detector.level_of("pr_muted") == 0.0  # nothing left over from before the mute


async def test_closed_and_gone_producers_are_forgotten() -> None:
    detector = ActiveSpeakerDetector()
    a, b = await audio_publisher("pr_a"), await audio_publisher("pr_b")
    assert await run(detector, [a, b], [steady(LOUD), steady(LOUD)], 0.4) != []
    a.producer.close()
    ids = await run(detector, [a, b], [steady(LOUD), steady(LOUD)], 0.8)
    assert ids == ["pr_b"]
    assert detector.update([], 1.2) == []
    assert detector.level_of("pr_b") == 0.0
