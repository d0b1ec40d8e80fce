"""How fast a WebSocket is read: a token bucket per connection and one per address.

Every frame costs the server about a millisecond of its one event-loop thread
whatever it says (docs/performance.md, "an attack during a lesson"): five
connections sending flat out filled a core and raised a lesson's forwarding
p99 sevenfold. So frames are not refused but read more slowly: past the
budget the connection's reader waits, TCP pushes back on the sender, and
nobody else's lesson pays. A legitimate page sends a few frames a second at
most (media state, chat, hands, answers); the burst covers a host's flurry.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; rate 0: unlimited."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> float:
        """Spend one token: 0 when there was one, else the seconds until it is there
        (spent already: the caller waits that long and goes on)."""
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class FrameBudgets:
    """The per-address buckets (bounded: the least recently used goes first)."""

    MAX_ADDRESSES = 10_000

    def __init__(
        self,
        per_connection: float,
        burst: int,
        per_address: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_connection = per_connection
        self.burst = burst
        self.per_address = per_address
        self.clock = clock
        self._addresses: OrderedDict[str, TokenBucket] = OrderedDict()
        self.delayed = 0  # frames that had to wait (for tests and operators)

    def connection(self) -> TokenBucket:
        bucket = TokenBucket(self.per_connection, self.burst)
        bucket.stamp = self.clock()
        return bucket

    def wait(self, address: str | None, connection: TokenBucket) -> float:
        """Seconds the reader of a connection from `address` waits before its next frame.

        `address` None (loopback) shares no budget: a reverse proxy on the same
        machine (or a bench's bots) would otherwise make every client one address.
        """
        now = self.clock()
        if address is None:
            wait = connection.take(now)
            self.delayed += wait > 0
            return wait
        shared = self._addresses.get(address)
        if shared is None:
            shared = TokenBucket(self.per_address, self.burst * 4)
            shared.stamp = now
            self._addresses[address] = shared
            if len(self._addresses) > self.MAX_ADDRESSES:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(address)
        wait = max(connection.take(now), shared.take(now))
        if wait > 0:
            self.delayed += 1
        return wait
