"""The Redis store's state kept across a node's restart (rooms/calls/restart.py), taken
in by RedisStore with the polls (rooms/store_redis_polls.py).

Key, under the call's (see rooms/store_redis.py):

    call:<id>:restart:<user id>       string: what the person had (JSON), expiring
                                      after the restart's grace

Taken with GETDEL, so of two connections of one person after a restart one gets it.
"""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import quote

from rooms.store_redis_polls import RedisPolls, dumps


class RedisRestartState(RedisPolls):
    """put_restart_state / take_restart_state of the Store contract."""

    durable = True  # what is written here outlives the process (a restart reads it)

    def _restart_key(self, call_id: str, user_id: str) -> str:
        return self._call_key(call_id, "restart", quote(user_id, safe=""))

    async def put_restart_state(
        self, call_id: str, user_id: str, state: dict[str, Any], ttl_seconds: float
    ) -> None:
        key = self._restart_key(call_id, user_id)
        await self._redis.set(key, dumps(state), px=max(1, round(ttl_seconds * 1000)))

    async def take_restart_state(self, call_id: str, user_id: str) -> dict[str, Any] | None:
        doc = cast(str | None, await self._redis.getdel(self._restart_key(call_id, user_id)))
        return None if doc is None else cast(dict[str, Any], json.loads(doc))
