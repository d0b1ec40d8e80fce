"""End to end: a bot call with known pictures and tones, recorded by the recorder process."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from recording import RecorderProcess, RecordingOptions
from recording.labels import tile_colour
from recording.synthetic import (
    OPUS,
    VP8,
    TimedPacket,
    audio_packets,
    pattern_frame,
    schedule,
    video_packets,
)
from recording.writer import probe_duration

CALL_S = 3.0
RED = (220, 30, 30)
BLUE = (30, 40, 220)
TONES = {"anna": 440.0, "boris": 1000.0, "carol": 2500.0}


@pytest.fixture(scope="module")
def bot_call() -> list[TimedPacket]:
    """Anna (red pattern, 440 Hz), Boris (blue pattern, 1 kHz), Carol (no camera, 2.5 kHz)."""
    span = CALL_S + 1.0
    return schedule(
        video_packets("anna-cam", lambda i: pattern_frame(RED, i, 320, 240), duration_s=span),
        video_packets(
            "boris-cam",
            lambda i: pattern_frame(BLUE, i, 320, 240),
            duration_s=span,
            first_seq=60000,
        ),
        audio_packets("anna-mic", TONES["anna"], duration_s=span),
        audio_packets("boris-mic", TONES["boris"], duration_s=span, first_seq=65500),
        audio_packets("carol-mic", TONES["carol"], duration_s=span, first_seq=7),
    )


def add_people(recorder: RecorderProcess) -> None:
    recorder.add_participant("anna", "Анна Петрова")
    recorder.add_source("anna-cam", "video", VP8, "Анна Петрова", participant="anna")
    recorder.add_source("anna-mic", "audio", OPUS, "Анна Петрова", participant="anna")
    codec = {"mime": "video/VP8", "clock_rate": 90000, "payload_type": 97, "parameters": {}}
    recorder.add_source("boris-cam", "video", codec, "Boris", participant="boris")
    recorder.add_source("boris-mic", "audio", OPUS, "Boris", participant="boris")
    recorder.add_source("carol-mic", "audio", OPUS, "Carol", participant="carol")


def feed(recorder: RecorderProcess, packets: list[TimedPacket], seconds: float, until=None) -> None:
    """Feeds packets at their times (from now) for `seconds`, or until `until()` is true."""
    start = time.monotonic()
    for packet in packets:
        if packet.at >= seconds or (until is not None and until()):
            return
        delay = start + packet.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        recorder.feed(packet.source_id, packet.data)


def decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


def colour_mask(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return (np.abs(image.astype(np.int16) - colour) <= tolerance).all(axis=2)


def test_bot_call_recording(tmp_path: Path, bot_call: list[TimedPacket]) -> None:
    output = tmp_path / "call.mp4"
    recorder = RecorderProcess(output, RecordingOptions())
    started = time.monotonic()
    recorder.start()
    add_people(recorder)
    feed(recorder, bot_call, CALL_S)
    stopping = time.monotonic()
    result = recorder.stop(timeout=30)
    wall = stopping - started

    assert result.complete, result.error
    assert result.path == output and result.size_bytes == output.stat().st_size > 10_000
    assert result.dropped_packets == 0
    assert abs(result.duration_s - wall) < 0.5
    assert abs(probe_duration(output) - wall) < 0.5
    assert result.thumbnail is not None and result.thumbnail.read_bytes()[:2] == b"\xff\xd8"

    with av.open(str(output)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.width) == ("h264", 1280)
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = list(container.decode(video))
        times = [float(f.pts * video.time_base) for f in frames]
    assert len(frames) >= 0.9 * wall * 15

    # The middle frame shows all three tiles: Anna's red pattern, Boris' blue one and
    # Carol's placeholder, side by side.
    middle = frames[int(np.argmin([abs(t - wall / 2) for t in times]))].to_ndarray(format="rgb24")
    total = middle.shape[0] * middle.shape[1]
    red, blue = colour_mask(middle, RED), colour_mask(middle, BLUE)
    placeholder = colour_mask(middle, tile_colour("Carol"), tolerance=12)
    assert red.sum() > 0.05 * total and blue.sum() > 0.05 * total
    assert placeholder.sum() > 0.05 * total
    centres = [np.argwhere(mask).mean(axis=0) for mask in (red, blue, placeholder)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.hypot(*(centres[a] - centres[b])) > 200

    # Everyone's tone is in the mix.
    samples = decode_audio(output)
    assert abs(len(samples) / 48000 - wall) < 0.5
    segment = samples[int(0.5 * 48000) : int(2.5 * 48000)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    freqs = np.fft.rfftfreq(len(segment), 1 / 48000)
    floor = np.median(spectrum)
    peaks = []
    for frequency in TONES.values():
        peaks.append(spectrum[np.abs(freqs - frequency) < 3].max())
        assert peaks[-1] > 1000 * floor, frequency
    # Nothing where no tone was sent.
    assert spectrum[np.abs(freqs - 1700) < 50].max() < 0.01 * min(peaks)


def test_killed_recorder_leaves_a_playable_file(
    tmp_path: Path, bot_call: list[TimedPacket]
) -> None:
    output = tmp_path / "killed.mp4"
    recorder = RecorderProcess(output)
    recorder.start()
    add_people(recorder)
    started = time.monotonic()

    checked = [0.0, False]

    def two_fragments_written() -> bool:
        # Looks at the file about every 0.2 s: a fragment per second of video.
        now = time.monotonic()
        if not checked[1] and now - checked[0] > 0.2 and now - started > 1.5:
            checked[0] = now
            checked[1] = output.exists() and output.read_bytes().count(b"moof") >= 2
        return bool(checked[1])

    feed(recorder, bot_call, CALL_S + 1.0, until=two_fragments_written)
    # A starved recorder may still be working through what it was fed: it gets time.
    deadline = time.monotonic() + 30
    while not two_fragments_written() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert two_fragments_written(), "no fragment written in time"
    recorder.kill()  # SIGKILL mid-recording: no trailer, no clean close

    decoded = 0
    with av.open(str(output)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        try:
            for frame in container.decode(video=0):
                decoded += 1
                last = frame.to_ndarray(format="rgb24")
        except av.FFmpegError:
            pass  # the fragment being written when it died
    assert decoded >= 15  # at least one whole fragment (1 s at 15 fps)
    assert colour_mask(last, RED).sum() > 1000
    assert len(decode_audio(output)) > 48000 * 0.5


def test_feed_never_blocks_when_the_recorder_stalls(tmp_path: Path) -> None:
    recorder = RecorderProcess(tmp_path / "stall.mp4", RecordingOptions(max_pending_packets=500))
    recorder.start()
    assert recorder.wait_ready(30)
    assert recorder.pid is not None
    os.kill(recorder.pid, signal.SIGSTOP)  # the child hangs: the pipe fills up
    try:
        packet = bytes(12) + bytes(1200)
        begin = time.perf_counter()
        for _ in range(30_000):
            recorder.feed("nobody", packet)
        elapsed = time.perf_counter() - begin
    finally:
        os.kill(recorder.pid, signal.SIGCONT)
    assert elapsed < 1.0  # 30 000 calls: a few microseconds each, never a blocking write
    assert recorder.dropped_packets > 20_000
    result = recorder.stop(timeout=30)
    assert result.complete
    assert result.dropped_packets == 30_000  # refused by feed, or unknown to the recorder


async def test_keyframe_requests_reach_the_event_loop(tmp_path: Path) -> None:
    loop_thread = threading.current_thread()
    asked: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    recorder = RecorderProcess(
        tmp_path / "kf.mp4",
        RecordingOptions(width=320, height=180),
        on_keyframe_request=lambda source: asked.put_nowait(
            (source, threading.current_thread() is loop_thread)
        ),
    )
    recorder.start()
    recorder.add_source("late-cam", "video", VP8, "Late")
    packets = video_packets("late-cam", lambda i: pattern_frame(RED, i, 320, 240), duration_s=1.0)
    keyframe_ts = packets[0].data[4:8]
    for packet in packets:
        if packet.data[4:8] != keyframe_ts:  # joined after the keyframe
            recorder.feed(packet.source_id, packet.data)
    source, on_loop = await asyncio.wait_for(asked.get(), 30)
    assert (source, on_loop) == ("late-cam", True)
    result = await recorder.stop_async()
    assert result.complete


def test_a_recorder_that_fails_reports_it(tmp_path: Path) -> None:
    output = tmp_path / "is-a-directory.mp4"
    output.mkdir()  # the child cannot open its output
    recorder = RecorderProcess(output, RecordingOptions(width=320, height=180))
    recorder.start()
    recorder.add_source("cam", "video", VP8, "Cam")
    deadline = time.monotonic() + 30
    while recorder.running and time.monotonic() < deadline:
        recorder.feed("cam", bytes(100))
        time.sleep(0.05)
    assert not recorder.running
    recorder.feed("cam", bytes(100))  # no exception: counted, as the SFU goes on
    recorder.add_source("mic", "audio", OPUS, "Mic")
    result = recorder.stop(timeout=10)
    assert not result.complete
    assert result.error is not None and "Error" in result.error
    assert result.dropped_packets >= 1


def test_the_recorder_runs_nicer_than_the_server(tmp_path: Path) -> None:
    """When CPU is short, the live call's forwarding goes first."""
    recorder = RecorderProcess(tmp_path / "nice.mp4", RecordingOptions(niceness=7))
    recorder.start()
    try:
        assert recorder.wait_ready(30)
        assert recorder.pid is not None
        own = os.getpriority(os.PRIO_PROCESS, 0)
        threads = os.listdir(f"/proc/{recorder.pid}/task")
        assert len(threads) > 1  # the encoder's threads too
        for thread in threads:
            assert os.getpriority(os.PRIO_PROCESS, int(thread)) == min(own + 7, 19)
    finally:
        assert recorder.stop(timeout=30).complete
