"""Bounded audio at the call page: a slot plays on its own, whoever speaks in it.

`[media] audio_slots = 1`: in a class of 30 with every microphone on (the
teacher's pinned: a host), the page (a pupil) gets one slot m-section besides
the teacher's. The page must play what the slot carries, measured with Web
Audio on the page; when the pupil who spoke in it leaves (their tile goes) and
another starts, the slot plays on with the new voice, no new offer needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bench.bot import Bot
from bench.media import SilentAudioTrack, ToneAudioTrack
from signalling.config_sections import MediaSettings
from tests.browser.harness import chromium, join_call, new_page, playwright, running_server

pytestmark = pytest.mark.browser

FIRST, SECOND = 600.0, 1100.0

# The loudest frequency of each slot element's stream, through an AnalyserNode.
SLOT_PITCH_JS = """
async () => {
  const players = [...document.querySelectorAll('#slot-audio audio')];
  window.__slotAnalysers = window.__slotAnalysers || new Map();
  const context = window.__slotContext || (window.__slotContext = new AudioContext());
  await context.resume();
  const out = [];
  for (const player of players) {
    const track = player.srcObject && player.srcObject.getAudioTracks()[0];
    if (!track) { out.push(null); continue; }
    let entry = window.__slotAnalysers.get(track);
    if (!entry) {
      const analyser = context.createAnalyser();
      analyser.fftSize = 8192;
      context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
      entry = analyser;
      window.__slotAnalysers.set(track, entry);
    }
    const bins = new Float32Array(entry.frequencyBinCount);
    entry.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    out.push({pitch: best * context.sampleRate / entry.fftSize, db: bins[best],
              paused: player.paused});
  }
  return out;
}
"""


async def pitch_heard(page, frequency: float, timeout: float) -> list:
    """Wait until the page's one slot plays `frequency` (within 30 Hz)."""
    deadline = asyncio.get_running_loop().time() + timeout
    heard: list = []
    while asyncio.get_running_loop().time() < deadline:
        heard = await page.evaluate(SLOT_PITCH_JS)
        if len(heard) == 1 and heard[0] and not heard[0]["paused"]:
            if abs(heard[0]["pitch"] - frequency) < 30 and heard[0]["db"] > -70:
                return heard
        await asyncio.sleep(0.3)
    raise AssertionError(f"the slot did not play {frequency} Hz: {heard}")


async def test_the_page_plays_its_audio_slot_whoever_speaks_in_it() -> None:
    media = replace(MediaSettings(), audio_slots=1)
    async with running_server(media=media) as server, playwright() as pw:
        roster = [{"id": f"s-{i}", "name": f"Ученик {i}", "role": "student"} for i in range(1, 35)]
        lesson = (await server.create_lesson(roster=roster))["id"]
        bots: list[Bot] = []

        async def bot(user: str, role: str, track, receive: bool = True) -> Bot:
            token = await server.token(lesson, user, user, role)
            made = Bot(server.base_url, token, receive=receive)
            bots.append(made)
            await made.connect()
            await made.publish([(track, "microphone")])
            return made

        try:
            await bot("t-1", "teacher", SilentAudioTrack())
            await bot("s-1", "student", SilentAudioTrack())
            # A class of 30 with every microphone on: 25 more silent pupils.
            await asyncio.gather(
                *(bot(f"s-{i}", "student", SilentAudioTrack(), False) for i in range(10, 35))
            )
            first = await bot("s-2", "student", ToneAudioTrack(FIRST))
            async with chromium(
                pw, extra_args=("--autoplay-policy=no-user-gesture-required",)
            ) as b:
                page = await new_page(b)
                url = await server.join_url(lesson, "s-9", "Ученик 9", "student")
                await join_call(page, url, video=False)
                await pitch_heard(page, FIRST, 20)
                # The offer named the slot as a slot, and the teacher's m-section as theirs.
                tracks = await page.evaluate("window.urok.tracks")
                audio = [t for t in tracks.values() if t["kind"] == "audio"]
                assert sum(1 for t in audio if t.get("slot") is True) == 1
                assert len(audio) == 2

                # The first speaker leaves (their tile goes); another speaks in the slot.
                first_id = first.id
                await first.close()
                await page.wait_for_function(
                    f"() => !document.querySelector(\".tile[data-participant-id='{first_id}']\")",
                    timeout=10000,
                )
                await bot("s-3", "student", ToneAudioTrack(SECOND))
                await pitch_heard(page, SECOND, 20)
                assert len(await page.evaluate(SLOT_PITCH_JS)) == 1
        finally:
            for made in bots:
                await made.close()
