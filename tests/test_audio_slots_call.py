"""Bounded audio slots in a real call: aiortc bots over loopback, `[media] audio_slots = 3`.

Forty microphones: the teacher's (silent, pinned: a host), 36 silent pupils, a
listener who talks all along (its own tone must never come back to it), and two
speakers who take turns. The listener decodes what it receives; each tone's
frequency says whose voice it is, whatever the m-section's label says (a slot's
label is the producer it carried when last offered).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import numpy as np
from aiortc import MediaStreamTrack

from bench.bot import Bot
from bench.media import SilentAudioTrack, ToneAudioTrack, dominant_frequency
from sfu.producer import Producer
from signalling.config_sections import MediaSettings
from signalling.keys import CALLS
from tests.live import LiveServer, running_server

OWN, FIRST, SECOND = 1500.0, 440.0, 880.0
SLOTS = 3


async def join(server: LiveServer, lesson: str, user: str, role: str = "student", **kw) -> Bot:
    bot = Bot(server.base_url, await server.token(lesson, user, user, role), **kw)
    await bot.connect()
    return bot


class Ears:
    """Reads every audio track of a bot's subscriber connection; the tones heard lately."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.recent: dict[MediaStreamTrack, list[tuple[float, np.ndarray]]] = {}
        self.readers: dict[MediaStreamTrack, asyncio.Task[None]] = {}
        self.most_audio_tracks = 0

    def follow(self) -> None:
        pc = self.bot.subscriber
        if pc is None:
            return
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        self.most_audio_tracks = max(self.most_audio_tracks, len(audio))
        for transceiver in audio:
            track = transceiver.receiver.track
            if track not in self.readers:
                self.recent[track] = []
                self.readers[track] = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            chunks = self.recent[track]
            chunks.append((time.monotonic(), data))
            del chunks[:-10]  # the last 200 ms of audio

    def tones(self) -> set[float]:
        """The loud tones of the last 200 ms, one per track that carries one (a track
        whose packets stopped carries nothing)."""
        heard = set()
        now = time.monotonic()
        for chunks in self.recent.values():
            if len(chunks) < 10 or now - chunks[0][0] > 0.5:
                continue
            samples = np.concatenate([data for _, data in chunks]).astype(np.float64)
            if np.sqrt(np.mean(samples**2)) < 500:  # silence, comfort noise
                continue
            heard.add(round(dominant_frequency(samples, 48000) / 20) * 20)
        return heard

    async def until(self, tone: float, speaking: Producer, timeout: float) -> float:
        """Seconds from the server's first packet of `speaking` until `tone` is heard
        on some track (watching that `OWN` never is)."""
        started = time.monotonic()
        first_packet = None
        while time.monotonic() - started < timeout:
            if first_packet is None and speaking.packets_received:
                first_packet = time.monotonic()
            self.follow()
            heard = self.tones()
            assert OWN not in heard, "the listener hears its own voice"
            if tone in heard:
                assert first_packet is not None
                return time.monotonic() - first_packet
            await asyncio.sleep(0.01)
        raise AssertionError(f"{tone} Hz not heard within {timeout} s; heard {self.tones()}")

    async def close(self) -> None:
        for task in self.readers.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_a_listener_hears_the_speaker_in_its_slots_and_never_itself() -> None:
    media = replace(MediaSettings(), audio_slots=SLOTS)
    async with running_server(media=media) as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher", receive=False)
        pupils = list(
            await asyncio.gather(
                *(join(server, lesson, f"s-{i}", receive=False) for i in range(1, 37))
            )
        )
        listener = await join(server, lesson, "s-37")
        first = await join(server, lesson, "s-38", receive=False)
        second = await join(server, lesson, "s-39", receive=False)
        bots = [teacher, *pupils, listener, first, second]
        ears = Ears(listener)
        try:
            await asyncio.gather(
                *(bot.publish([(SilentAudioTrack(), "microphone")]) for bot in (teacher, *pupils))
            )
            await listener.publish([(ToneAudioTrack(OWN), "microphone")])
            await asyncio.sleep(1.5)  # 38 microphones: more than 3 slots + the teacher's

            call = server.app[CALLS].get(lesson)
            assert call is not None
            publishing = asyncio.ensure_future(
                first.publish([(ToneAudioTrack(FIRST), "microphone")])
            )
            while "microphone" not in call.participants[first.id].producers:
                await asyncio.sleep(0.005)
            took = await ears.until(FIRST, call.participants[first.id].producers["microphone"], 10)
            await publishing
            # Stop the first (a host mute: its producer pauses); the second starts.
            await teacher.send({"type": "mute", "participant_id": first.id, "kind": "audio"})
            await asyncio.sleep(0.5)
            assert FIRST not in ears.tones()
            publishing = asyncio.ensure_future(
                second.publish([(ToneAudioTrack(SECOND), "microphone")])
            )
            while "microphone" not in call.participants[second.id].producers:
                await asyncio.sleep(0.005)
            microphone = call.participants[second.id].producers["microphone"]
            took_second = await ears.until(SECOND, microphone, 10)
            await publishing
            await asyncio.sleep(1.0)
            ears.follow()
            assert OWN not in ears.tones() and FIRST not in ears.tones()
            # The slots and the teacher's: never one m-section per microphone.
            assert ears.most_audio_tracks <= SLOTS + 1
            heard = call.participants[listener.id]
            assert heard.subscriber is not None
            audio = [c for c in heard.subscriber.consumers if c.kind == "audio"]
            assert len(audio) <= SLOTS + 1
            own = heard.producers["microphone"]
            assert all(c.producer is not own for c in audio)
            # The teacher (a host) is pinned: a consumer of its own, besides the 3 slots,
            # silent as it is.
            slots = heard.subscriber.audio_slots
            assert len(slots) == SLOTS
            teacher_mic = call.participants[teacher.id].producers["microphone"]
            (pinned,) = [c for c in audio if c.producer is teacher_mic]
            assert pinned not in slots
            # The page is told which m-sections are slots (they name nobody: the voice
            # changes with no new offer) and whose the pinned one is.
            offer = [m for m in listener.messages if m["type"] == "subscribe_offer"][-1]
            audio_mids = {m: t for m, t in offer["tracks"].items() if t["kind"] == "audio"}
            slot_mids = [m for m, t in audio_mids.items() if t.get("slot") is True]
            assert len(slot_mids) == SLOTS
            assert all("participant_id" not in audio_mids[m] for m in slot_mids)
            others = [t for m, t in audio_mids.items() if m not in slot_mids]
            assert others == [
                {"participant_id": teacher.id, "kind": "audio", "source": "microphone"}
            ]
            # From the server's first packet to a decoded tone: the onset tick (100 ms),
            # the client's jitter buffer and 200 ms of samples; generous for the machine.
            assert took < 1.5 and took_second < 1.5, (took, took_second)
            print(f"first heard {took:.2f} s after its first packet, second {took_second:.2f} s")
        finally:
            await ears.close()
            for bot in bots:
                await bot.close()
