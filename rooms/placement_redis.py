"""Placement shared by every node on one Redis (keys and scripts: rooms/placement_scripts.py)."""

from __future__ import annotations

import json
import secrets
from typing import cast
from urllib.parse import quote

import redis.asyncio as aioredis

from rooms import placement_scripts as scripts
from rooms.placement import NODE_ID_PATTERN, NodeRecord, Placement


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _checked(node_id: str) -> str:
    if not NODE_ID_PATTERN.match(node_id):
        raise ValueError(f"node id {node_id!r} must match {NODE_ID_PATTERN.pattern}")
    return node_id


class RedisPlacement(Placement):
    """Node records and leases in Redis, next to the store's keys (same client and prefix).

    `client` must decode responses (the RedisStore's does); it belongs to the store,
    which closes it.
    """

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        register = client.register_script
        self._register = register(scripts.REGISTER)
        self._deregister = register(scripts.DEREGISTER)
        self._place = register(scripts.PLACE)
        self._claim = register(scripts.CLAIM)
        self._renew = register(scripts.RENEW)
        self._release = register(scripts.RELEASE)

    def _nodes_key(self) -> str:
        return self._prefix + "nodes"

    def _node_key(self, node_id: str) -> str:
        return self._prefix + "node:" + _checked(node_id)

    def _lesson_key(self, lesson_id: str) -> str:
        return self._prefix + "lesson-node:" + quote(lesson_id, safe="")

    async def register(self, record: NodeRecord, ttl_seconds: float) -> None:
        document = json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
        await self._register(
            keys=[self._nodes_key(), self._node_key(record.id)],
            args=[document, _ms(ttl_seconds), record.id],
        )

    async def deregister(self, node_id: str) -> None:
        node_key = self._node_key(node_id)
        await self._deregister(
            keys=[self._nodes_key(), node_key, node_key + ":lessons"], args=[node_id]
        )

    async def nodes(self) -> list[NodeRecord]:
        ids = sorted(cast(set[str], await self._redis.smembers(self._nodes_key())))
        if not ids:
            return []
        documents = cast(list[str | None], await self._redis.mget([self._node_key(i) for i in ids]))
        return [NodeRecord.from_json(json.loads(d)) for d in documents if d is not None]

    async def node(self, node_id: str) -> NodeRecord | None:
        document = cast(str | None, await self._redis.get(self._node_key(node_id)))
        return NodeRecord.from_json(json.loads(document)) if document is not None else None

    async def place(self, lesson_id: str, lease_seconds: float) -> str | None:
        answer = cast(
            list[str],
            await self._place(
                keys=[self._lesson_key(lesson_id), self._nodes_key()],
                args=[self._prefix, lesson_id, _ms(lease_seconds)],
            ),
        )
        return str(answer[0]) if answer else None

    async def claim(self, lesson_id: str, node_id: str, lease_seconds: float) -> str:
        holder = await self._claim(
            keys=[self._lesson_key(lesson_id)],
            args=[self._prefix, lesson_id, _checked(node_id), _ms(lease_seconds)],
        )
        return str(holder)

    async def renew(self, node_id: str, lesson_ids: list[str], lease_seconds: float) -> list[str]:
        if not lesson_ids:
            return []
        lost = await self._renew(
            keys=[self._lesson_key(i) for i in lesson_ids],
            args=[self._prefix, _checked(node_id), _ms(lease_seconds), *lesson_ids],
        )
        return [str(i) for i in cast(list[str], lost)]

    async def release(self, lesson_id: str, node_id: str) -> None:
        await self._release(
            keys=[self._lesson_key(lesson_id)], args=[self._prefix, lesson_id, _checked(node_id)]
        )

    async def holder(self, lesson_id: str) -> str | None:
        return cast(str | None, await self._redis.get(self._lesson_key(lesson_id)))

    async def shared_secret(self) -> bytes:
        key = self._prefix + "node-secret"
        # Made once by whichever node asks first; never expires (a restart keeps it).
        await self._redis.set(key, secrets.token_hex(32), nx=True)
        return bytes.fromhex(cast(str, await self._redis.get(key)))
