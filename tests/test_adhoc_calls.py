"""Ad-hoc calls by link: /api/v1/calls, the invite link, settings, and repeating series.

The calls are joined over the real WebSocket by bots (bench.bot.Bot) on a live server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.bot import Bot, BotError
from rooms.lessons import Lesson, LessonKind, LessonState, Person, Repeat, Role
from signalling.adhoc import invite_code, parse_invite_code
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, Integration
from signalling.keys import LESSONS, STORE, TOKENS
from tests.api_support import MSK, SECRET_A, auth, make_app, make_settings
from tests.live import LiveServer, running_server

CALLS_URL = "/api/v1/calls"
HOST = {"id": "t-1", "name": "Анна Петровна"}


def of_type(kind: str) -> Any:
    return lambda m: m["type"] == kind


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with running_server() as live:
        yield live


async def create_call(server: LiveServer, **body: Any) -> dict[str, Any]:
    status, created = await server.api(
        "POST", CALLS_URL, {"title": "Собрание", "host": HOST, **body}
    )
    assert status == 201, created
    return created


async def host_bot(server: LiveServer, lesson_id: str) -> Bot:
    bot = Bot(server.base_url, await server.token(lesson_id, HOST["id"], HOST["name"], "teacher"))
    await bot.connect()
    return bot


async def invite(server: LiveServer, url: str, name: str = "Мама Пети") -> tuple[int, Any]:
    async with server.http.post(url, json={"name": name}) as resp:
        assert resp.headers["Cache-Control"] == "no-store"
        return resp.status, await resp.json()


async def invite_page(server: LiveServer, url: str) -> tuple[int, str]:
    async with server.http.get(url) as resp:
        return resp.status, await resp.text()


# ---------------------------------------------------------------- create, invite, join


async def test_create_invite_page_and_a_guest_joins(server: LiveServer) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    call = await create_call(server, title="Родительское собрание <5А>")
    assert call["kind"] == "adhoc" and call["state"] == "open"
    assert call["series_id"] == call["id"] and call["id"].startswith("les_")
    assert call["title"] == call["subject"] == "Родительское собрание <5А>"
    assert call["teacher"] == HOST and call["roster"] == []
    assert (call["waiting_room"], call["guests_allowed"]) == (False, True)
    assert (call["repeat"], call["until"]) == ("none", None)
    assert "group" not in call
    starts, ends = (datetime.fromisoformat(call[k]) for k in ("starts_at", "ends_at"))
    assert before <= starts <= datetime.now(UTC) and ends - starts == timedelta(hours=2)
    assert call["call_url"] == f"{server.base_url}/call/{call['id']}"
    assert re.fullmatch(
        re.escape(server.base_url) + r"/invite/les_[\w-]+\.[\w-]{22}", call["invite_url"]
    )
    # The settings are the call's settings in the store.
    stored = await server.app[STORE].get_settings(call["id"])
    assert (stored.waiting_room, stored.guests_allowed) == (False, True)

    # The invite page: Russian by default, English on request, the title escaped.
    async with server.http.get(call["invite_url"]) as resp:
        assert resp.status == 200
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "form-action 'none'" in resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert '<html lang="ru">' in page and "Войти" in page
    assert "Родительское собрание &lt;5А&gt;" in page and "<5А>" not in page
    assert 'src="/static/js/invite.js"' in page
    status, page_en = await invite_page(server, call["invite_url"] + "?lang=en")
    assert status == 200 and '<html lang="en">' in page_en and ">Join<" in page_en
    async with server.http.get(server.base_url + "/static/js/invite.js") as resp:
        assert resp.status == 200

    host = await host_bot(server, call["id"])
    try:
        status, minted = await invite(server, call["invite_url"], "  Мама\tПети \x07")
        assert status == 201, minted
        assert minted["url"] == f"{call['call_url']}#token={minted['token']}"
        claims = server.app[TOKENS].verify(minted["token"], call["id"])
        assert claims.role is Role.GUEST and claims.name == "Мама Пети"
        assert claims.user_id.startswith("guest-")
        grace = timedelta(seconds=server.settings.token_grace_seconds)
        assert claims.expires_at == ends + grace
        assert datetime.fromisoformat(minted["expires_at"]) == claims.expires_at
        # Every guest is somebody else.
        _, again = await invite(server, call["invite_url"])
        assert server.app[TOKENS].verify(again["token"]).user_id != claims.user_id

        arrived = host.wait_for(of_type("participant_joined"))
        guest = Bot(server.base_url, minted["token"])
        joined = await guest.connect()
        try:
            assert joined["type"] == "joined"
            assert joined["self"]["role"] == "guest" and joined["self"]["name"] == "Мама Пети"
            assert joined["call"]["title"] == "Родительское собрание <5А>"
            assert (await arrived)["participant"]["name"] == "Мама Пети"
        finally:
            await guest.close()
    finally:
        await host.close()


async def test_roster_and_lessons_routes_work_for_calls(server: LiveServer) -> None:
    roster = [{"id": "p-1", "name": "Мария Иванова", "role": "parent"}]
    call = await create_call(server, roster=roster)
    assert call["roster"] == roster
    token = await server.token(call["id"], "p-1", "Мария Иванова", "parent")
    status, body = await server.api(
        "POST",
        f"/api/v1/lessons/{call['id']}/tokens",
        {"user": {"id": "p-2", "name": "Чужой"}, "role": "parent"},
    )
    assert status == 403 and body["error"]["code"] == "not_in_roster"
    parent = Bot(server.base_url, token)
    try:
        assert (await parent.connect())["type"] == "joined"
    finally:
        await parent.close()
    status, lesson = await server.api("GET", f"/api/v1/lessons/{call['id']}")
    assert status == 200 and lesson["kind"] == "adhoc"
    assert lesson["group"] == {"id": f"call:{call['id']}", "title": ""}
    assert lesson["title"] == "Собрание"
    # Two calls by one host at once: each is its own "class".
    other = await create_call(server)
    assert other["id"] != call["id"]


async def test_guests_not_allowed(server: LiveServer) -> None:
    call = await create_call(server, guests_allowed=False)
    assert call["guests_allowed"] is False
    status, body = await invite(server, call["invite_url"])
    assert status == 403 and body["error"]["code"] == "guests_not_allowed"
    # The page still opens (the host may let guests in later).
    assert (await invite_page(server, call["invite_url"]))[0] == 200
    # A guest token the journal minted is refused when joining.
    token = await server.token(call["id"], "g-1", "Гость", "guest")
    guest = Bot(server.base_url, token)
    try:
        with pytest.raises(BotError, match="guests_not_allowed"):
            await guest.connect()
    finally:
        await guest.close()


async def test_waiting_room_holds_a_guest(server: LiveServer) -> None:
    call = await create_call(server, waiting_room=True)
    host = await host_bot(server, call["id"])
    try:
        listed = host.wait_for(lambda m: m["type"] == "waiting_list" and m["waiting"])
        _, minted = await invite(server, call["invite_url"], "Папа")
        guest = Bot(server.base_url, minted["token"])
        try:
            reply = await guest.connect()
            assert reply["type"] == "waiting" and reply["self"]["name"] == "Папа"
            assert [p["name"] for p in (await listed)["waiting"]] == ["Папа"]
            joined = guest.wait_for(of_type("joined"))
            await host.send({"type": "admit", "participant_id": guest.id})
            assert (await joined)["self"]["role"] == "guest"
        finally:
            await guest.close()
    finally:
        await host.close()


async def test_journal_turning_the_waiting_room_off_admits_who_waits(server: LiveServer) -> None:
    # As when the host flips the switch in the call: whoever is waiting comes in.
    call = await create_call(server, waiting_room=True)
    host = await host_bot(server, call["id"])
    try:
        listed = host.wait_for(lambda m: m["type"] == "waiting_list" and m["waiting"])
        _, minted = await invite(server, call["invite_url"], "Папа")
        guest = Bot(server.base_url, minted["token"])
        try:
            assert (await guest.connect())["type"] == "waiting"
            await listed
            joined = guest.wait_for(of_type("joined"))
            arrived = host.wait_for(of_type("participant_joined"))
            emptied = host.wait_for(lambda m: m["type"] == "waiting_list" and not m["waiting"])
            status, patched = await server.api(
                "PATCH", f"{CALLS_URL}/{call['id']}", {"waiting_room": False}
            )
            assert status == 200 and patched["waiting_room"] is False
            assert (await joined)["self"]["name"] == "Папа"
            assert (await arrived)["participant"]["name"] == "Папа"
            await emptied
            assert await server.app[STORE].waiting(call["id"]) == []
        finally:
            await guest.close()
    finally:
        await host.close()


async def test_patch_changes_settings_and_title_live(server: LiveServer) -> None:
    call = await create_call(server)
    url = f"{CALLS_URL}/{call['id']}"
    host = await host_bot(server, call["id"])
    try:
        heard = host.wait_for(of_type("call_settings"))
        status, patched = await server.api(
            "PATCH", url, {"waiting_room": True, "guests_allowed": False}
        )
        assert status == 200, patched
        assert (patched["waiting_room"], patched["guests_allowed"]) == (True, False)
        message = await heard
        assert message["settings"]["waiting_room"] is True
        assert message["settings"]["guests_allowed"] is False
        stored = await server.app[STORE].get_settings(call["id"])
        assert (stored.waiting_room, stored.guests_allowed) == (True, False)
        assert (await invite(server, call["invite_url"]))[0] == 403

        status, patched = await server.api("PATCH", url, {"title": "Новое название"})
        assert status == 200 and patched["title"] == "Новое название"
        assert patched["waiting_room"] is True  # untouched
        assert (await server.api("GET", url))[1]["title"] == "Новое название"
        assert "Новое название" in (await invite_page(server, call["invite_url"]))[1]
        # Somebody joining now is told the new title.
        status, _ = await server.api("PATCH", url, {"waiting_room": False, "guests_allowed": True})
        _, minted = await invite(server, call["invite_url"])
        guest = Bot(server.base_url, minted["token"])
        try:
            assert (await guest.connect())["call"]["title"] == "Новое название"
        finally:
            await guest.close()
        assert (await server.api("PATCH", url, {}))[0] == 200  # nothing to change
    finally:
        await host.close()


async def test_delete_ends_the_call_for_everyone(server: LiveServer) -> None:
    call = await create_call(server)
    host = await host_bot(server, call["id"])
    try:
        ended = host.wait_for(of_type("call_ended"))
        status, body = await server.api("DELETE", f"{CALLS_URL}/{call['id']}")
        assert status == 200 and body["state"] == "ended"
        assert (await ended)["reason"] == "ended"
    finally:
        await host.close()
    status, body = await invite(server, call["invite_url"])
    assert status == 410 and body["error"]["code"] == "call_ended"
    status, page = await invite_page(server, call["invite_url"])
    assert status == 410 and "Звонок завершён" in page
    status, body = await server.api("PATCH", f"{CALLS_URL}/{call['id']}", {"title": "x"})
    assert status == 409 and body["error"]["code"] == "call_ended"
    # A lesson's id is not a call.
    lesson_id = await server.create_lesson()
    status, body = await server.api("GET", f"{CALLS_URL}/{lesson_id}")
    assert status == 404 and body["error"]["code"] == "call_not_found"


# ---------------------------------------------------------------- invite codes


async def test_forged_and_unknown_invite_codes(server: LiveServer) -> None:
    call = await create_call(server)
    code = call["invite_url"].rpartition("/")[2]
    series, _, mac = code.partition(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    unknown_series = invite_code(DEMO_SECRET, "les_neverexisted000")
    for bad in (
        f"{series}.{flipped}",  # the MAC altered
        f"{series}.{mac.lower() if mac.lower() != mac else mac.upper()}",
        invite_code("another-secret-0123456789abcdef0123", series),  # another key
        # another series, same MAC (1 in 64 ids ends in "x" already)
        f"{call['id'][:-1]}{'x' if call['id'][-1] != 'x' else 'y'}.{mac}",
        unknown_series,  # genuine, but no such call
    ):
        status, body = await invite(server, f"{server.base_url}/invite/{bad}")
        assert status == 404 and body["error"]["code"] == "invite_not_found", bad
        status, page = await invite_page(server, f"{server.base_url}/invite/{bad}")
        assert status == 404 and "Ссылка недействительна" in page
    # Not of the code's shape: no such route (plain 404).
    for bad in (series, f"{series}.", f"{series}.{mac[:10]}", f"{series}.{mac}x", "..."):
        async with server.http.post(f"{server.base_url}/invite/{bad}", json={}) as resp:
            assert resp.status == 404 and resp.content_type == "text/plain", bad
    # Bodies are checked once the code is good.
    for body_in, code_out in (({}, "missing_field"), ({"name": "x" * 101}, "invalid_value")):
        async with server.http.post(call["invite_url"], json=body_in) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == code_out


def test_invite_codes_belong_to_their_integration() -> None:
    a = Integration(key_id="a", secret="a" * 32)
    b = Integration(key_id="b", secret="b" * 32)
    settings = make_settings(integrations=(a, b))
    code_a, code_b = invite_code(a.secret, "les_1"), invite_code(b.secret, "les_1")
    assert code_a != code_b
    assert parse_invite_code(settings, code_a) == (a, "les_1")
    assert parse_invite_code(settings, code_b) == (b, "les_1")
    assert invite_code(a.secret, "les_1") == code_a  # stable: the link never changes
    for bad in ("", ".", "les_1", code_a + "A", code_a.replace("les_1", "les_2"), "é.é"):
        assert parse_invite_code(settings, bad) is None


# ---------------------------------------------------------------- validation


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app())) as test_client:
        yield test_client


def schedule(**changes: Any) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=1)).astimezone(MSK).replace(microsecond=0)
    out: dict[str, Any] = {
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=1)).isoformat(),
    }
    out.update(changes)
    return out


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"host": HOST}, "missing_field", "$.title"),
        ({"title": "  ", "host": HOST}, "invalid_value", "$.title"),
        ({"title": "x"}, "missing_field", "$.host"),
        ({"title": "x", "host": HOST, "waiting_room": "yes"}, "wrong_type", "$.waiting_room"),
        ({"title": "x", "host": HOST, "colour": "red"}, "unknown_field", "$.colour"),
        ({"title": "x", "host": HOST, "repeat": "weekly"}, "schedule_required", "$.repeat"),
        ({"title": "x", "host": HOST, "until": "2030-01-01"}, "schedule_required", "$.until"),
        (
            {"title": "x", "host": HOST, "roster": [{**HOST, "role": "parent"}]},
            "duplicate_id",
            "$.roster[0].id",
        ),
        (
            {"title": "x", "host": HOST, "schedule": {"starts_at": "2030-01-01T10:00:00Z"}},
            "missing_field",
            "$.schedule.ends_at",
        ),
        (
            {"title": "x", "host": HOST, "schedule": schedule(starts_at="tomorrow")},
            "invalid_datetime",
            "$.schedule.starts_at",
        ),
        (
            {"title": "x", "host": HOST, "schedule": schedule(ends_at="2030-01-01T10:00:00")},
            "naive_datetime",
            "$.schedule.ends_at",
        ),
        ({"title": "x", "host": HOST, "schedule": "weekly"}, "wrong_type", "$.schedule"),
        (
            {"title": "x", "host": HOST, "schedule": schedule(repeat="monthly")},
            "invalid_value",
            "$.schedule.repeat",
        ),
        (
            {"title": "x", "host": HOST, "schedule": schedule(until="2030-01-01")},
            "invalid_value",
            "$.schedule.until",
        ),
        (
            {"title": "x", "host": HOST, "schedule": schedule(repeat="daily", until="01.01.2030")},
            "invalid_date",
            "$.schedule.until",
        ),
    ],
)
async def test_create_validation(
    client: TestClient, body: dict[str, Any], code: str, field: str
) -> None:
    resp = await client.post(CALLS_URL, json=body, headers=auth())
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == (code, field), error


async def test_create_validation_of_times(client: TestClient) -> None:
    start = datetime.fromisoformat(schedule()["starts_at"])

    async def refused(when: dict[str, Any]) -> dict[str, Any]:
        resp = await client.post(
            CALLS_URL, json={"title": "x", "host": HOST, "schedule": when}, headers=auth()
        )
        assert resp.status == 400
        return dict((await resp.json())["error"])

    error = await refused(schedule(ends_at=start.isoformat()))
    assert (error["code"], error["field"]) == ("invalid_time_range", "$.schedule.ends_at")
    error = await refused(schedule(ends_at=(start + timedelta(hours=13)).isoformat()))
    assert (error["code"], error["field"]) == ("call_too_long", "$.schedule.ends_at")
    past = datetime.now(UTC) - timedelta(hours=2)
    error = await refused(
        schedule(starts_at=past.isoformat(), ends_at=(past + timedelta(hours=1)).isoformat())
    )
    assert (error["code"], error["field"]) == ("invalid_time_range", "$.schedule.ends_at")
    before = (start.date() - timedelta(days=1)).isoformat()
    error = await refused(schedule(repeat="weekly", until=before))
    assert (error["code"], error["field"]) == ("invalid_time_range", "$.schedule.until")

    # The start's own date is fine; so is a call without an end date.
    for ok in (
        schedule(repeat="weekly", until=start.date().isoformat()),
        schedule(repeat="daily"),
        schedule(repeat="none"),
    ):
        resp = await client.post(
            CALLS_URL, json={"title": "x", "host": HOST, "schedule": ok}, headers=auth()
        )
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        assert created["repeat"] == ok["repeat"]
        assert created["until"] == ok.get("until")
        assert created["starts_at"] == ok["starts_at"]  # the offset given is kept


async def test_calls_of_another_integration_are_invisible(client: TestClient) -> None:
    resp = await client.post(CALLS_URL, json={"title": "x", "host": HOST}, headers=auth())
    call_id = (await resp.json())["id"]
    other = {"Authorization": "Bearer secret-of-journal-b-9876543210fedcba"}
    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"{CALLS_URL}/{call_id}", headers=other)
        assert resp.status == 404
    resp = await client.patch(f"{CALLS_URL}/{call_id}", json={}, headers=other)
    assert resp.status == 404
    resp = await client.get(f"{CALLS_URL}/{call_id}", headers=auth(SECRET_A))
    assert resp.status == 200


# ---------------------------------------------------------------- repeating calls


async def test_weekly_call_moves_to_next_week_with_the_same_link(server: LiveServer) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(MSK).replace(microsecond=0)
    until = (start + timedelta(days=8)).date()
    call = await create_call(
        server,
        waiting_room=False,
        schedule={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
            "repeat": "weekly",
            "until": until.isoformat(),
        },
    )
    assert (call["repeat"], call["until"]) == ("weekly", until.isoformat())
    first = call["id"]
    host = await host_bot(server, first)
    _, minted = await invite(server, call["invite_url"])
    guest = Bot(server.base_url, minted["token"])
    await guest.connect()
    try:
        # A setting changed during the first occurrence carries over.
        status, _ = await server.api("PATCH", f"{CALLS_URL}/{first}", {"waiting_room": True})
        assert status == 200
        over = host.wait_for(of_type("call_ended"))
        guest_over = guest.wait_for(of_type("call_ended"))
        grace = timedelta(minutes=server.settings.end_grace_minutes)
        later = start + timedelta(hours=2)
        ended = await server.app[LESSONS].end_overdue([DEMO_KEY_ID], later, grace)
        assert [lesson.id for lesson in ended] == [first]
        assert (await over)["reason"] == "time_over"
        assert (await guest_over)["reason"] == "time_over"
    finally:
        await guest.close()
        await host.close()

    status, now_call = await server.api("GET", f"{CALLS_URL}/{first}")
    assert status == 200
    second = now_call["id"]
    assert second != first and now_call["series_id"] == first
    assert now_call["state"] == "open"
    assert now_call["invite_url"] == call["invite_url"]
    assert datetime.fromisoformat(now_call["starts_at"]) == start + timedelta(days=7)
    assert now_call["starts_at"].endswith("+03:00")
    assert now_call["waiting_room"] is True and now_call["title"] == "Собрание"
    # Any occurrence's id names the series.
    assert (await server.api("GET", f"{CALLS_URL}/{second}"))[1]["id"] == second
    status, old = await server.api("GET", f"/api/v1/lessons/{first}")
    assert old["state"] == "ended"

    # The same link gives a token for the next occurrence, which is a week away.
    status, minted = await invite(server, call["invite_url"])
    assert status == 201
    claims = server.app[TOKENS].verify(minted["token"], second)
    assert claims.lesson_id == second
    assert claims.expires_at > datetime.now(UTC) + timedelta(days=6)
    early = Bot(server.base_url, minted["token"])
    try:
        with pytest.raises(BotError, match="lesson_not_open"):
            await early.connect()
    finally:
        await early.close()

    # After the second occurrence the next one would start after `until`: the series is over.
    grace = timedelta(minutes=server.settings.end_grace_minutes)
    await server.app[LESSONS].end_overdue([DEMO_KEY_ID], start + timedelta(days=7, hours=2), grace)
    status, final = await server.api("GET", f"{CALLS_URL}/{first}")
    assert final["id"] == second and final["state"] == "ended"
    assert (await invite(server, call["invite_url"]))[0] == 410
    status, occurrences = await server.api("GET", f"/api/v1/lessons?group_id=call:{first}")
    assert [o["id"] for o in occurrences["lessons"]] == [first, second]


async def test_host_ending_a_daily_call_moves_it_to_tomorrow(server: LiveServer) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    call = await create_call(
        server,
        schedule={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
            "repeat": "daily",
        },
    )
    host = await host_bot(server, call["id"])
    try:
        ended = host.wait_for(of_type("call_ended"))
        await host.send({"type": "end_call"})
        assert (await ended)["reason"] == "ended_by_host"
    finally:
        await host.close()
    for _ in range(50):  # the next occurrence is created right after the end
        status, now_call = await server.api("GET", f"{CALLS_URL}/{call['id']}")
        if now_call["id"] != call["id"]:
            break
        await asyncio.sleep(0.05)
    assert now_call["state"] == "open" and now_call["until"] is None
    assert datetime.fromisoformat(now_call["starts_at"]) == start + timedelta(days=1)
    # Ending it through the API ends the series for good.
    status, body = await server.api("DELETE", f"{CALLS_URL}/{call['id']}")
    assert status == 200 and body["id"] == now_call["id"] and body["state"] == "ended"
    status, body = await server.api("GET", f"{CALLS_URL}/{call['id']}")
    assert body["id"] == now_call["id"] and body["state"] == "ended"


def occurrence(repeat: Repeat, until: date | None = None) -> Lesson:
    start = datetime(2026, 11, 24, 18, 0, tzinfo=MSK)  # a Tuesday
    return Lesson(
        id="les_1",
        integration="demo",
        group_id="call:les_1",
        group_title="",
        subject="Собрание",
        teacher=Person(id="t", name="T", role=Role.TEACHER),
        roster=(),
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        state=LessonState.OPEN,
        kind=LessonKind.ADHOC,
        repeat=repeat,
        until=until,
    )


def test_next_occurrence() -> None:
    weekly = occurrence(Repeat.WEEKLY)
    end = weekly.ends_at
    week = timedelta(days=7)
    assert occurrence(Repeat.NONE).next_occurrence(end) is None
    # Ended early, on time or late: next week.
    for after in (end - timedelta(minutes=30), end, end + timedelta(hours=3)):
        assert weekly.next_occurrence(after) == (weekly.starts_at + week, end + week)
    # Missed weeks (the server was down) are skipped.
    assert weekly.next_occurrence(end + 2 * week) == (weekly.starts_at + 3 * week, end + 3 * week)
    assert occurrence(Repeat.DAILY).next_occurrence(end)[0] == weekly.starts_at + timedelta(days=1)  # type: ignore[index]
    # `until` is inclusive, in the schedule's own offset.
    last_day = (weekly.starts_at + week).date()
    assert occurrence(Repeat.WEEKLY, last_day).next_occurrence(end) is not None
    assert occurrence(Repeat.WEEKLY, last_day - timedelta(days=1)).next_occurrence(end) is None
    assert weekly.title == "Собрание" and weekly.series_id == "les_1"


def test_invite_catalogs_match() -> None:
    from signalling.adhoc import LANGUAGES, catalog

    ru, en = (catalog(lang) for lang in LANGUAGES)
    assert set(ru) == set(en)
    assert all(ru[key].strip() and en[key].strip() for key in ru)
    assert ru["join"] == "Войти"
