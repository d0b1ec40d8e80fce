"""The recorder's inside, run in-process: RTP -> decoded media, audio placement, tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from recording.mixer import AudioMixer
from recording.options import RecordingOptions
from recording.protocol import AddParticipant, AddSource, CodecSpec, RemoveSource
from recording.session import RecordingSession
from recording.sources import AudioSource, Timeline, VideoSource
from recording.synthetic import OPUS, VP8, audio_packets, pattern_frame, video_packets

RATE = 48000


def parse(data: bytes) -> RtpPacket:
    return RtpPacket.parse(data)


def red(i: int) -> np.ndarray:
    return pattern_frame((220, 30, 30), i, 320, 240)


H264 = CodecSpec(
    "video/H264", 90000, None, 99, {"packetization-mode": "1", "profile-level-id": "42e01f"}
)


@pytest.mark.parametrize("codec", [VP8, H264], ids=["vp8", "h264"])
def test_video_source_reassembles_and_decodes(codec: CodecSpec) -> None:
    packets = video_packets("cam", red, duration_s=1.0, codec=codec)
    source = VideoSource("cam", codec)
    for p in packets:
        source.push(parse(p.data), p.at)
    # aiortc's jitter buffer hands a frame over when the next one starts: all but the last.
    assert source.stats.frames == 14
    assert source.size == (320, 240)
    rgb = source.rgb(160, 120)
    assert rgb is not None and rgb.shape == (120, 160, 3)
    r, g, b = rgb[80, 80]
    assert r > 180 and g < 70 and b < 70
    assert source.rgb(160, 120) is rgb  # cached until the next picture
    assert not source.wants_keyframe


def test_video_source_without_a_keyframe_asks_for_one() -> None:
    packets = video_packets("cam", red, duration_s=1.0)
    first_ts = parse(packets[0].data).timestamp
    source = VideoSource("cam", VP8)
    for p in packets:
        if parse(p.data).timestamp != first_ts:  # the keyframe never arrives
            source.push(parse(p.data), p.at)
    assert source.stats.frames == 0
    assert source.wants_keyframe


def test_video_source_survives_reordering_inside_a_frame() -> None:
    packets = video_packets("cam", red, duration_s=0.5)
    shuffled = list(packets)
    # Swap neighbours: reordering inside frames and across frame boundaries (after the
    # first packet, which sets the jitter buffer's origin as in aiortc's receiver).
    for i in range(1, len(shuffled) - 1, 2):
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    source = VideoSource("cam", VP8)
    for p in shuffled:
        source.push(parse(p.data), p.at)
    assert source.stats.frames >= 5
    assert source.stats.decode_errors == 0


def audio_source(frequency: float = 440) -> tuple[AudioSource, AudioMixer, list]:
    mixer = AudioMixer(RATE, 1)
    source = AudioSource(
        "mic", OPUS, mixer, Timeline(0.0, RATE), late_tolerance_s=0.15, ahead_tolerance_s=0.5
    )
    return source, mixer, audio_packets("mic", frequency, duration_s=1.0)


def loudness(samples: np.ndarray) -> np.ndarray:
    """RMS per 10 ms."""
    blocks = samples[: len(samples) // 480 * 480].reshape(-1, 480).astype(np.float64)
    return np.sqrt((blocks**2).mean(axis=1))


def test_audio_is_placed_by_rtp_timestamp_despite_jitter_and_loss() -> None:
    source, mixer, packets = audio_source()
    rng = np.random.default_rng(1)
    lost = {10, 11, 12}  # 60 ms gone, from 200 ms
    for i, p in enumerate(packets):
        if i in lost:
            continue
        # The first packet takes 50 ms and sets the timeline; the others 20..100 ms: their
        # placement must follow their timestamps, not the arrival jitter.
        delay = 0.05 if i == 0 else 0.02 + rng.uniform(0, 0.08)
        source.push(parse(p.data), p.at + delay)
    out = mixer.read_until(2 * RATE)[:, 0]
    level = loudness(out)
    assert source.stats.reanchors == 0
    assert (level[:5] < 800).all()
    assert (level[6:24] > 3000).all()  # 0.05 .. 0.25 s: the tone
    assert (level[26:30] < 800).all()  # the lost 60 ms are silence, in place
    assert (level[32:104] > 3000).all()  # and the tone goes on where it belongs
    assert (level[106:] < 800).all()
    spectrum = np.abs(np.fft.rfft(out[16000:40000] * np.hanning(24000)))
    assert abs(np.fft.rfftfreq(24000, 1 / RATE)[np.argmax(spectrum)] - 440) < 3


def test_audio_reordering_and_duplicates() -> None:
    source, mixer, packets = audio_source()
    order = list(range(len(packets)))
    for i in range(5, 45, 4):
        order[i], order[i + 1] = order[i + 1], order[i]
    for i in order:
        source.push(parse(packets[i].data), packets[i].at + 0.03)
    source.push(parse(packets[20].data), packets[20].at + 0.05)  # a duplicate
    assert source.stats.dropped == 1
    out = mixer.read_until(RATE)[:, 0]
    level = loudness(out)
    assert level[5:95].max() < 2.0 * np.median(level[5:95])  # nothing doubled


def test_audio_reanchors_after_a_pause() -> None:
    source, mixer, packets = audio_source()
    for p in packets[:10]:
        source.push(parse(p.data), p.at)
    # The SFU stopped forwarding (mute) for a while: RTP time went on 0.2 s, but the
    # packets after it arrive 0.6 s later than that. They play when they arrive.
    for p in packets[20:30]:
        source.push(parse(p.data), p.at + 0.6)
    assert source.stats.reanchors == 1
    level = loudness(mixer.read_until(2 * RATE)[:, 0])
    assert (level[100:118] > 3000).all()  # 1.0 .. 1.18 s
    assert (level[22:98] < 800).all()


def test_a_sender_that_stalls_and_catches_up_leaves_no_gap() -> None:
    # A busy server or a home link holds packets back 0.4 s, then they come in a burst
    # (the sender catches up): the recording keeps them on their timestamps, no silence.
    options = RecordingOptions()
    mixer = AudioMixer(RATE, 1)
    source = AudioSource(
        "mic", OPUS, mixer, Timeline(0.0, RATE), late_tolerance_s=options.audio_late_tolerance_s
    )
    for p in audio_packets("mic", 440, duration_s=1.0):
        source.push(parse(p.data), max(p.at, 0.6) if p.at >= 0.2 else p.at)
    assert source.stats.reanchors == 0
    level = loudness(mixer.read_until(2 * RATE)[:, 0])
    assert (level[2:98] > 3000).all()  # 0.02 .. 0.98 s: the tone, unbroken


def make_session(tmp_path: Path, events: list) -> RecordingSession:
    options = RecordingOptions(width=320, height=180, thumbnail_width=0)
    return RecordingSession(tmp_path / "s.mp4", options, 0.0, events.append)


def test_session_asks_for_a_keyframe_and_shows_placeholders(tmp_path: Path) -> None:
    events: list = []
    session = make_session(tmp_path, events)
    session.command(AddParticipant("t", "Teacher"), 0.0)
    session.command(AddSource("t-cam", "video", VP8, "Teacher", participant_id="t"), 0.0)
    session.command(AddSource("s-mic", "audio", OPUS, "Student"), 0.0)
    packets = video_packets("t-cam", red, duration_s=1.0)
    first_ts = parse(packets[0].data).timestamp
    for p in packets:
        if parse(p.data).timestamp != first_ts:
            session.packet("t-cam", p.at, p.data)
    assert events == [("keyframe", "t-cam")]  # once: at most one a second
    tiles, videos = session.tiles(1.0)
    assert [t.label for t in tiles] == ["Teacher", "Student"]
    assert videos == [None, None]  # no picture yet; the student has no camera
    session.packet("nobody", 1.0, packets[0].data)
    assert session.counters.unknown_packets == 1
    session.writer.close()


def test_session_tiles_follow_sources(tmp_path: Path) -> None:
    events: list = []
    session = make_session(tmp_path, events)
    session.command(AddSource("a-cam", "video", VP8, "Anna"), 0.0)
    session.command(AddSource("b-screen", "video", VP8, "Boris: screen", screen=True), 0.0)
    for p in video_packets("a-cam", red, duration_s=0.5):
        session.packet("a-cam", p.at, p.data)
    tiles, videos = session.tiles(0.5)
    assert [(t.label, t.screen) for t in tiles] == [("Boris: screen", True), ("Anna", False)]
    assert videos[1] is session.sources["a-cam"]
    # The camera stops (no packets): after stale_video_s the tile shows the placeholder.
    assert session.tiles(0.5 + session.options.stale_video_s + 0.1)[1][1] is None
    session.command(RemoveSource("b-screen"), 1.0)
    session.command(RemoveSource("a-cam"), 1.0)
    assert session.tiles(1.0)[0] == []  # implicit participants go with their sources
    session.writer.close()


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_unsupported_codec_is_reported_not_fatal(tmp_path: Path, kind: str) -> None:
    events: list = []
    session = make_session(tmp_path, events)
    session.command(AddSource("x", kind, CodecSpec(f"{kind}/AV1X", 90000), "X"), 0.0)
    assert events and events[0][0] == "warning"
    assert "x" not in session.sources
    session.writer.close()


def test_garbage_packets_do_not_break_the_session(tmp_path: Path) -> None:
    from recording.worker import Inbox, _handle_until

    events: list = []
    session = make_session(tmp_path, events)
    session.command(AddSource("cam", "video", VP8, "Cam"), 0.0)
    session.command(AddSource("mic", "audio", OPUS, "Mic"), 0.0)
    rng = np.random.default_rng(7)
    inbox = Inbox(None)  # type: ignore[arg-type]  # filled by hand, no pipe
    for i in range(2000):
        pt = 97 if i % 2 else 96
        header = bytes([0x80, pt]) + i.to_bytes(2, "big") + (i * 3000).to_bytes(4, "big")
        body = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        inbox.items.append(("cam" if i % 2 else "mic", i / 1000, header + bytes(4) + body))
    inbox.items.append(("cam", 2.0, b"\x00"))  # not even an RTP header
    _handle_until(session, inbox, 10.0)
    assert not inbox.items
    assert session.counters.bad_packets >= 1
    session.video_frame(0, 2.0)
    session.audio_until(2.0)
    session.writer.close()


@pytest.mark.parametrize(
    "codec",
    [OPUS, CodecSpec("audio/PCMU", 8000, 1, 0), CodecSpec("audio/G722", 8000, 1, 9)],
    ids=["opus", "pcmu", "g722"],
)
def test_audio_codecs_are_resampled_into_the_mix(codec: CodecSpec) -> None:
    mixer = AudioMixer(RATE, 2)
    source = AudioSource("mic", codec, mixer, Timeline(0.0, RATE), late_tolerance_s=0.15)
    for p in audio_packets("mic", 700, duration_s=1.0, codec=codec):
        source.push(parse(p.data), p.at)
    out = mixer.read_until(RATE)
    assert source.stats.reanchors == 0 and source.stats.decode_errors == 0
    left = out[4800:43200, 0].astype(np.float64)
    assert (out[4800:43200, 0] == out[4800:43200, 1]).all()  # mono spread to both channels
    spectrum = np.abs(np.fft.rfft(left * np.hanning(len(left))))
    assert abs(np.fft.rfftfreq(len(left), 1 / RATE)[np.argmax(spectrum)] - 700) < 3
    assert (loudness(out[:, 0])[5:95] > 3000).all()  # continuous: 48 kHz positions fit


def test_video_source_gives_up_on_a_lost_packet_and_restarts_at_a_keyframe() -> None:
    packets = video_packets("cam", red, duration_s=3.0)
    lost = next(i for i, p in enumerate(packets) if p.at >= 1.0)  # a packet at 1 s
    lost_ts = parse(packets[lost].data).timestamp
    source = VideoSource("cam", VP8)
    for i, p in enumerate(packets):
        if i != lost:
            source.push(parse(p.data), p.at)
    frames_before = sum(1 for p in packets if parse(p.data).timestamp < lost_ts and p.data[1] >> 7)
    # aiortc's jitter buffer waits for the missing packet; after VIDEO_STALL_S of packets
    # without a picture the source drops what it holds and waits for a keyframe.
    # (The frame just before the hole may stay in the buffer too: it is handed over only
    # when the next packet in sequence arrives.)
    assert frames_before - 1 <= source.stats.frames <= frames_before
    assert source.wants_keyframe
    # The SFU asked the publisher: a keyframe comes, pictures resume.
    last = parse(packets[-1].data)
    again = video_packets(
        "cam",
        red,
        duration_s=1.0,
        first_seq=last.sequence_number + 1,
        first_ts=last.timestamp + 6000,
    )
    for p in again:
        source.push(parse(p.data), 3.0 + p.at)
    assert source.stats.frames >= frames_before + 10
    assert not source.wants_keyframe
