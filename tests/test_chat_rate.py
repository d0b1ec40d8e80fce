"""The chat rate limit holds per person, across reconnects (issue 9).

It was kept per connection and forgotten on leave, so a pupil could send five
messages, reconnect, and send five more, as often as they liked.
"""

from __future__ import annotations

from bench.bot import Bot
from tests.live import running_server


async def test_a_reconnect_does_not_reset_the_chat_rate() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        token = await server.token(lesson, "s-1", "Ученик 1", "student")
        limit = 5  # ChatLimits' default: 5 messages per 10 s
        bot = Bot(server.base_url, token)
        await bot.connect()
        for i in range(limit):
            text = f"сообщение {i}"
            reply = await bot.request(
                {"type": "chat_send", "text": text},
                lambda m, text=text: m["type"] == "chat_message" and m["message"]["text"] == text,
            )
            assert reply["type"] == "chat_message", reply
        await bot.close()

        again = Bot(server.base_url, token)
        await again.connect()
        reply = await again.request({"type": "chat_send", "text": "ещё"}, lambda m: False)
        assert reply["type"] == "error" and reply["code"] == "chat_rate_limited", reply
        # Someone else in the same call is not affected.
        other = Bot(server.base_url, await server.token(lesson, "s-2", "Ученик 2", "student"))
        await other.connect()
        reply = await other.request(
            {"type": "chat_send", "text": "привет"},
            lambda m: m["type"] == "chat_message" and m["message"]["text"] == "привет",
        )
        assert reply["type"] == "chat_message", reply
        await again.close()
        await other.close()
