"""Polls through the real WebSocket with bots, on both stores: asking, answering
(invalid answers refused with their reasons, one answer per person), live results,
sharing, closing into a chat card kept in the history; limits; breakout rooms."""

from __future__ import annotations

from typing import Any

import pytest

from rooms.polls import MAX_OPEN_POLLS_PER_ROOM
from tests.live import LiveServer, running_server
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)
from tests.test_classroom import expect_error, join, of_type, open_one_room


@pytest.fixture(params=["memory", "redis"])
async def server(request: pytest.FixtureRequest) -> Any:
    overrides: dict[str, Any] = {}
    if request.param == "redis":
        import redis.asyncio

        url = request.getfixturevalue("redis_url")
        client = redis.asyncio.from_url(url)
        await client.flushdb()
        await client.aclose()
        overrides["redis_url"] = url
    async with running_server(**overrides) as live:
        yield live


def polls_where(check: Any) -> Any:
    return lambda m: m["type"] == "polls" and check(m["polls"])


async def chat_history(server: LiveServer, lesson: str, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with server.http.get(f"{server.base_url}/call/{lesson}/chat", headers=headers) as r:
        assert r.status == 200
        return list((await r.json())["messages"])


async def test_a_poll_round(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await join(server, lesson, "t-1", "teacher")
    ivan, olga = await join(server, lesson, "s-1"), await join(server, lesson, "s-2")
    try:
        question = {"type": "poll_create", "question": "Сколько будет 2+2?", "options": ["3", "4"]}
        await expect_error(ivan, question, "not_host")
        bad_polls = [
            ({**question, "options": ["один"]}, "bad_message"),  # the schema: 2 to 10
            ({**question, "options": [str(i) for i in range(11)]}, "bad_message"),
            ({**question, "options": ["4", " 4 "]}, "bad_poll"),
            ({**question, "question": " \u200b "}, "bad_poll"),
            ({**question, "options": ["3", "x" * 101]}, "bad_poll"),
        ]
        for message, code in bad_polls:
            reply = await expect_error(teacher, message, code)
            assert reply["message"]
        assert (await expect_error(teacher, bad_polls[2][0], "bad_poll"))[
            "message"
        ] == "two answers are the same"

        # Asked: everyone in the room sees it; only the host sees results.
        seen = [b.wait_for(polls_where(lambda p: len(p) == 1)) for b in (ivan, olga)]
        asked = await teacher.request(
            {**question, "question": "  Сколько   будет 2+2? "}, polls_where(lambda p: p)
        )
        poll = asked["polls"][0]
        assert poll["question"] == "Сколько будет 2+2?" and poll["options"] == ["3", "4"]
        assert poll["results"] == {"counts": [0, 0], "voters": 0, "names": [[], []]}
        for waiter in seen:
            view = (await waiter)["polls"][0]
            assert view["id"] == poll["id"] and view["results"] is None and view["answer"] is None

        # Invalid answers, each with its reason.
        answer = {"type": "poll_answer", "poll_id": poll["id"]}
        for choices, code, says in (
            ([2], "bad_choice", "answers are 0 to 1"),
            ([0, 1], "bad_choice", "exactly one"),
            ([10], "bad_message", "choices"),  # beyond any poll: the schema's bound
        ):
            reply = await expect_error(ivan, {**answer, "choices": choices}, code)
            assert says in reply["message"], reply
        await expect_error(ivan, {**answer, "poll_id": "poll_nope", "choices": [0]}, "unknown_poll")

        # Ivan answers; a second answer is refused; the host's results follow.
        counted = teacher.wait_for(polls_where(lambda p: p[0]["results"]["voters"] == 1))
        mine = await ivan.request({**answer, "choices": [1]}, of_type("polls"))
        assert mine["polls"][0]["answer"] == [1] and mine["polls"][0]["results"] is None
        await expect_error(ivan, {**answer, "choices": [0]}, "already_answered")
        results = (await counted)["polls"][0]["results"]
        assert results == {"counts": [0, 1], "voters": 1, "names": [[], ["Имя s-1"]]}

        # Shared: pupils see the counts (never the names), live.
        shared = olga.wait_for(polls_where(lambda p: p[0]["results"] is not None))
        await teacher.send({"type": "poll_share", "poll_id": poll["id"], "shared": True})
        assert (await shared)["polls"][0]["results"] == {"counts": [0, 1], "voters": 1}
        live = ivan.wait_for(polls_where(lambda p: p[0]["results"]["voters"] == 2))
        await olga.send({**answer, "choices": [0]})
        assert (await live)["polls"][0]["results"] == {"counts": [1, 1], "voters": 2}

        # A pupil made a co-host sees what hosts see, names included.
        promoted = ivan.wait_for(polls_where(lambda p: "names" in p[0]["results"]))
        await teacher.send({"type": "set_cohost", "participant_id": ivan.id, "cohost": True})
        assert (await promoted)["polls"][0]["results"]["names"] == [["Имя s-2"], ["Имя s-1"]]

        # Closed: a card in everyone's chat and in the history; the poll is gone.
        cards = [
            b.wait_for(lambda m: m["type"] == "chat_message" and m["message"]["kind"] == "poll")
            for b in (teacher, ivan, olga)
        ]
        emptied = olga.wait_for(polls_where(lambda p: p == []))
        await expect_error(olga, {"type": "poll_close", "poll_id": poll["id"]}, "not_host")
        await teacher.send({"type": "poll_close", "poll_id": poll["id"]})
        for waiter in cards:
            card = (await waiter)["message"]
            assert card["text"] == "Сколько будет 2+2?" and card["author_name"] == "Имя t-1"
            assert card["data"]["counts"] == [1, 1] and card["data"]["voters"] == 2
            assert card["data"]["options"] == ["3", "4"] and "names" not in card["data"]
        await emptied
        await expect_error(olga, {**answer, "choices": [1]}, "poll_closed")
        history = await chat_history(server, lesson, ivan.token)
        kept = [m for m in history if m["kind"] == "poll"]
        assert len(kept) == 1 and kept[0]["data"]["poll_id"] == poll["id"]
        assert kept[0]["data"]["counts"] == [1, 1]
        # A late joiner sees the card in `joined.chat` and no open poll.
        late = await join(server, lesson, "s-3")
        assert [m["data"]["poll_id"] for m in late.joined["chat"] if m["kind"] == "poll"] == [
            poll["id"]
        ]
        await late.close()

        # Bounded: open polls per room.
        for i in range(MAX_OPEN_POLLS_PER_ROOM):
            await teacher.request({**question, "question": f"Вопрос {i}"}, of_type("polls"))
        reply = await expect_error(teacher, question, "too_many_polls")
        assert str(MAX_OPEN_POLLS_PER_ROOM) in reply["message"]
    finally:
        for bot in (teacher, ivan, olga):
            await bot.close()


async def test_a_poll_belongs_to_its_breakout_room() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher")
        inside, outside = await join(server, lesson, "s-1"), await join(server, lesson, "s-2")
        try:
            await open_one_room(teacher, inside)
            await teacher.request(
                {"type": "breakout_visit", "room_id": "r1"},
                lambda m: m["type"] == "breakout" and m["room"] == "r1",
            )
            seen = inside.wait_for(polls_where(lambda p: len(p) == 1))
            asked = await teacher.request(
                {"type": "poll_create", "question": "Кто готов?", "options": ["Я", "Не я"],
                 "multiple": True, "anonymous": True},
                polls_where(lambda p: p),
            )  # fmt: skip
            poll_id = asked["polls"][0]["id"]
            assert (await seen)["polls"][0]["id"] == poll_id
            await expect_error(
                outside, {"type": "poll_answer", "poll_id": poll_id, "choices": [0]}, "unknown_poll"
            )
            counted = teacher.wait_for(polls_where(lambda p: p and p[0]["results"]["voters"]))
            await inside.send({"type": "poll_answer", "poll_id": poll_id, "choices": [1, 0]})
            # Multiple choice, anonymous: counts and no names, even for the host.
            assert (await counted)["polls"][0]["results"] == {"counts": [1, 1], "voters": 1}

            # The rooms close: the room's poll closes, its card in the room's chat.
            card = inside.wait_for(
                lambda m: m["type"] == "chat_message" and m["message"]["kind"] == "poll"
            )
            gone = inside.wait_for(polls_where(lambda p: p == []))
            await teacher.send({"type": "breakout_close", "countdown_seconds": 0})
            message = (await card)["message"]
            assert message["room"] == "r1" and message["data"]["counts"] == [1, 1]
            await gone  # and its card left the page
            # Nothing of it reached the main room.
            assert not any(m["type"] == "polls" and m["polls"] for m in outside.messages)
            assert not any(
                m["type"] == "chat_message" and m["message"]["kind"] == "poll"
                for m in outside.messages
            )
        finally:
            for bot in (teacher, inside, outside):
                await bot.close()
