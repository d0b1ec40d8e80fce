"""Sliding-window rate limits per key, in this process (the store has a shared one).

One implementation for the memory store's limits (RateLimiter) and the
server's limits on abuse (signalling/ratelimit.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol


class RateSettings(Protocol):
    """What for_limits reads (rooms.chat.ChatLimits has it)."""

    @property
    def rate_messages(self) -> int: ...
    @property
    def rate_window(self) -> float: ...


class SlidingWindow:
    """At most `limit` events per `window` seconds per key; `limit` 0: no limit.

    `retry_after(key)` tells whether one more event would be allowed (None) or
    how many seconds until it would be; `record(key)` counts one; `check(key)`
    does both (records only when allowed). Memory: at most `max_keys` keys of
    at most `limit` timestamps each.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        if not window > 0:
            raise ValueError("window must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.limit = limit
        self.window = float(window)
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def _live(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        if not self.limit:
            return None
        now = self.clock() if now is None else now
        events = self._live(key, now)
        if events is None or len(events) < self.limit:
            return None
        return max(events[0] + self.window - now, 1e-3)

    def record(self, key: str, now: float | None = None) -> None:
        if not self.limit:
            return
        now = self.clock() if now is None else now
        events = self._live(key, now)
        if events is None:
            while len(self._events) >= self.max_keys:
                self._events.popitem(last=False)
            events = self._events[key] = deque(maxlen=self.limit)
        else:
            self._events.move_to_end(key)
        events.append(now)

    def check(self, key: str, now: float | None = None) -> float | None:
        now = self.clock() if now is None else now
        retry = self.retry_after(key, now)
        if retry is None:
            self.record(key, now)
        return retry

    def forget_one(self, key: str) -> None:
        """Take back the latest event of `key` (one counted before it was known to count)."""
        events = self._events.get(key)
        if events:
            events.pop()
            if not events:
                del self._events[key]


class RateLimiter(SlidingWindow):
    """A SlidingWindow of at least one event per window, as the chat configures it."""

    def __init__(
        self,
        max_events: int = 5,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        super().__init__(max_events, window, max_keys=max_keys, clock=clock)

    @property
    def max_events(self) -> int:
        return self.limit

    @classmethod
    def for_limits(
        cls, limits: RateSettings, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        return cls(limits.rate_messages, limits.rate_window, clock)

    def forget(self, key: str) -> None:
        """Drop a key's history."""
        self._events.pop(key, None)
