"""Pick the store backend from configuration: Redis when a URL is given, else memory."""

from __future__ import annotations

from rooms.placement import LocalPlacement, Placement
from rooms.store import MemoryStore, Store


def create_store(redis_url: str | None, *, prefix: str | None = None) -> Store:
    """A MemoryStore when `redis_url` is None (or empty), else a RedisStore on that URL.

    `prefix` (Redis only) namespaces the keys, default "urok:"; several
    deployments can share one Redis with different prefixes. Connecting is
    lazy: a wrong URL shows on first use, not here.
    """
    if not redis_url:
        return MemoryStore()
    # Imported here so the embedded default never needs the redis package.
    from rooms.store_redis import DEFAULT_PREFIX, RedisStore

    return RedisStore(redis_url, prefix=DEFAULT_PREFIX if prefix is None else prefix)


def create_placement(store: Store) -> Placement:
    """Node records and lesson leases beside the store: in its Redis, or this process only."""
    if isinstance(store, MemoryStore):
        return LocalPlacement()
    from rooms.store_redis import RedisStore

    if isinstance(store, RedisStore):
        from rooms.placement_redis import RedisPlacement

        return RedisPlacement(store.redis, store.prefix)
    return LocalPlacement()
