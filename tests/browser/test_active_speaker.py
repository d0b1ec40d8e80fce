"""Who speaks, between two Chromium pages: the one talking is ringed at the other's.

The pupil's Chromium captures a voice-like sound (a buzz in syllables, from a WAV
file through Chromium's own fake capture device, its audio processing and Opus
encoder); Chromium's default fake microphone only beeps 20 ms in 500 ms, which is
rightly no speech. The server learns the levels from Chromium's ssrc-audio-level
header extension, nothing else.
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser


def voice_wav(path: Path, seconds: int = 4, rate: int = 48000) -> Path:
    """A 180 Hz buzz with harmonics in 200 ms syllables with 50 ms gaps, about -10 dBFS."""
    t = np.arange(rate * seconds) / rate
    buzz = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 8))
    syllables = ((t * 4) % 1.0 < 0.8).astype(float)
    samples = (0.35 * buzz / np.max(np.abs(buzz)) * syllables * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def tile(participant_id: str) -> str:
    return f"document.querySelector(\".tile[data-participant-id='{participant_id}']\")"


async def test_the_talking_pupil_is_ringed_at_the_teacher_and_not_once_muted() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        wav = voice_wav(Path(scratch) / "voice.wav")
        async with running_server() as server, playwright() as pw:
            lesson = await server.create_lesson()
            teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
            pupil_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
            voice = (f"--use-file-for-fake-audio-capture={wav}",)
            async with chromiums(pw, {}, {"extra_args": voice}) as (teacher_browser, pupil_browser):
                teacher, pupil = await new_page(teacher_browser), await new_page(pupil_browser)
                await join_call(teacher, teacher_url, video=False)
                await join_call(pupil, pupil_url, video=False)
                pupil_id = (await pupil.evaluate("window.urok.self"))["id"]

                # Ringed at the teacher's page, with "speaking" for screen readers.
                await teacher.wait_for_function(
                    f"() => {tile(pupil_id)}?.classList.contains('tile-speaking')", timeout=20000
                )
                ringed = teacher.locator(f".tile[data-participant-id='{pupil_id}']")
                assert await ringed.get_attribute("data-speaking") == "true"
                assert "говорит" in await ringed.locator(".tile-speaking-note").inner_text()
                speakers = await teacher.evaluate("window.urok.speakers")
                assert [s["id"] for s in speakers] == [pupil_id]
                assert 0.018 <= speakers[0]["level"] <= 1.0  # at least -35 dBov

                # The speaker layout: the pupil large, the teacher's own tile small.
                await teacher.locator("#toggle-layout").click()
                assert await teacher.locator("#toggle-layout").get_attribute("aria-pressed") == (
                    "true"
                )
                await teacher.wait_for_function(
                    f"() => {tile(pupil_id)}.classList.contains('tile-featured')", timeout=5000
                )
                large = await ringed.bounding_box()
                small = await teacher.locator(".tile-self").bounding_box()
                assert large is not None and small is not None
                assert large["width"] > 2 * small["width"]
                await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-speaker-view.png"))

                # The pupil's own tile shows the level of their microphone, from the page.
                await pupil.wait_for_function(
                    "() => window.urok.ownLevel > 0.1"
                    " && Number(getComputedStyle(document.querySelector('.tile-self .tile-level'))"
                    ".getPropertyValue('--level')) > 0",
                    timeout=5000,
                )

                # Muted: the server drops them from the list, the ring goes.
                await pupil.locator("#toggle-mic").click()
                await teacher.wait_for_function(
                    f"() => !{tile(pupil_id)}.classList.contains('tile-speaking')"
                    " && window.urok.speakers.length === 0",
                    timeout=5000,
                )
                await pupil.wait_for_function("() => window.urok.ownLevel === 0", timeout=5000)
