"""Journal webhooks: delivered to a real aiohttp server standing in for the journal."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from rooms.lessons import Lesson, LessonState, Person, Role
from rooms.model import AttendanceRecord
from signalling.config import ConfigError, Integration, settings_from_mapping
from signalling.webhook_payloads import (
    lesson_ended_payload,
    lesson_opened_payload,
    participant_payload,
)
from signalling.webhooks import (
    LESSON_ENDED,
    LESSON_OPENED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    RetryPolicy,
    WebhookSender,
    parse_retry_after,
    sign,
    verify_signature,
)

SECRET = "journal-webhook-secret-0123456789abcdef"
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)

# Fast retries for tests: 50 ms, 100 ms, 200 ms, … and no jitter.
FAST = RetryPolicy(max_attempts=6, base_delay=0.05, factor=2.0, jitter=0.0, timeout=2.0)


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Journal:
    """An HTTP server that records webhook requests and answers from a script.

    Each entry of `script` answers one request: an int status, a (status,
    headers) pair, or "hang" (answer only at teardown). When the script runs
    out, requests get 200.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Any] = deque()
        self.release = asyncio.Event()
        self._arrived = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.received.append(Received(time.monotonic(), dict(request.headers), body))
            self._arrived.notify_all()
        answer = self.script.popleft() if self.script else 200
        if answer == "hang":
            await self.release.wait()
            return web.Response(status=200)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text="ok")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return self.received


@pytest.fixture
async def journal():
    journal = Journal()
    app = web.Application()
    app.router.add_post("/hooks/urok", journal.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    journal.url = f"http://{host}:{port}/hooks/urok"
    yield journal
    journal.release.set()
    await runner.cleanup()


@pytest.fixture
def integration(journal: Journal) -> Integration:
    return Integration(key_id="ejd", secret=SECRET, name="E-journal", webhook_url=journal.url)


@pytest.fixture
async def sender():
    sender = WebhookSender(policy=FAST)
    await sender.start()
    yield sender
    await sender.close(timeout=1.0)


def make_lesson(**changes: Any) -> Lesson:
    values: dict[str, Any] = {
        "id": "les_test",
        "integration": "ejd",
        "group_id": "5a",
        "group_title": "5А",
        "subject": "Математика",
        "teacher": Person("t-1", "Анна Петровна", Role.TEACHER),
        "roster": (
            Person("s-1", "Иван Иванов", Role.STUDENT),
            Person("s-2", "Пётр Петров", Role.STUDENT),
            Person("p-1", "Мария Иванова", Role.PARENT),
        ),
        "starts_at": T0,
        "ends_at": T0 + timedelta(minutes=45),
        "state": LessonState.OPEN,
        "created_at": T0 - timedelta(hours=1),
        "opened_at": T0 - timedelta(minutes=5),
    }
    values.update(changes)
    return Lesson(**values)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def record(user_id: str, name: str, role: Role, *stretches: tuple[float, float | None]):
    """An attendance record built the way the store builds it: joined() / left() calls."""
    rec: AttendanceRecord | None = None
    for join, leave in stretches:
        if rec is None:
            rec = AttendanceRecord(user_id=user_id, name=name, role=role, first_join=minutes(join))
        rec = rec.joined(minutes(join))
        if leave is not None:
            rec = rec.left(minutes(leave))
    assert rec is not None
    return rec


# --- signatures


def test_signature_verifies_with_the_secret_only() -> None:
    body = b'{"id":"x","event":"lesson.opened","data":{}}'
    ts = 1_800_000_000
    header = sign(SECRET, ts, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, str(ts), body, header, now=ts + 10)
    assert verify_signature(SECRET, ts, body.decode(), header.upper(), now=ts)
    # Another secret, a tampered body, another timestamp with the same signature.
    assert not verify_signature("another-secret-another-secret-00", ts, body, header, now=ts)
    assert not verify_signature(SECRET, ts, body.replace(b"opened", b"ended"), header, now=ts)
    assert not verify_signature(SECRET, ts + 1, body, header, now=ts)
    # Too old (a replay) or too far in the future.
    assert not verify_signature(SECRET, ts, body, header, now=ts + 301)
    assert verify_signature(SECRET, ts, body, header, now=ts + 299)
    assert not verify_signature(SECRET, ts, body, header, now=ts - 301)
    assert not verify_signature(SECRET, ts, body, header, tolerance_s=5, now=ts + 6)
    # Missing or malformed headers.
    for bad_ts, bad_header in [
        (None, header),
        (ts, None),
        ("", header),
        ("12.5", header),
        ("-1", header),
        ("²", header),
        (ts, header[7:]),
        (ts, "sha1=" + header[7:]),
        (ts, "sha256=zz"),
        (ts, "sha256=Ω"),
    ]:
        assert not verify_signature(SECRET, bad_ts, body, bad_header, now=ts)


def test_retry_after_parsing() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    date = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(120.0)


def test_backoff_grows_exponentially_with_a_cap_and_jitter() -> None:
    import random

    policy = RetryPolicy()
    rng = random.Random(1)
    for attempt, nominal in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 60), (9, 60)]:
        delay = policy.backoff(attempt, rng)
        assert nominal * 0.8 <= delay <= nominal
    exact = RetryPolicy(jitter=0.0)
    assert [exact.backoff(n, rng) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# --- config


def test_config_webhook_url() -> None:
    base = {"key_id": "ejd", "secret": SECRET}
    settings = settings_from_mapping(
        {"integrations": [{**base, "webhook_url": "https://journal.example/hooks/urok"}]}
    )
    assert settings.integrations[0].webhook_url == "https://journal.example/hooks/urok"
    assert settings_from_mapping({"integrations": [base]}).integrations[0].webhook_url is None
    for bad in ["ftp://journal.example/x", "journal.example", "https://", 42, ""]:
        with pytest.raises(ConfigError, match="webhook_url"):
            settings_from_mapping({"integrations": [{**base, "webhook_url": bad}]})


# --- delivery to a real server


async def test_events_arrive_signed_with_the_right_payloads(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    lesson = make_lesson()
    joined = participant_payload(lesson.id, "s-1", "Иван Иванов", Role.STUDENT, minutes(1))
    left = participant_payload(lesson.id, "s-1", "Иван Иванов", "student", minutes(30))
    attendance = [record("s-1", "Иван Иванов", Role.STUDENT, (1, 30))]
    ended = lesson_ended_payload(lesson, attendance, minutes(45), "ended_by_journal")
    events = [
        (LESSON_OPENED, lesson_opened_payload(lesson)),
        (PARTICIPANT_JOINED, joined),
        (PARTICIPANT_LEFT, left),
        (LESSON_ENDED, ended),
    ]
    for event, data in events:
        sender.send(integration, event, data)

    received = await journal.wait_for(4)
    await sender.wait_idle(timeout=5)
    assert sender.delivered == 4 and sender.failed == 0
    ids = set()
    for got, (event, data) in zip(received, events, strict=True):
        envelope = got.json
        assert envelope["event"] == event
        assert envelope["data"] == json.loads(json.dumps(data))
        assert datetime.fromisoformat(envelope["created_at"]).tzinfo is not None
        headers = got.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Urok-Event"] == event
        assert headers["X-Urok-Delivery"] == envelope["id"]
        assert headers["X-Urok-Attempt"] == "1"
        assert abs(int(headers["X-Urok-Timestamp"]) - time.time()) < 5
        ts, signature = headers["X-Urok-Timestamp"], headers["X-Urok-Signature"]
        assert verify_signature(SECRET, ts, got.body, signature)
        assert not verify_signature("x" * 32, ts, got.body, signature)
        assert not verify_signature(SECRET, ts, got.body + b" ", signature)
        assert not verify_signature(SECRET, ts, got.body, signature, now=int(ts) + 301)
        ids.add(envelope["id"])
    assert len(ids) == 4
    # Names travel as UTF-8, not \\u escapes.
    assert "Иван".encode() in received[1].body
    assert received[1].json["data"] == {
        "lesson_id": "les_test",
        "participant": {"user_id": "s-1", "name": "Иван Иванов", "role": "student"},
        "at": "2026-11-24T06:01:00+00:00",
    }
    opened = received[0].json["data"]["lesson"]
    assert opened["id"] == "les_test" and opened["state"] == "open"
    assert opened["group"] == {"id": "5a", "title": "5А"}
    assert opened["teacher"] == {"id": "t-1", "name": "Анна Петровна"}
    assert received[3].json["data"]["summary"] == {"rostered": 4, "joined": 1, "unrostered": 0}


async def test_no_webhook_url_sends_nothing(journal: Journal, sender: WebhookSender) -> None:
    sender.send(Integration("plain", SECRET), LESSON_OPENED, {"x": 1})
    assert sender.pending() == 0
    await asyncio.sleep(0.05)
    assert journal.received == []


async def test_500_twice_then_200_is_retried_with_growing_delays(
    journal: Journal, integration: Integration
) -> None:
    journal.script.extend([500, 502])
    asked: list[float] = []

    async def recording_sleep(delay: float) -> None:
        asked.append(delay)
        await asyncio.sleep(delay)

    sender = WebhookSender(policy=FAST, sleep=recording_sleep)
    await sender.start()
    try:
        sender.send(integration, LESSON_OPENED, {"n": 1})
        received = await journal.wait_for(3)
        await sender.wait_idle(timeout=5)
        await asyncio.sleep(0.1)
    finally:
        await sender.close(timeout=1)
    assert len(journal.received) == 3
    assert asked == [0.05, 0.1]
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[1] > gaps[0]
    # One delivery: same id and body on every attempt, signed afresh each time.
    assert len({r.headers["X-Urok-Delivery"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    assert [r.headers["X-Urok-Attempt"] for r in received] == ["1", "2", "3"]
    for r in received:
        assert verify_signature(
            SECRET, r.headers["X-Urok-Timestamp"], r.body, r.headers["X-Urok-Signature"]
        )
    assert sender.delivered == 1 and sender.failed == 0


async def test_gives_up_after_max_attempts(journal: Journal, integration: Integration) -> None:
    journal.script.extend([503] * 10)
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, jitter=0.0, timeout=2.0)
    sender = WebhookSender(policy=policy)
    await sender.start()
    try:
        sender.send(integration, LESSON_OPENED, {})
        await journal.wait_for(3)
        await sender.wait_idle(timeout=5)
        await asyncio.sleep(0.1)
    finally:
        await sender.close(timeout=1)
    assert len(journal.received) == 3
    assert sender.delivered == 0 and sender.failed == 1


async def test_no_retry_on_400_and_the_queue_moves_on(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    journal.script.extend([400])
    sender.send(integration, LESSON_OPENED, {"n": 1})
    sender.send(integration, LESSON_ENDED, {"n": 2})
    received = await journal.wait_for(2)
    await sender.wait_idle(timeout=5)
    await asyncio.sleep(0.2)  # longer than the first backoff: no late retry
    assert [r.json["data"]["n"] for r in journal.received] == [1, 2]
    assert received[0].headers["X-Urok-Delivery"] != received[1].headers["X-Urok-Delivery"]
    assert sender.failed == 1 and sender.delivered == 1


async def test_redirects_are_not_followed(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    journal.script.extend([(302, {"Location": journal.url})])
    sender.send(integration, LESSON_OPENED, {})
    await journal.wait_for(1)
    await sender.wait_idle(timeout=5)
    await asyncio.sleep(0.1)
    assert len(journal.received) == 1 and sender.failed == 1


async def test_retry_after_is_honoured(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    journal.script.extend([(429, {"Retry-After": "1"})])
    sender.send(integration, LESSON_OPENED, {})
    received = await journal.wait_for(2)
    # The backoff alone would be 50 ms; the journal asked for a second.
    assert received[1].at - received[0].at >= 0.95
    await sender.wait_idle(timeout=5)
    assert sender.delivered == 1


async def test_timeouts_and_connection_errors_are_retried(
    journal: Journal, integration: Integration
) -> None:
    journal.script.extend(["hang"])
    # The backoff (0.1 s) is the margin for when the journal saw the first attempt: its
    # clock for the timeout started a little earlier, at the sender.
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, jitter=0.0, timeout=0.3)
    sender = WebhookSender(policy=policy)
    await sender.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    nobody = Integration("gone", SECRET, webhook_url=f"http://127.0.0.1:{closed_port}/x")
    try:
        sender.send(integration, LESSON_OPENED, {})
        sender.send(nobody, LESSON_OPENED, {})
        received = await journal.wait_for(2)
        await sender.wait_idle(timeout=5)
    finally:
        await sender.close(timeout=1)
    assert received[1].at - received[0].at >= 0.3  # the first attempt timed out
    assert received[0].headers["X-Urok-Delivery"] == received[1].headers["X-Urok-Delivery"]
    assert sender.delivered == 1 and sender.failed == 1  # the closed port: 3 attempts, then no


async def test_send_never_blocks_even_when_the_journal_hangs(
    journal: Journal, integration: Integration
) -> None:
    journal.script.extend(["hang"])
    sender = WebhookSender(policy=RetryPolicy(timeout=30.0))
    await sender.start()
    try:
        # Never waits on the journal (wall clock: a hang would cost the 30 s timeout) and
        # does little work (CPU time: a preempted process's wall time says nothing).
        wall, cpu = time.perf_counter(), time.thread_time()
        sender.send(integration, LESSON_OPENED, lesson_opened_payload(make_lesson()))
        assert time.perf_counter() - wall < 1.0 and time.thread_time() - cpu < 0.05
        await journal.wait_for(1)  # the receiver now sleeps on the first request
        lesson = make_lesson()
        slowest_wall = slowest_cpu = 0.0
        for i in range(200):
            wall, cpu = time.perf_counter(), time.thread_time()
            sender.send(
                integration,
                PARTICIPANT_JOINED,
                participant_payload(lesson.id, f"s-{i}", "Иван", Role.STUDENT, minutes(1)),
            )
            slowest_wall = max(slowest_wall, time.perf_counter() - wall)
            slowest_cpu = max(slowest_cpu, time.thread_time() - cpu)
        assert slowest_wall < 1.0 and slowest_cpu < 0.05
        assert sender.pending("ejd") == 200
        await asyncio.sleep(0.1)
        assert len(journal.received) == 1  # one at a time: the rest wait their turn
    finally:
        started = time.perf_counter()
        await sender.close(timeout=0.2)
        assert time.perf_counter() - started < 1.0
    assert sender.dropped == 201  # the one in flight and the queued ones


async def test_close_does_not_hang_on_a_pending_retry(
    journal: Journal, integration: Integration
) -> None:
    journal.script.extend([500] * 5)
    sender = WebhookSender(policy=RetryPolicy(base_delay=30.0, jitter=0.0))
    await sender.start()
    sender.send(integration, LESSON_OPENED, {})
    await journal.wait_for(1)
    await asyncio.sleep(0.05)  # the worker now waits 30 s before the retry
    started = time.perf_counter()
    await sender.close(timeout=0.3)
    assert time.perf_counter() - started < 1.5
    assert sender.dropped == 1
    # Closed: further events are dropped, not queued.
    sender.send(integration, LESSON_ENDED, {})
    assert sender.pending() == 0 and sender.dropped == 2
    await sender.close()  # twice is fine


async def test_close_delivers_what_is_queued(journal: Journal, integration: Integration) -> None:
    sender = WebhookSender(policy=FAST)
    await sender.start()
    for n in range(5):
        sender.send(integration, PARTICIPANT_JOINED, {"n": n})
    await sender.close(timeout=5)
    assert [r.json["data"]["n"] for r in journal.received] == [0, 1, 2, 3, 4]
    assert sender.delivered == 5 and sender.dropped == 0


async def test_queue_overflow_drops_the_oldest(journal: Journal, integration: Integration) -> None:
    sender = WebhookSender(policy=FAST, queue_size=3)
    # Not started yet: events queue up with nobody delivering them.
    for n in range(5):
        sender.send(integration, PARTICIPANT_JOINED, {"n": n})
    assert sender.pending() == 3 and sender.dropped == 2
    await sender.start()
    try:
        await journal.wait_for(3)
        await sender.wait_idle(timeout=5)
    finally:
        await sender.close(timeout=1)
    assert [r.json["data"]["n"] for r in journal.received] == [2, 3, 4]


async def test_order_is_kept_across_retries(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    journal.script.extend([500, 500])
    for event in (LESSON_OPENED, PARTICIPANT_JOINED, PARTICIPANT_LEFT, LESSON_ENDED):
        sender.send(integration, event, {})
    received = await journal.wait_for(6)
    assert [r.headers["X-Urok-Event"] for r in received] == [
        LESSON_OPENED,
        LESSON_OPENED,
        LESSON_OPENED,
        PARTICIPANT_JOINED,
        PARTICIPANT_LEFT,
        LESSON_ENDED,
    ]


async def test_integrations_do_not_wait_for_each_other(
    journal: Journal, integration: Integration, sender: WebhookSender
) -> None:
    journal.script.extend(["hang"])
    other = Integration("other", SECRET, webhook_url=journal.url + "?other")
    sender.send(integration, LESSON_OPENED, {})
    await journal.wait_for(1)
    sender.send(other, LESSON_OPENED, {})
    received = await journal.wait_for(2)
    assert received[1].json["data"] == {}
    journal.release.set()
    await sender.wait_idle(timeout=5)
    assert sender.delivered == 2


# --- attendance report


def test_attendance_report_covers_the_whole_roster() -> None:
    lesson = make_lesson()
    attendance = [
        # The teacher, there from before the start to the end (never left).
        record("t-1", "Анна Петровна", Role.TEACHER, (-2, None)),
        # Ivan left for 10 minutes and came back: the stretches add up.
        record("s-1", "Иван Иванов", Role.STUDENT, (0, 10), (20, 30.5)),
        # A guest who is on no roster.
        record("g-1", "Инспектор", Role.GUEST, (5, 7.25)),
        # Maria (a parent) joined for 125 seconds.
        record("p-1", "Мария И.", Role.PARENT, (40, 42 + 5 / 60)),
    ]
    data = lesson_ended_payload(lesson, attendance, minutes(45), "ended_by_teacher")
    assert data["reason"] == "ended_by_teacher"
    assert data["lesson"]["state"] == "ended" and data["lesson"]["id"] == "les_test"
    assert data["ended_at"] == data["lesson"]["ended_at"] == "2026-11-24T06:45:00+00:00"
    assert data["summary"] == {"rostered": 4, "joined": 3, "unrostered": 1}
    by_id = {entry["user_id"]: entry for entry in data["attendance"]}
    assert [entry["user_id"] for entry in data["attendance"]] == ["t-1", "s-1", "s-2", "p-1"]
    assert by_id["t-1"] == {
        "user_id": "t-1",
        "name": "Анна Петровна",
        "role": "teacher",
        "joined": True,
        "first_join": "2026-11-24T05:58:00+00:00",
        "last_leave": "2026-11-24T06:45:00+00:00",  # still there at the end
        "minutes_present": 47.0,
    }
    assert by_id["s-1"]["joined"] is True
    assert by_id["s-1"]["first_join"] == "2026-11-24T06:00:00+00:00"
    assert by_id["s-1"]["last_leave"] == "2026-11-24T06:30:30+00:00"
    assert by_id["s-1"]["minutes_present"] == 20.5
    assert by_id["s-2"] == {
        "user_id": "s-2",
        "name": "Пётр Петров",
        "role": "student",
        "joined": False,
        "first_join": None,
        "last_leave": None,
        "minutes_present": 0.0,
    }
    # The roster's name, not the one in the call; 125 s rounds to 2.1 minutes.
    assert by_id["p-1"]["name"] == "Мария Иванова"
    assert by_id["p-1"]["minutes_present"] == 2.1
    assert data["unrostered"] == [
        {
            "user_id": "g-1",
            "name": "Инспектор",
            "role": "guest",
            "joined": True,
            "first_join": "2026-11-24T06:05:00+00:00",
            "last_leave": "2026-11-24T06:07:15+00:00",
            "minutes_present": 2.2,
        }
    ]
    json.dumps(data)  # serialisable as it is


def test_attendance_report_for_an_empty_lesson() -> None:
    lesson = make_lesson(roster=())
    data = lesson_ended_payload(lesson, [], minutes(45), "expired")
    assert data["summary"] == {"rostered": 1, "joined": 0, "unrostered": 0}
    assert data["attendance"][0]["joined"] is False
    assert data["attendance"][0]["minutes_present"] == 0.0
    assert data["unrostered"] == []
