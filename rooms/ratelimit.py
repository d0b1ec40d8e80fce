"""A sliding-window rate limit per key, in this process (the store has a shared one)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateSettings(Protocol):
    """What for_limits reads (rooms.chat.ChatLimits has it)."""

    @property
    def rate_messages(self) -> int: ...
    @property
    def rate_window(self) -> float: ...


class RateLimiter:
    """At most `max_events` per `window` seconds per key (a sliding window).

    check(key, now) records an event and returns None when it is allowed;
    otherwise it records nothing and returns the seconds until one more event
    would be allowed. `now` defaults to `clock()` (time.monotonic).
    """

    _SWEEP_EVERY = 1024  # checks between sweeps of idle keys

    def __init__(
        self,
        max_events: int = 5,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if not window > 0:
            raise ValueError("window must be positive")
        self.max_events = max_events
        self.window = float(window)
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._checks = 0

    @classmethod
    def for_limits(
        cls, limits: RateSettings, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        return cls(limits.rate_messages, limits.rate_window, clock)

    def check(self, key: str, now: float | None = None) -> float | None:
        if now is None:
            now = self.clock()
        self._checks += 1
        if self._checks % self._SWEEP_EVERY == 0:
            self._sweep(now)
        events = self._events.setdefault(key, deque())
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if len(events) < self.max_events:
            events.append(now)
            return None
        return max(events[0] - horizon, 1e-3)

    def forget(self, key: str) -> None:
        """Drop a key's history (the participant left)."""
        self._events.pop(key, None)

    def reset(self) -> None:
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    def _sweep(self, now: float) -> None:
        horizon = now - self.window
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= horizon]:
            del self._events[key]
