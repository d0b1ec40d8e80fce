"""The recorder takes RED (RFC 2198) audio, as Chromium publishers send it since the SFU
accepts RED: the primary block is decoded, and redundancy fills the packets that never came."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from recording import RecorderProcess
from recording.mixer import AudioMixer
from recording.options import RecordingOptions
from recording.protocol import AddSource, CodecSpec
from recording.session import RecordingSession
from recording.sources import AudioSource, Timeline
from recording.synthetic import OPUS, TimedPacket, audio_packets
from sfu.red import encode_red

RATE = 48000
RED = CodecSpec("audio/red", 48000, 2, 63, {"96/96": None})


def as_red(packets: list[TimedPacket], distance: int, inner_pt: int = 96) -> list[RtpPacket]:
    """Opus packets wrapped as RED, each carrying the `distance` packets before it."""
    opus = [RtpPacket.parse(p.data) for p in packets]
    out = []
    for i, packet in enumerate(opus):
        earlier = opus[max(0, i - distance) : i]
        redundant = [(packet.timestamp - e.timestamp, e.payload) for e in earlier]
        red = RtpPacket.parse(packet.serialize())
        red.payload = encode_red(inner_pt, packet.payload, redundant)
        red.payload_type = RED.payload_type or 0
        out.append(red)
    return out


def loudness(samples: np.ndarray) -> np.ndarray:
    """RMS per 10 ms."""
    blocks = samples[: len(samples) // 480 * 480].reshape(-1, 480).astype(np.float64)
    return np.sqrt((blocks**2).mean(axis=1))


def record(distance: int, lost: set[int]) -> tuple[AudioSource, np.ndarray]:
    mixer = AudioMixer(RATE, 1)
    source = AudioSource("mic", RED, mixer, Timeline(0.0, RATE), late_tolerance_s=0.15)
    packets = audio_packets("mic", 440, duration_s=1.0)
    for i, packet in enumerate(as_red(packets, distance)):
        if i not in lost:
            source.push(packet, packets[i].at + 0.03)
    return source, loudness(mixer.read_until(2 * RATE)[:, 0])


def test_red_primary_blocks_are_decoded_as_opus() -> None:
    source, level = record(distance=1, lost=set())
    assert source.stats.decode_errors == 0 and source.stats.recovered == 0
    assert source.stats.frames >= 49
    assert (level[6:96] > 3000).all()  # the tone, continuous, once (no block decoded twice)
    assert level[6:96].max() < 2.0 * np.median(level[6:96])


def test_redundancy_fills_lone_losses_not_longer_gaps() -> None:
    # Distance 1: each lone loss is in the next packet; 30-31 is a gap of two, which could
    # as well be a pause (a mute): left silent.
    source, level = record(distance=1, lost={10, 20, 30, 31})
    assert source.stats.recovered == 2
    # Packet i plays from 30 + 20 i ms: 10 and 20 are heard, 30-31 (630..670 ms) not.
    assert (level[23:25] > 3000).all() and (level[43:45] > 3000).all()
    assert (level[64:66] < 800).all()
    assert (level[68:100] > 3000).all()


def test_distance_two_fills_two_in_a_row() -> None:
    source, level = record(distance=2, lost={30, 31})
    assert source.stats.recovered == 2
    assert (level[6:96] > 3000).all()


def test_a_late_packet_after_its_recovery_is_not_played_twice() -> None:
    mixer = AudioMixer(RATE, 1)
    source = AudioSource("mic", RED, mixer, Timeline(0.0, RATE), late_tolerance_s=0.15)
    packets = audio_packets("mic", 440, duration_s=1.0)
    red = as_red(packets, 1)
    order = list(range(len(red)))
    order[20], order[21] = 21, 20  # 20 comes after 21, which already carried it
    for i in order:
        source.push(red[i], packets[i].at + 0.03)
    assert source.stats.recovered == 1 and source.stats.dropped == 1
    level = loudness(mixer.read_until(2 * RATE)[:, 0])
    assert level[6:96].max() < 2.0 * np.median(level[6:96])


def test_session_takes_red_and_plain_opus_of_one_source(tmp_path: Path) -> None:
    events: list = []
    options = RecordingOptions(width=320, height=180, thumbnail_width=0)
    session = RecordingSession(tmp_path / "s.mp4", options, 0.0, events.append)
    session.command(AddSource("mic", "audio", RED, "Mic"), 0.0)
    packets = audio_packets("mic", 440, duration_s=1.0)
    red = as_red(packets, 1)
    for i, packet in enumerate(packets):
        # The first half as RED, the rest as the plain Opus RED carries (pt 96).
        data = red[i].serialize() if i < 25 else packet.data
        session.packet("mic", packet.at, data)
    wrong_block = as_red(audio_packets("mic", 440, duration_s=0.1, first_seq=9000), 1, 111)
    for foreign in wrong_block:  # blocks of a payload type RED does not carry: dropped
        session.packet("mic", 1.0, foreign.serialize())
    session.packet("mic", 1.0, RtpPacket(payload_type=8, payload=b"x").serialize())
    source = session.sources["mic"]
    assert isinstance(source, AudioSource)
    assert session.counters.wrong_payload_type == 1
    assert source.stats.frames == 50 and source.stats.decode_errors == 0
    assert source.stats.dropped == len(wrong_block)
    assert not [e for e in events if e[0] == "warning"]
    session.writer.close()


def test_red_without_a_primary_type_is_unsupported(tmp_path: Path) -> None:
    events: list = []
    options = RecordingOptions(width=320, height=180, thumbnail_width=0)
    session = RecordingSession(tmp_path / "s.mp4", options, 0.0, events.append)
    session.command(AddSource("mic", "audio", CodecSpec("audio/red", 48000, 2, 63), "Mic"), 0.0)
    assert events and events[0][0] == "warning" and "mic" not in session.sources
    session.writer.close()


def test_plain_opus_sources_are_unchanged() -> None:
    mixer = AudioMixer(RATE, 1)
    source = AudioSource("mic", OPUS, mixer, Timeline(0.0, RATE), late_tolerance_s=0.15)
    assert source.payload_types == {96}


def test_the_recorder_process_records_red_as_the_sfu_hands_it_over(tmp_path: Path) -> None:
    """The codec as the SFU's tap announces it (aiortc's parameters, RED's fmtp), packets
    through the pipe to the child: a tone with lone losses comes out whole."""
    output = tmp_path / "red.mp4"
    recorder = RecorderProcess(output, RecordingOptions(width=320, height=180))
    recorder.start()
    codec = RTCRtpCodecParameters(
        mimeType="audio/red",
        clockRate=48000,
        channels=2,
        payloadType=63,
        parameters={"96/96": None},
    )
    recorder.add_source("mic", "audio", codec, "Mic")
    packets = audio_packets("mic", 440, duration_s=2.0)
    start = time.monotonic()
    for i, packet in enumerate(as_red(packets, 1)):
        time.sleep(max(0.0, start + packets[i].at - time.monotonic()))
        if i % 10 != 5:  # every tenth lost on the way, each carried by the next
            recorder.feed("mic", packet.serialize())
    result = recorder.stop(timeout=30)
    assert result.complete, result.error
    with av.open(str(output)) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    rate = 48000
    level = loudness(samples[: 2 * rate] if len(samples) >= 2 * rate else samples)
    spectrum = np.abs(np.fft.rfft(samples[rate // 4 : rate] * np.hanning(rate - rate // 4)))
    freqs = np.fft.rfftfreq(rate - rate // 4, 1 / rate)
    assert abs(freqs[np.argmax(spectrum)] - 440) < 3
    loud = level > 0.1 * level.max()
    first = int(np.argmax(loud))
    # From the first sound for 1.5 s: no 10 ms of silence, though a tenth never came.
    assert loud[first : first + 150].all()
