"""The host's settings for pupils, enforced by the server, with real aiortc bots:
privacy mode (pupils' cameras reach hosts only: no consumer of them exists for a
pupil, switched live both ways) and joining muted / with the camera off."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from rooms.calls import Call
from rooms.model import CallSettings
from rooms.vocabulary import Role
from signalling.keys import CALLS
from tests.live import running_server
from tests.test_breakout import counting
from tests.test_classroom import of_type

BLUE = (30, 30, 220)


def cameras_sent_to(call: Call, viewer: Bot) -> set[str]:
    """Whose cameras the server has a consumer for, towards `viewer` (the SFU's truth)."""
    participant = call.participants[viewer.id]
    assert participant.subscriber is not None
    return {
        str(c.producer.app_data["participant_id"])
        for c in participant.subscriber.consumers
        if c.producer is not None and c.producer.app_data.get("source") == "camera"
    }


def sources_of(bot: Bot, participant_id: str) -> set[str]:
    """What of `participant_id` the bot's latest subscribe offer carries."""
    return {i["source"] for i in bot.track_info.values() if i["participant_id"] == participant_id}


def offered_cameras(bot: Bot) -> set[str]:
    """Whose cameras the bot's latest subscribe offer carries."""
    return {
        info["participant_id"]
        for info in bot.track_info.values()
        if info["source"] == "camera" and info["kind"] == "video"
    }


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def flowing(bot: Bot, source: str, kind: str, timeout: float = 20.0) -> None:
    """Until `bot` receives more of `source`'s `kind` (generous: a shared, loaded machine)."""
    start = bot.packet_counts[(source, kind)]
    await until(lambda: bot.packet_counts[(source, kind)] > start + 10, timeout)


async def set_settings(teacher: Bot, **flags: bool) -> None:
    reply = await teacher.request({"type": "set_call_settings", **flags}, of_type("call_settings"))
    assert all(reply["settings"][k] is v for k, v in flags.items()), reply


async def test_privacy_mode_keeps_pupils_cameras_from_pupils() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await counting(server, lesson, "t-1", "teacher")
        ivan, olga = await counting(server, lesson, "s-1"), await counting(server, lesson, "s-2")
        call = server.app[CALLS].get(lesson)
        assert call is not None
        try:
            # Set-up: three VP8 encoders start on a shared machine.
            await flowing(olga, ivan.id, "video", timeout=45.0)
            assert cameras_sent_to(call, olga) == {teacher.id, ivan.id}

            # On: the pupils' consumers of each other's cameras go, at once; the
            # teacher's stay, and the teacher still receives every pupil.
            await set_settings(teacher, privacy_mode=True)
            assert cameras_sent_to(call, olga) == {teacher.id}
            assert cameras_sent_to(call, ivan) == {teacher.id}
            assert cameras_sent_to(call, teacher) == {ivan.id, olga.id}
            await until(lambda: offered_cameras(olga) == {teacher.id})
            before = olga.packet_counts[(ivan.id, "video")]
            await asyncio.sleep(1.0)
            assert olga.packet_counts[(ivan.id, "video")] - before < 5
            await flowing(olga, teacher.id, "video")
            await flowing(teacher, ivan.id, "video")
            await flowing(olga, ivan.id, "audio")  # microphones still reach everyone

            # A pupil joining now is never given a pupil's camera (one who only watches:
            # a fourth VP8 encoder would only load the machine).
            late = Bot(
                server.base_url,
                await server.token(lesson, "s-3", "Имя s-3", "student"),
                decode=False,
            )
            await late.connect()
            await until(lambda: teacher.id in offered_cameras(late))
            assert cameras_sent_to(call, late) == {teacher.id}

            # A co-host is a host: they see pupils, and pupils see them.
            await teacher.send({"type": "set_cohost", "participant_id": ivan.id, "cohost": True})
            await until(lambda: cameras_sent_to(call, olga) == {teacher.id, ivan.id})
            assert cameras_sent_to(call, ivan) == {teacher.id, olga.id}
            await teacher.send({"type": "set_cohost", "participant_id": ivan.id, "cohost": False})
            await until(lambda: cameras_sent_to(call, olga) == {teacher.id})

            # Off: everybody's cameras again.
            await set_settings(teacher, privacy_mode=False)
            assert cameras_sent_to(call, olga) == {teacher.id, ivan.id}
            assert cameras_sent_to(call, late) == {teacher.id, ivan.id, olga.id}
            await flowing(olga, ivan.id, "video")
            await late.close()
        finally:
            for bot in (teacher, ivan, olga):
                await bot.close()


def test_hosts_are_not_concerned_by_join_muted() -> None:
    settings = CallSettings(join_muted=True, join_camera_off=True)
    assert settings.start_media(Role.TEACHER, host=True) == {"audio": True, "video": True}
    assert settings.start_media(Role.STUDENT, host=True) == {"audio": True, "video": True}
    assert settings.start_media(Role.STUDENT, host=False) == {"audio": False, "video": False}
    assert CallSettings().start_media(Role.GUEST, False) == {"audio": True, "video": True}


async def test_pupils_join_muted_and_with_the_camera_off() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await counting(server, lesson, "t-1", "teacher")
        try:
            await set_settings(teacher, join_muted=True, join_camera_off=True)
            late = Bot(server.base_url, await server.token(lesson, "s-1", "Иван", "student"))
            joined = await late.connect()
            # Told on entry, and the server holds to it: what is published is not forwarded.
            assert joined["self"]["audio"] is False and joined["self"]["video"] is False
            assert joined["settings"]["join_muted"] is True
            assert joined["permissions"]["unmute"] is True  # muted, not locked
            await late.publish(
                [(ToneAudioTrack(500), "microphone"), (PatternVideoTrack(BLUE), "camera")]
            )
            call = server.app[CALLS].get(lesson)
            assert call is not None
            producers = call.participants[late.id].producers
            assert producers["microphone"].paused and producers["camera"].paused
            # The teacher is offered them, and gets nothing of them.
            await until(lambda: {"microphone", "camera"} <= sources_of(teacher, late.id))
            await asyncio.sleep(1.0)
            assert teacher.packet_counts[(late.id, "audio")] == 0
            assert teacher.packet_counts[(late.id, "video")] == 0
            # The pupil may switch them on: then they flow.
            await late.send({"type": "media_state", "audio": True, "video": False})
            await flowing(teacher, late.id, "audio")
            assert not producers["microphone"].paused and producers["camera"].paused
            assert teacher.packet_counts[(late.id, "video")] == 0
            await late.close()
        finally:
            await teacher.close()
