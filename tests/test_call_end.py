"""Nothing after the end: once `call_ended` is sent, no negotiation follows (issue 15).

An independent client saw `subscribe_offer` after `call_ended` (3 in a normal
end, 1 after the journal's DELETE): as each person was let go, the others'
subscriptions changed and offers went out to people whose call had ended.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from tests.live import LiveServer, running_server

RED = (255, 0, 0)


async def class_of_four(server: LiveServer, lesson: str) -> list[Bot]:
    bots = []
    for user, role in (
        ("t-1", "teacher"),
        ("s-1", "student"),
        ("s-2", "student"),
        ("s-3", "student"),
    ):
        bot = Bot(server.base_url, await server.token(lesson, user, f"Имя {user}", role))
        await bot.connect()
        await bot.publish([(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(RED), "camera")])
        bots.append(bot)

    # Everyone's subscriptions settled: each receives the other three's two tracks.
    def settled(bot: Bot) -> bool:
        offers = [m for m in bot.messages if m["type"] == "subscribe_offer"]
        return bool(offers) and len(offers[-1]["tracks"]) == 6

    for _ in range(200):
        if all(settled(bot) for bot in bots):
            break
        await asyncio.sleep(0.1)
    assert all(settled(bot) for bot in bots)
    await asyncio.sleep(0.5)
    return bots


@pytest.mark.parametrize("how", ["host", "journal"])
async def test_no_message_follows_call_ended(how: str) -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        bots = await class_of_four(server, lesson)
        if how == "host":
            await bots[0].send({"type": "end_call"})
        else:
            status, _ = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
            assert status == 200
        for bot in bots:
            await asyncio.wait_for(bot.closed_by_server.wait(), 10)
        for bot in bots:
            kinds = [m["type"] for m in bot.messages]
            assert "call_ended" in kinds, kinds
            after = kinds[kinds.index("call_ended") + 1 :]
            assert after == [], f"{bot.joined['self']['user_id'] if bot.joined else '?'}: {after}"
            await bot.close()
