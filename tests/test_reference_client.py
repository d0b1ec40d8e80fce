"""The reference client (examples/reference_client.py) plays a lesson against a live server.

It is written from docs/protocol.md alone and runs here as its own program,
with nothing of the server importable, next to a bot of ours: each decodes
the other's picture and tone, each sees the other's raised hand and chat
message, and the bot sees the client leave. If the server stops doing what
the protocol document says, this fails.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack, dominant_frequency, mean_rgb
from tests.live import running_server

CLIENT = Path(__file__).resolve().parent.parent / "examples" / "reference_client.py"
RED, GREEN = (220, 30, 30), (30, 200, 30)
SAID, REPLIED = "Здравствуйте, я из примера", "Добрый день!"


def close_to(rgb: Any, expected: tuple[int, int, int], tolerance: float = 40) -> bool:
    return rgb is not None and all(
        abs(c - e) <= tolerance for c, e in zip(rgb, expected, strict=True)
    )


async def seen(bot: Bot, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> Any:
    """The first message `bot` got (before or after this call) that matches `predicate`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((m for m in bot.messages if predicate(m)), None)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no such message")


async def picture_and_tone(bot: Bot, participant_id: str) -> tuple[Any, float]:
    """The colour of `participant_id`'s picture and the tone of their sound, decoded."""
    video = await bot.wait_track(participant_id, "video", 30)
    colour = None
    for _ in range(10):
        colour = mean_rgb(await asyncio.wait_for(video.recv(), 10))
    audio = await bot.wait_track(participant_id, "audio", 30)
    chunks = []
    for _ in range(50):
        frame = await asyncio.wait_for(audio.recv(), 10)
        chunks.append(frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0])
    return colour, dominant_frequency(np.concatenate(chunks)[-24000:], 48000)


async def test_the_reference_client_plays_a_lesson_with_a_bot(tmp_path: Path) -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = Bot(
            server.base_url, await server.token(lesson, "t-1", "Анна Петровна", "teacher")
        )
        await teacher.connect()
        await teacher.publish(
            [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(RED), "camera")]
        )
        token = await server.token(lesson, "s-1", "Ученик 1", "student")
        # Its own program, in an empty directory, with no path to the server's packages.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENT), "--url", server.base_url, "--token", token,
            "--lesson", lesson, "--say", SAID, "--colour", "30,200,30", "--tone", "660",
            "--peers", "1", "--host-address", "127.0.0.1", "--timeout", "30",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            joined = await seen(teacher, lambda m: m["type"] == "participant_joined")
            student = joined["participant"]["id"]
            assert joined["participant"]["name"] == "Ученик 1"

            # The bot decodes the client's camera and microphone.
            colour, tone = await picture_and_tone(teacher, student)
            assert close_to(colour, GREEN), colour
            assert abs(tone - 660) < 15, tone

            # The client's hand and chat message reach the bot; the bot answers in kind.
            await seen(teacher, lambda m: m["type"] == "hands" and student in m["queue"])
            said = await seen(
                teacher, lambda m: m["type"] == "chat_message" and m["message"]["text"] == SAID
            )
            assert said["message"]["author_id"] == student
            await teacher.send({"type": "hand", "raised": True})
            await teacher.send({"type": "chat_send", "text": REPLIED})

            # Then the client leaves, and the bot is told.
            await seen(
                teacher,
                lambda m: m["type"] == "participant_left" and m["participant_id"] == student,
                60,
            )
            out, err = await asyncio.wait_for(client.communicate(), 30)
        finally:
            if client.returncode is None:
                client.kill()
                await client.wait()
            await teacher.leave()
        assert client.returncode == 0, (out, err.decode()[-3000:])
        report = json.loads(out.decode().strip().splitlines()[-1])

    assert report["self"]["id"] == student and report["self"]["role"] == "student"
    # The client decoded the bot's picture and tone, under the bot's id.
    heard = report["received"][teacher.id]
    assert heard["video_frames"] >= 10 and heard["audio_frames"] >= 50, heard
    assert close_to(heard["video_rgb"], RED), heard
    assert abs(heard["audio_hz"] - 440) < 20, heard
    # It saw both hands and both chat messages, and left cleanly, with no error.
    assert {teacher.id, student} <= set(report["hands_seen"])
    texts = {(m["author_id"], m["text"]) for m in report["chat"] if m["kind"] == "text"}
    assert {(student, SAID), (teacher.id, REPLIED)} <= texts
    assert report["left_cleanly"] is True
    assert report["errors"] == [] and report["ended"] is None


def test_the_reference_client_uses_nothing_of_the_server() -> None:
    """Written from the document: it imports the standard library, aiortc, aioice, aiohttp
    and PyAV, never a package of this repository."""
    project = {"sfu", "signalling", "rooms", "recording", "breakout", "bench", "tests"}
    allowed = set(sys.stdlib_module_names) | {"aiortc", "aioice", "aiohttp", "av"}
    imported = set()
    for node in ast.walk(ast.parse(CLIENT.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert imported and not imported & project
    assert imported <= allowed, imported - allowed
