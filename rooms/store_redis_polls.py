"""The Redis store's polls (rooms/store_redis.py's RedisStore takes them in as a mixin).

Keys, under the call's (see rooms/store_redis.py):

    call:<id>:polls                   hash: poll id -> PollRecord JSON
    call:<id>:polls:order             sorted set: poll id, score = the order asked
    call:<id>:poll:<poll id>:answers  hash: voter (user id) -> PollAnswer JSON

An answer is one HSETNX (rooms/redis_scripts.py ANSWER_POLL), so of concurrent
answers by one person, on any nodes, exactly one is kept. Poll ids are made by the
server ("poll_" and hex), never by clients, so they are safe inside key names.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from rooms import redis_scripts as scripts
from rooms.polls import PollAnswer, PollRecord


def dumps(data: Any) -> str:
    """JSON as the Redis store keeps it (RedisStore uses it too)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class RedisPolls:
    """Poll methods of the Store contract, over the key helpers RedisStore defines."""

    _redis: aioredis.Redis

    def _call_key(self, call_id: str, *parts: str) -> str:
        raise NotImplementedError

    def _ordered_keys(self, call_id: str, name: str) -> list[str]:
        raise NotImplementedError

    async def _read_ordered(self, call_id: str, name: str) -> list[str]:
        raise NotImplementedError

    def _register_polls(self) -> None:
        self._put_poll_script = self._redis.register_script(scripts.ORDERED_PUT)
        self._answer_poll_script = self._redis.register_script(scripts.ANSWER_POLL)

    def _answers_key(self, call_id: str, poll_id: str) -> str:
        return self._call_key(call_id, "poll", poll_id, "answers")

    async def put_poll(self, call_id: str, poll: PollRecord) -> None:
        await self._put_poll_script(
            keys=self._ordered_keys(call_id, "polls"), args=[poll.id, dumps(poll.to_json())]
        )

    async def polls(self, call_id: str) -> list[PollRecord]:
        docs = await self._read_ordered(call_id, "polls")
        return [PollRecord.from_json(json.loads(doc)) for doc in docs]

    async def answer_poll(self, call_id: str, poll_id: str, answer: PollAnswer) -> bool:
        deadline = self._ordered_keys(call_id, "polls")[3]
        kept = await self._answer_poll_script(
            keys=[self._answers_key(call_id, poll_id), deadline],
            args=[answer.voter, dumps(answer.to_json())],
        )
        return bool(kept)

    async def poll_answers(self, call_id: str, poll_id: str) -> list[PollAnswer]:
        docs = await self._redis.hvals(self._answers_key(call_id, poll_id))
        answers = [PollAnswer.from_json(json.loads(doc)) for doc in docs]
        return sorted(answers, key=lambda a: (a.at, a.voter))

    async def poll_answer_keys(self, call_id: str) -> list[str]:
        """The answers keys of the call's polls (expire_call sets their deadline too)."""
        ids = await self._redis.hkeys(self._call_key(call_id, "polls"))
        return [self._answers_key(call_id, str(poll_id)) for poll_id in ids]
