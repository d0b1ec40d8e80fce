"""Webhooks to the journal: lesson and participant events, signed and retried.

An integration with a `webhook_url` gets a POST for every event of its lessons.
`WebhookSender.send()` only puts the event in a queue and returns; one worker
task per integration delivers that integration's events one at a time, in the
order they were sent, retrying failures with exponential backoff. See
docs/webhooks.md for the format the journal receives and how it verifies it.

The payloads are built in signalling/webhook_payloads.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from signalling.config import Integration

log = logging.getLogger(__name__)

LESSON_OPENED = "lesson.opened"
PARTICIPANT_JOINED = "participant.joined"
PARTICIPANT_LEFT = "participant.left"
LESSON_ENDED = "lesson.ended"
RECORDING_READY = "recording.ready"
EVENTS = frozenset(
    {LESSON_OPENED, PARTICIPANT_JOINED, PARTICIPANT_LEFT, LESSON_ENDED, RECORDING_READY}
)

SIGNATURE_PREFIX = "sha256="
USER_AGENT = "Urok-Webhooks/1"
# Statuses worth trying again: the journal is overloaded, restarting or down.
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# Statuses whose Retry-After header sets the next delay.
RETRY_AFTER_STATUSES = frozenset({429, 503})


# --- signing


def sign(secret: str | bytes, timestamp: int | str, body: bytes | str) -> str:
    """The X-Urok-Signature value: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>."""
    key = secret.encode() if isinstance(secret, str) else secret
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str | bytes,
    timestamp: int | str | None,
    body: bytes | str,
    header: str | None,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a delivery is genuine and fresh.

    `timestamp` is the X-Urok-Timestamp header, `header` the X-Urok-Signature
    header and `body` the raw request body, exactly as received (not re-encoded
    JSON). False when the signature does not match, either header is missing
    or malformed, or the timestamp is more than `tolerance_s` seconds away from
    `now` (the current time by default): a captured request replayed later
    fails, since changing the timestamp breaks the signature.
    """
    if timestamp is None or header is None:
        return False
    ts = str(timestamp).strip()
    if not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, ts, body).encode()
    return hmac.compare_digest(expected, header.strip().lower().encode("ascii", "replace"))


# --- delivery


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed delivery is tried again."""

    max_attempts: int = 6  # the first try included
    base_delay: float = 1.0  # seconds before the second attempt
    factor: float = 2.0  # each further delay is this much longer
    max_delay: float = 60.0  # cap on one backoff delay
    # Each delay is shortened by a random fraction up to this, so many servers
    # retrying after one outage do not all arrive at the same instant.
    jitter: float = 0.2
    # A Retry-After (on 429 / 503) longer than the backoff is waited out, up to this.
    max_retry_after: float = 300.0
    timeout: float = 10.0  # per request, connecting included

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.base_delay < 0 or self.factor < 1 or self.max_delay < 0 or self.timeout <= 0:
            raise ValueError("delays must be non-negative, factor at least 1, timeout positive")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay after failed attempt number `attempt` (1-based)."""
        delay = min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))
        return delay * (1 - self.jitter * rng.random())


@dataclass
class Delivery:
    """One event on its way to one integration. The id stays the same on retries."""

    id: str
    event: str
    body: bytes
    url: str
    secret: str
    integration: str  # key id
    created_at: float = field(default_factory=time.time)
    attempts: int = 0


@dataclass
class _Channel:
    queue: asyncio.Queue[Delivery]
    task: asyncio.Task[None] | None = None
    current: Delivery | None = None  # taken from the queue, not yet done with


class WebhookSender:
    """Delivers journal webhooks in the background.

    `send()` never waits for the network: it serialises the event, puts it in
    the integration's bounded queue (dropping that queue's oldest event when it
    is full) and returns. Call `start()` once the event loop runs and `close()`
    on shutdown. Must be used from the event loop's thread.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        queue_size: int = 1000,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.policy = policy or RetryPolicy()
        self.queue_size = queue_size
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._session = session
        self._own_session = session is None
        self._channels: dict[str, _Channel] = {}
        self._started = False
        self._closed = False
        # Counters, for logs, metrics and tests.
        self.delivered = 0
        self.failed = 0  # given up on after an error answer or the last attempt
        self.dropped = 0  # pushed out of a full queue or still queued at close

    # --- lifetime

    async def start(self) -> None:
        if self._started:
            return
        if self._closed:
            raise RuntimeError("WebhookSender is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._started = True
        for key_id, channel in self._channels.items():
            self._spawn(key_id, channel)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: deliver what is queued for up to `timeout` seconds, then cancel the rest.

        A delivery waiting out a backoff delay counts as not delivered yet, so
        close() returns after at most about `timeout` seconds in every case.
        """
        if self._closed:
            return
        self._closed = True
        if self._started:
            joins = [channel.queue.join() for channel in self._channels.values()]
            try:
                await asyncio.wait_for(asyncio.gather(*joins), timeout)
            except TimeoutError:
                pass
        left = 0
        tasks = []
        for channel in self._channels.values():
            # Queued, plus the one in progress (in flight or between retries).
            left += channel.queue.qsize() + (channel.current is not None)
            if channel.task is not None:
                channel.task.cancel()
                tasks.append(channel.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        if left:
            self.dropped += left
            log.warning("webhooks: %d event(s) not delivered at shutdown", left)
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every queued event was delivered or given up on (tests, shutdown)."""
        joins = [channel.queue.join() for channel in self._channels.values()]
        await asyncio.wait_for(asyncio.gather(*joins), timeout)

    # --- sending

    def send(self, integration: Integration, event: str, data: dict[str, Any]) -> None:
        """Queue `event` for `integration`'s webhook URL; a no-op without one.

        Never blocks and never raises for delivery problems: those are retried
        and logged in the background. A `data` that JSON cannot encode is a
        programming error and raises TypeError here.
        """
        if not integration.webhook_url:
            return
        if self._closed:
            log.warning("webhooks: sender closed, %s for %s dropped", event, integration.key_id)
            self.dropped += 1
            return
        delivery_id = str(uuid.uuid4())
        envelope = {
            "id": delivery_id,
            "event": event,
            "created_at": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
            "data": data,
        }
        body = json.dumps(
            envelope, ensure_ascii=False, separators=(",", ":"), default=_json_default
        ).encode()
        delivery = Delivery(
            id=delivery_id,
            event=event,
            body=body,
            url=integration.webhook_url,
            secret=integration.secret,
            integration=integration.key_id,
        )
        channel = self._channels.get(integration.key_id)
        if channel is None:
            channel = _Channel(asyncio.Queue(self.queue_size))
            self._channels[integration.key_id] = channel
            if self._started:
                self._spawn(integration.key_id, channel)
        if channel.queue.full():
            oldest = channel.queue.get_nowait()
            channel.queue.task_done()
            self.dropped += 1
            log.warning(
                "webhooks: queue for %s full, dropped oldest %s %s",
                integration.key_id,
                oldest.event,
                oldest.id,
            )
        channel.queue.put_nowait(delivery)

    def pending(self, key_id: str | None = None) -> int:
        """Events queued and not yet taken by a worker."""
        channels = [self._channels.get(key_id)] if key_id else self._channels.values()
        return sum(c.queue.qsize() for c in channels if c is not None)

    # --- workers

    def _spawn(self, key_id: str, channel: _Channel) -> None:
        channel.task = asyncio.create_task(self._worker(channel), name=f"webhooks-{key_id}")

    async def _worker(self, channel: _Channel) -> None:
        while True:
            delivery = await channel.queue.get()
            channel.current = delivery
            try:
                await self._deliver(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failed += 1
                log.exception("webhooks: delivering %s %s failed", delivery.event, delivery.id)
            finally:
                channel.current = None
                channel.queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        policy = self.policy
        while True:
            delivery.attempts += 1
            status, retry_after, problem = await self._attempt(delivery)
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                log.debug(
                    "webhooks: %s %s delivered to %s (attempt %d)",
                    delivery.event,
                    delivery.id,
                    delivery.integration,
                    delivery.attempts,
                )
                return
            retryable = status is None or status in RETRY_STATUSES
            if not retryable or delivery.attempts >= policy.max_attempts:
                self.failed += 1
                log.warning(
                    "webhooks: giving up on %s %s to %s after %d attempt(s): %s",
                    delivery.event,
                    delivery.id,
                    delivery.integration,
                    delivery.attempts,
                    problem,
                )
                return
            delay = policy.backoff(delivery.attempts, self._rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, policy.max_retry_after))
            log.info(
                "webhooks: %s %s to %s failed (%s), retry %d in %.1f s",
                delivery.event,
                delivery.id,
                delivery.integration,
                problem,
                delivery.attempts + 1,
                delay,
            )
            await self._sleep(delay)

    async def _attempt(self, delivery: Delivery) -> tuple[int | None, float | None, str]:
        """One POST: (status or None on a network error, Retry-After seconds, description)."""
        assert self._session is not None
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Urok-Event": delivery.event,
            "X-Urok-Delivery": delivery.id,
            "X-Urok-Timestamp": timestamp,
            # Signed afresh on each attempt: a retry hours later is still fresh.
            "X-Urok-Signature": sign(delivery.secret, timestamp, delivery.body),
            "X-Urok-Attempt": str(delivery.attempts),
        }
        try:
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
                # A redirect would carry the signed event to another address.
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = None
                if status in RETRY_AFTER_STATUSES:
                    retry_after = parse_retry_after(
                        response.headers.get("Retry-After"), self._clock()
                    )
                # Read a little so the connection can be reused; ignore the rest.
                await response.content.read(4096)
                return status, retry_after, f"HTTP {status}"
        except TimeoutError:
            return None, None, f"no answer in {self.policy.timeout:g} s"
        except aiohttp.ClientError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
