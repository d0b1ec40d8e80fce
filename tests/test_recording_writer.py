"""The fragmented MP4 writer, the audio mixer and the recording options."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from recording.mixer import AudioMixer
from recording.options import RecordingOptions, RecordingOptionsError
from recording.writer import FragmentedMp4Writer, probe_duration

SMALL = RecordingOptions(width=320, height=180, fps=15)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def write_clip(path: Path, seconds: float, options: RecordingOptions = SMALL) -> None:
    writer = FragmentedMp4Writer(path, options)
    per_frame = options.audio_rate // options.fps
    for index in range(round(seconds * options.fps)):
        canvas = np.zeros((options.height, options.width, 3), dtype=np.uint8)
        canvas[:, : options.width // 2] = (255, 0, 0)
        canvas[:, options.width // 2 :] = (0, 0, 255)
        writer.write_video(canvas, index)
        t = np.arange(index * per_frame, (index + 1) * per_frame) / options.audio_rate
        tone = (np.sin(2 * np.pi * 660 * t) * 10000).astype(np.int16)
        writer.write_audio(np.repeat(tone[:, None], options.audio_channels, axis=1))
    writer.close()


def test_writer_produces_fragmented_mp4_with_h264_and_aac(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, 3.0)
    data = path.read_bytes()
    assert data[4:8] == b"ftyp"
    assert data.count(b"moof") >= 3  # a fragment per keyframe (1 s)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 48000
        frames = list(container.decode(video))
    assert len(frames) == 45
    assert frames[0].pts == 0  # no start offset: audio priming does not shift the video
    image = frames[20].to_ndarray(format="rgb24")
    assert image[90, 40, 0] > 200 and image[90, 40, 2] < 60
    assert image[90, 280, 2] > 200 and image[90, 280, 0] < 60
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert abs(len(samples) / 48000 - 3.0) < 0.05
    assert abs(dominant_frequency(samples[24000:72000], 48000) - 660) < 3
    assert abs(probe_duration(path) - 3.0) < 0.05


def test_a_file_cut_short_still_plays_up_to_the_last_fragment(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_clip(path, 4.0)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    # Cut in the middle of the third fragment, as a crash would.
    third = data.index(b"moof", data.index(b"moof", data.index(b"moof") + 4) + 4)
    cut.write_bytes(data[: third + 500])
    decoded = 0
    with av.open(str(cut)) as container:
        try:
            for _ in container.decode(video=0):
                decoded += 1
        except av.FFmpegError:
            pass
    assert decoded >= 2 * SMALL.fps  # the first two fragments: 2 s
    assert 1.9 <= probe_duration(cut) <= 3.1


def test_skipped_frame_indices_keep_wall_clock_timing(tmp_path: Path) -> None:
    path = tmp_path / "gaps.mp4"
    writer = FragmentedMp4Writer(path, SMALL)
    canvas = np.zeros((180, 320, 3), dtype=np.uint8)
    for index in (0, 1, 2, 10, 11, 29):
        writer.write_video(canvas, index)
    with pytest.raises(ValueError):
        writer.write_video(canvas, 29)
    writer.write_audio(np.zeros((96000, 1), dtype=np.int16))
    writer.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    assert times == pytest.approx([i / 15 for i in (0, 1, 2, 10, 11, 29)], abs=1e-3)
    assert abs(probe_duration(path) - 2.0) < 0.05


def test_stereo_audio(tmp_path: Path) -> None:
    options = RecordingOptions(width=320, height=180, audio_channels=2)
    path = tmp_path / "stereo.mp4"
    write_clip(path, 1.0, options)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.channels == 2


def test_mixer_sums_sources_and_clips() -> None:
    mixer = AudioMixer(48000, 1)
    a = np.full((480, 1), 20000, dtype=np.int16)
    b = np.full((480, 1), 20000, dtype=np.int16)
    c = np.full((480, 1), -1000, dtype=np.int16)
    mixer.add(0, a)
    mixer.add(0, c)
    mixer.add(240, b)
    out = mixer.read_until(960)
    assert out.dtype == np.int16
    assert (out[:240, 0] == 19000).all()
    assert (out[240:480, 0] == 32767).all()  # 39000 clipped
    assert (out[480:720, 0] == 20000).all()
    assert (out[720:, 0] == 0).all()  # a gap is silence
    assert mixer.position == 960


def test_mixer_drops_what_comes_too_late_and_wraps_around() -> None:
    mixer = AudioMixer(8000, 2, capacity_s=1.0)
    size = mixer.capacity
    mixer.read_until(size - 100)
    # Straddles the end of the ring.
    chunk = np.ones((300, 2), dtype=np.int16)
    assert mixer.add(size - 150, chunk) == 250  # the first 50 samples were already out
    assert mixer.late_samples == 50
    assert mixer.add(0, chunk) == 0  # entirely late
    out = mixer.read_until(size + 300)
    assert out.shape == (400, 2)
    assert (out[:250] == 1).all() and (out[250:] == 0).all()
    # Too far ahead for the ring: refused, not wrapped onto what is still due.
    assert mixer.add(mixer.position + size, chunk) == 0
    assert mixer.refused_samples == 300


def test_options_defaults_and_validation() -> None:
    options = RecordingOptions()
    assert (options.width, options.height, options.fps) == (1280, 720, 15)
    assert options.audio_rate == 48000
    assert options.gop_frames == 15
    for bad in (
        {"width": 1279},
        {"height": 0},
        {"fps": 0},
        {"fps": 61},
        {"fps": 15.5},
        {"audio_rate": 12345},
        {"audio_channels": 3},
        {"keyframe_interval_s": 0},
        {"screen_share_fraction": 1.0},
        {"max_pending_packets": 0},
    ):
        with pytest.raises(RecordingOptionsError):
            RecordingOptions(**bad)  # type: ignore[arg-type]


def test_thumbnail_is_taken_near_the_middle(tmp_path: Path) -> None:
    from PIL import Image

    from recording.thumbnail import ThumbnailPicker

    picker = ThumbnailPicker(32)
    canvas = np.zeros((36, 64, 3), dtype=np.uint8)
    for index in range(200 * 15):  # 200 s at 15 fps; the grey level tells the time
        t = index / 15
        canvas[:] = round(t)
        picker.offer(t, canvas)
    assert len(picker._shots) <= 16
    path = picker.write(tmp_path / "thumb.jpg", 200.0)
    assert path is not None
    with Image.open(path) as image:
        assert image.size == (32, 18)
        level = np.asarray(image).mean()
    assert abs(level - 100) <= 200 / 16 + 2
    # A recording shorter than the first snapshot still gets one.
    short = ThumbnailPicker(32)
    short.offer(0.1, canvas)
    assert short.write(tmp_path / "short.jpg", 0.2) is not None
