"""The host's spotlight through the real WebSocket with aiortc bots (docs/protocol.md
"spotlight"): everyone in the room is told, a non-host is refused, a late joiner and a
resumed connection get it in `joined` / `resumed`, the person leaving clears it; one
spotlight per breakout room."""

from __future__ import annotations

from typing import Any

from bench.bot import Bot
from bench.media import PatternVideoTrack
from tests.live import running_server
from tests.test_classroom import expect_error, join, open_one_room


def spot_on(participant_id: str | None, source: str = "camera") -> Any:
    def matches(m: dict[str, Any]) -> bool:
        if m["type"] != "spotlight":
            return False
        spot = m["spotlight"]
        if participant_id is None:
            return spot is None
        return spot is not None and (spot["participant_id"], spot["source"]) == (
            participant_id,
            source,
        )

    return matches


async def test_spotlight_for_everyone_late_joiner_resume_and_leave() -> None:
    async with running_server(resume_grace_seconds=30) as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher")
        ivan, olga = await join(server, lesson, "s-1"), await join(server, lesson, "s-2")
        bots: list[Bot] = [teacher, ivan, olga]
        try:
            assert teacher.joined is not None and teacher.joined["spotlight"] is None
            await ivan.publish([(PatternVideoTrack((30, 200, 30)), "camera")])
            # A pupil may not spotlight anyone, nor clear it.
            await expect_error(ivan, {"type": "spotlight", "participant_id": ivan.id}, "not_host")
            await expect_error(ivan, {"type": "spotlight", "participant_id": None}, "not_host")
            await expect_error(
                teacher, {"type": "spotlight", "participant_id": "p_nobody"}, "unknown_participant"
            )
            await expect_error(
                teacher, {"type": "spotlight", "participant_id": ivan.id, "source": "mic"},
                "bad_message",
            )  # fmt: skip

            # The host spotlights Ivan: everyone, Ivan included, is told who and by whom.
            seen = [b.wait_for(spot_on(ivan.id)) for b in (ivan, olga)]
            told = await teacher.request(
                {"type": "spotlight", "participant_id": ivan.id}, spot_on(ivan.id)
            )
            assert told["spotlight"]["by"] == {"id": teacher.id, "name": "Имя t-1"}
            for waiter in seen:
                assert (await waiter)["spotlight"] == told["spotlight"]

            # A late joiner sees it at once, in `joined`.
            late = await join(server, lesson, "s-3")
            bots.append(late)
            assert late.joined is not None
            assert late.joined["spotlight"]["participant_id"] == ivan.id

            # Olga's connection drops; meanwhile the host spotlights Ivan's screen:
            # `resumed` carries the spotlight as it is now.
            await olga.drop_signalling()
            await teacher.request(
                {"type": "spotlight", "participant_id": ivan.id, "source": "screen"},
                spot_on(ivan.id, "screen"),
            )
            resumed = await olga.resume()
            assert resumed["type"] == "resumed", resumed
            assert (resumed["spotlight"]["participant_id"], resumed["spotlight"]["source"]) == (
                ivan.id,
                "screen",
            )

            # Ivan leaves: the spotlight goes with him, everyone is told.
            cleared = [b.wait_for(spot_on(None)) for b in (teacher, olga, late)]
            await ivan.send({"type": "leave"})
            await ivan.close()
            bots.remove(ivan)
            for waiter in cleared:
                await waiter
            after = await join(server, lesson, "s-4")
            bots.append(after)
            assert after.joined is not None and after.joined["spotlight"] is None

            # Spotlighting and clearing by hand.
            on = olga.wait_for(spot_on(late.id))
            await teacher.send({"type": "spotlight", "participant_id": late.id})
            await on
            off = late.wait_for(spot_on(None))
            await teacher.send({"type": "spotlight", "participant_id": None})
            await off
        finally:
            for bot in bots:
                await bot.close()


async def test_one_spotlight_per_breakout_room() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher")
        inside, outside = await join(server, lesson, "s-1"), await join(server, lesson, "s-2")
        try:
            await open_one_room(teacher, inside)
            # From the main room the host cannot spotlight someone in another room.
            await expect_error(
                teacher, {"type": "spotlight", "participant_id": inside.id}, "unknown_participant"
            )
            await teacher.request(
                {"type": "breakout_visit", "room_id": "r1"},
                lambda m: m["type"] == "breakout" and m["room"] == "r1",
            )
            seen = inside.wait_for(spot_on(inside.id))
            await teacher.send({"type": "spotlight", "participant_id": inside.id})
            await seen
            # The rooms close: the room's spotlight goes (its person left the room); the
            # main room never had one, and nothing of the room's reached it.
            cleared = inside.wait_for(spot_on(None))
            await teacher.send({"type": "breakout_close", "countdown_seconds": 0})
            await cleared
            told_outside = [m for m in outside.messages if m["type"] == "spotlight"]
            assert not any(m["spotlight"] for m in told_outside), told_outside
        finally:
            for bot in (teacher, inside, outside):
                await bot.close()
