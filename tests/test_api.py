"""The journal integration API: lessons, join tokens, authentication, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from rooms.lessons import Lesson, LessonRegistry, Person, Role
from signalling.keys import LESSONS, TOKENS
from signalling.tokens import TokenError
from tests.api_support import (
    KEY_A,
    KEY_B,
    MSK,
    PUBLIC_URL,
    SECRET_A,
    SECRET_B,
    auth,
    auth_jwt,
    lesson_body,
    make_app,
)

LESSONS_URL = "/api/v1/lessons"


@pytest.fixture
def app() -> web.Application:
    return make_app()


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def create(
    client: TestClient, body: dict[str, Any] | None = None, secret: str = SECRET_A
) -> dict[str, Any]:
    resp = await client.post(LESSONS_URL, json=body or lesson_body(), headers=auth(secret))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def expect_error(
    resp: ClientResponse, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    if field is not None:
        assert error["field"] == field, error
    return error


# ---------------------------------------------------------------- happy path


async def test_create_open_tokens_delete(client: TestClient, app: web.Application) -> None:
    body = lesson_body()
    resp = await client.post(LESSONS_URL, json=body, headers=auth())
    assert resp.status == 201
    lesson = await resp.json()
    lesson_id = lesson["id"]
    assert lesson_id.startswith("les_")
    assert lesson["state"] == "created"
    assert lesson["group"] == body["group"]
    assert lesson["subject"] == body["subject"]
    assert lesson["teacher"] == body["teacher"]
    assert lesson["roster"] == body["roster"]
    assert datetime.fromisoformat(lesson["starts_at"]) == datetime.fromisoformat(body["starts_at"])
    assert datetime.fromisoformat(lesson["ends_at"]) == datetime.fromisoformat(body["ends_at"])
    assert lesson["starts_at"].endswith("+03:00")  # the journal's offset is kept
    assert lesson["title"] == "Математика, 5А"
    assert lesson["call_url"] == f"{PUBLIC_URL}/call/{lesson_id}"
    assert (await app[LESSONS].get(lesson_id)).integration == KEY_A

    resp = await client.get(f"{LESSONS_URL}/{lesson_id}", headers=auth())
    assert resp.status == 200
    assert await resp.json() == lesson

    resp = await client.post(f"{LESSONS_URL}/{lesson_id}/open", headers=auth())
    assert resp.status == 200
    assert (await resp.json())["state"] == "open"
    # Opening again is harmless.
    resp = await client.post(f"{LESSONS_URL}/{lesson_id}/open", headers=auth())
    assert resp.status == 200
    assert (await resp.json())["state"] == "open"

    ends_at = datetime.fromisoformat(body["ends_at"])
    grace = app[TOKENS].settings.token_grace_seconds
    for user, role in [
        ({"id": "t-1", "name": "Анна Петровна"}, "teacher"),
        ({"id": "s-1", "name": "Иван Иванов"}, "student"),
        ({"id": "p-1", "name": "Мария Иванова"}, "parent"),
        ({"id": "g-77", "name": "Гость"}, "guest"),
    ]:
        resp = await client.post(
            f"{LESSONS_URL}/{lesson_id}/tokens", json={"user": user, "role": role}, headers=auth()
        )
        assert resp.status == 201, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        minted = await resp.json()
        assert set(minted) == {"token", "url", "expires_at"}
        assert minted["url"] == f"{PUBLIC_URL}/call/{lesson_id}#token={minted['token']}"
        assert datetime.fromisoformat(minted["expires_at"]) == ends_at + timedelta(seconds=grace)
        claims = app[TOKENS].verify(minted["token"], lesson_id)
        assert claims.user_id == user["id"]
        assert claims.name == user["name"]
        assert claims.role is Role(role)
        assert claims.lesson_id == lesson_id
        assert claims.key_id == KEY_A
        assert claims.expires_at == ends_at + timedelta(seconds=grace)
        assert jwt.get_unverified_header(minted["token"])["kid"] == KEY_A

    resp = await client.delete(f"{LESSONS_URL}/{lesson_id}", headers=auth())
    assert resp.status == 200
    ended = await resp.json()
    assert ended["state"] == "ended"
    assert ended["id"] == lesson_id
    # Idempotent.
    resp = await client.delete(f"{LESSONS_URL}/{lesson_id}", headers=auth())
    assert resp.status == 200
    assert (await resp.json())["state"] == "ended"
    resp = await client.get(f"{LESSONS_URL}/{lesson_id}", headers=auth())
    assert (await resp.json())["state"] == "ended"


async def test_delete_fires_on_ended_once(client: TestClient, app: web.Application) -> None:
    ended: list[str] = []
    app[LESSONS].on_ended.append(lambda lesson, reason: ended.append(lesson.id))
    lesson = await create(client)
    for _ in range(2):
        resp = await client.delete(f"{LESSONS_URL}/{lesson['id']}", headers=auth())
        assert resp.status == 200
    assert ended == [lesson["id"]]


async def test_failing_on_ended_callback_does_not_skip_the_others() -> None:
    registry = LessonRegistry()
    seen: list[str] = []

    def broken(lesson: Lesson, reason: str) -> None:
        raise RuntimeError("boom")

    registry.on_ended.extend([broken, lambda lesson, reason: seen.append(lesson.id)])
    start = datetime(2026, 11, 24, 9, tzinfo=MSK)
    lesson = Lesson(
        id="les_x",
        integration=KEY_A,
        group_id="5a",
        group_title="5А",
        subject="Математика",
        teacher=Person("t-1", "Анна", Role.TEACHER),
        roster=(),
        starts_at=start,
        ends_at=start + timedelta(minutes=45),
    )
    await registry.create(lesson)
    await registry.end("les_x", KEY_A, start)
    assert seen == ["les_x"]
    assert not (await registry.get("les_x")).active


async def test_ended_lesson_refuses_open_and_tokens(client: TestClient) -> None:
    lesson = await create(client)
    await client.delete(f"{LESSONS_URL}/{lesson['id']}", headers=auth())
    resp = await client.post(f"{LESSONS_URL}/{lesson['id']}/open", headers=auth())
    await expect_error(resp, 409, "lesson_ended")
    resp = await client.post(
        f"{LESSONS_URL}/{lesson['id']}/tokens",
        json={"user": {"id": "t-1", "name": "Анна"}, "role": "teacher"},
        headers=auth(),
    )
    await expect_error(resp, 409, "lesson_ended")


async def test_token_refused_once_scheduled_end_and_grace_passed(client: TestClient) -> None:
    past = datetime.now().astimezone() - timedelta(hours=3)
    body = lesson_body(
        starts_at=past.isoformat(), ends_at=(past + timedelta(minutes=45)).isoformat()
    )
    lesson = await create(client, body)
    resp = await client.post(
        f"{LESSONS_URL}/{lesson['id']}/tokens",
        json={"user": {"id": "t-1", "name": "Анна"}, "role": "teacher"},
        headers=auth(),
    )
    await expect_error(resp, 409, "lesson_ended")


# ---------------------------------------------------------------- one active lesson per class


async def test_second_active_lesson_for_class_conflicts(client: TestClient) -> None:
    first = await create(client)
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=auth())
    error = await expect_error(resp, 409, "lesson_conflict")
    assert error["active_lesson_id"] == first["id"]
    assert first["id"] in error["message"]
    # An open lesson is still active.
    await client.post(f"{LESSONS_URL}/{first['id']}/open", headers=auth())
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=auth())
    error = await expect_error(resp, 409, "lesson_conflict")
    assert error["active_lesson_id"] == first["id"]
    # Other classes, and the same class id in another integration, are independent.
    await create(client, lesson_body("5b"))
    await create(client, lesson_body("5a"), secret=SECRET_B)


async def test_second_lesson_allowed_once_first_ended(client: TestClient) -> None:
    first = await create(client)
    resp = await client.delete(f"{LESSONS_URL}/{first['id']}", headers=auth())
    assert resp.status == 200
    second = await create(client)
    assert second["id"] != first["id"]
    assert second["state"] == "created"


async def test_parallel_creates_for_one_class(client: TestClient, app: web.Application) -> None:
    responses = await asyncio.gather(
        *(client.post(LESSONS_URL, json=lesson_body(), headers=auth()) for _ in range(12))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 11
    created = next(r for r in responses if r.status == 201)
    winner = (await created.json())["id"]
    for resp in responses:
        if resp.status == 409:
            error = await expect_error(resp, 409, "lesson_conflict")
            assert error["active_lesson_id"] == winner
    assert [lesson.id for lesson in await app[LESSONS].list(KEY_A)] == [winner]


# ---------------------------------------------------------------- validation


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or with value=KeyError delete) a dotted path; digits index lists."""

    def apply(body: dict[str, Any]) -> None:
        target: Any = body
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return apply


def _dup_roster(body: dict[str, Any]) -> None:
    body["roster"][2]["id"] = body["roster"][0]["id"]


def _teacher_in_roster(body: dict[str, Any]) -> None:
    body["roster"][1]["id"] = body["teacher"]["id"]


def _naive(key: str) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        body[key] = datetime.fromisoformat(body[key]).replace(tzinfo=None).isoformat()

    return apply


def _end_before_start(body: dict[str, Any]) -> None:
    start = datetime.fromisoformat(body["starts_at"])
    body["ends_at"] = (start - timedelta(minutes=1)).isoformat()


def _end_equals_start(body: dict[str, Any]) -> None:
    body["ends_at"] = body["starts_at"]


def _too_long(body: dict[str, Any]) -> None:
    start = datetime.fromisoformat(body["starts_at"])
    body["ends_at"] = (start + timedelta(hours=12, minutes=1)).isoformat()


def _huge_roster(body: dict[str, Any]) -> None:
    body["roster"] = [{"id": f"s-{i}", "name": "Ученик", "role": "student"} for i in range(501)]


VALIDATION_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing group", _set("group", KeyError), "missing_field", "$.group"),
    ("missing subject", _set("subject", KeyError), "missing_field", "$.subject"),
    ("missing roster", _set("roster", KeyError), "missing_field", "$.roster"),
    ("missing starts_at", _set("starts_at", KeyError), "missing_field", "$.starts_at"),
    ("missing group title", _set("group.title", KeyError), "missing_field", "$.group.title"),
    ("missing teacher id", _set("teacher.id", KeyError), "missing_field", "$.teacher.id"),
    ("missing roster role", _set("roster.1.role", KeyError), "missing_field", "$.roster[1].role"),
    ("subject number", _set("subject", 5), "wrong_type", "$.subject"),
    ("group string", _set("group", "5a"), "wrong_type", "$.group"),
    ("group id number", _set("group.id", 5), "wrong_type", "$.group.id"),
    ("roster object", _set("roster", {}), "wrong_type", "$.roster"),
    ("roster entry string", _set("roster.0", "s-1"), "wrong_type", "$.roster[0]"),
    ("starts_at number", _set("starts_at", 1764000000), "wrong_type", "$.starts_at"),
    ("teacher name null", _set("teacher.name", None), "wrong_type", "$.teacher.name"),
    ("empty subject", _set("subject", ""), "invalid_value", "$.subject"),
    ("blank group id", _set("group.id", "   "), "invalid_value", "$.group.id"),
    ("long name", _set("teacher.name", "я" * 201), "invalid_value", "$.teacher.name"),
    ("bad roster role", _set("roster.2.role", "teacher"), "invalid_value", "$.roster[2].role"),
    ("roster too big", _huge_roster, "invalid_value", "$.roster"),
    ("unknown field", _set("room", "101"), "unknown_field", "$.room"),
    ("unknown nested", _set("teacher.email", "a@b.c"), "unknown_field", "$.teacher.email"),
    ("unknown in roster", _set("roster.0.age", 11), "unknown_field", "$.roster[0].age"),
    ("duplicate roster ids", _dup_roster, "duplicate_id", "$.roster[2].id"),
    ("teacher in roster", _teacher_in_roster, "duplicate_id", "$.roster[1].id"),
    ("naive starts_at", _naive("starts_at"), "naive_datetime", "$.starts_at"),
    ("naive ends_at", _naive("ends_at"), "naive_datetime", "$.ends_at"),
    ("garbage starts_at", _set("starts_at", "tomorrow"), "invalid_datetime", "$.starts_at"),
    ("date only", _set("ends_at", "2026-11-24"), "invalid_datetime", "$.ends_at"),
    (
        "impossible date",
        _set("starts_at", "2026-13-40T09:00:00+03:00"),
        "invalid_datetime",
        "$.starts_at",
    ),
    ("end before start", _end_before_start, "invalid_time_range", "$.ends_at"),
    ("end equals start", _end_equals_start, "invalid_time_range", "$.ends_at"),
    ("longer than 12h", _too_long, "lesson_too_long", "$.ends_at"),
]


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
async def test_create_validation(
    client: TestClient,
    app: web.Application,
    mutate: Callable[[dict[str, Any]], None],
    code: str,
    field: str,
) -> None:
    body = lesson_body()
    mutate(body)
    resp = await client.post(LESSONS_URL, json=body, headers=auth())
    await expect_error(resp, 400, code, field)
    # Nothing half-created: the list is empty and the class is free.
    assert await app[LESSONS].list(KEY_A) == []
    resp = await client.get(LESSONS_URL, headers=auth())
    assert (await resp.json()) == {"lessons": []}
    await create(client)


async def test_datetime_forms_accepted(client: TestClient) -> None:
    body = lesson_body(starts_at="2026-11-24T06:00:00Z", ends_at="2026-11-24T09:45:30.5+03:00")
    lesson = await create(client, body)
    assert datetime.fromisoformat(lesson["starts_at"]) == datetime.fromisoformat(
        "2026-11-24T06:00:00+00:00"
    )


async def test_empty_roster_allowed(client: TestClient) -> None:
    lesson = await create(client, lesson_body(roster=[]))
    assert lesson["roster"] == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "bad_json"),
        (b"", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b"null", "invalid_body"),
    ],
)
async def test_create_bad_body(
    client: TestClient, app: web.Application, data: bytes, code: str
) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    resp = await client.post(LESSONS_URL, data=data, headers=headers)
    await expect_error(resp, 400, code)
    assert await app[LESSONS].list(KEY_A) == []


async def test_body_too_large_is_json_413(client: TestClient, app: web.Application) -> None:
    body = lesson_body(subject="x" * (300 * 1024))
    resp = await client.post(LESSONS_URL, json=body, headers=auth())
    await expect_error(resp, 413, "body_too_large")
    assert await app[LESSONS].list(KEY_A) == []


# ---------------------------------------------------------------- tokens


async def mint(client: TestClient, lesson_id: str, user_id: str, role: str) -> ClientResponse:
    return await client.post(
        f"{LESSONS_URL}/{lesson_id}/tokens",
        json={"user": {"id": user_id, "name": "Кто-то"}, "role": role},
        headers=auth(),
    )


@pytest.mark.parametrize(
    ("user_id", "role"),
    [
        ("s-1", "teacher"),  # a student is not the teacher
        ("t-2", "teacher"),  # another teacher
        ("s-404", "student"),  # not on the roster
        ("p-1", "student"),  # on the roster, but as a parent
        ("s-1", "parent"),  # on the roster, but as a student
        ("t-1", "student"),  # the teacher is not a student
    ],
)
async def test_token_role_rules(client: TestClient, user_id: str, role: str) -> None:
    lesson = await create(client)
    resp = await mint(client, lesson["id"], user_id, role)
    error = await expect_error(resp, 403, "not_in_roster")
    assert user_id in error["message"]


async def test_guest_token_for_anybody(client: TestClient, app: web.Application) -> None:
    lesson = await create(client)
    for user_id in ("t-1", "s-1", "stranger"):
        resp = await mint(client, lesson["id"], user_id, "guest")
        assert resp.status == 201
        claims = app[TOKENS].verify((await resp.json())["token"], lesson["id"])
        assert claims.role is Role.GUEST


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"user": {"id": "s-1", "name": "Иван"}}, "missing_field", "$.role"),
        ({"role": "student"}, "missing_field", "$.user"),
        ({"user": {"id": "s-1"}, "role": "student"}, "missing_field", "$.user.name"),
        ({"user": {"id": "s-1", "name": "И"}, "role": "admin"}, "invalid_value", "$.role"),
        ({"user": {"id": 1, "name": "И"}, "role": "student"}, "wrong_type", "$.user.id"),
        ({"user": {"id": "", "name": "И"}, "role": "student"}, "invalid_value", "$.user.id"),
        (
            {"user": {"id": "s-1", "name": "И"}, "role": "student", "ttl": 60},
            "unknown_field",
            "$.ttl",
        ),
    ],
)
async def test_token_validation(
    client: TestClient, body: dict[str, Any], code: str, field: str
) -> None:
    lesson = await create(client)
    resp = await client.post(f"{LESSONS_URL}/{lesson['id']}/tokens", json=body, headers=auth())
    await expect_error(resp, 400, code, field)


async def test_token_for_one_lesson_does_not_open_another(
    client: TestClient, app: web.Application
) -> None:
    first = await create(client, lesson_body("5a"))
    second = await create(client, lesson_body("5b"))
    resp = await mint(client, first["id"], "s-1", "student")
    token = (await resp.json())["token"]
    app[TOKENS].verify(token, first["id"])
    with pytest.raises(TokenError):
        app[TOKENS].verify(token, second["id"])


# ---------------------------------------------------------------- not found / isolation


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/open"), ("POST", "/tokens")],
)
async def test_unknown_lesson_404(client: TestClient, method: str, suffix: str) -> None:
    body = {"user": {"id": "t-1", "name": "Анна"}, "role": "teacher"}
    resp = await client.request(
        method, f"{LESSONS_URL}/les_nope{suffix}", json=body, headers=auth()
    )
    await expect_error(resp, 404, "lesson_not_found")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/open"), ("POST", "/tokens")],
)
async def test_other_integrations_lesson_404(
    client: TestClient, app: web.Application, method: str, suffix: str
) -> None:
    lesson = await create(client, secret=SECRET_A)
    body = {"user": {"id": "t-1", "name": "Анна"}, "role": "teacher"}
    for headers in (auth(SECRET_B), auth_jwt(KEY_B, SECRET_B)):
        resp = await client.request(
            method, f"{LESSONS_URL}/{lesson['id']}{suffix}", json=body, headers=headers
        )
        await expect_error(resp, 404, "lesson_not_found")
    # Journal B changed nothing.
    assert (await app[LESSONS].get(lesson["id"])).state.value == "created"
    resp = await client.get(LESSONS_URL, headers=auth(SECRET_B))
    assert (await resp.json()) == {"lessons": []}


async def test_list_lessons_filters(client: TestClient) -> None:
    a = await create(client, lesson_body("5a"))
    b = await create(client, lesson_body("5b"))
    await client.delete(f"{LESSONS_URL}/{a['id']}", headers=auth())
    await create(client, lesson_body("5a"), secret=SECRET_B)

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"{LESSONS_URL}{query}", headers=auth())
        assert resp.status == 200
        return [lesson["id"] for lesson in (await resp.json())["lessons"]]

    assert await ids("") == [a["id"], b["id"]]
    assert await ids("?group_id=5a") == [a["id"]]
    assert await ids("?active=true") == [b["id"]]
    assert await ids("?active=false") == [a["id"]]
    resp = await client.get(f"{LESSONS_URL}?active=maybe", headers=auth())
    await expect_error(resp, 400, "invalid_value")


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-secret-wrong-secret"},
        {"Authorization": f"Bearer {SECRET_A}x"},
        {"Authorization": f"Bearer {SECRET_A[:-1]}"},
        {"Authorization": f"Basic {SECRET_A}"},
        {"Authorization": SECRET_A},
        {"Authorization": "Bearer a.b.c"},
    ],
    ids=[
        "none",
        "empty",
        "bearer-only",
        "wrong",
        "longer",
        "prefix",
        "basic",
        "no-scheme",
        "junk-jwt",
    ],
)
async def test_bad_credentials_401(
    client: TestClient, app: web.Application, headers: dict[str, str]
) -> None:
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=headers)
    await expect_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await app[LESSONS].list(KEY_A) == []


async def test_every_route_needs_auth(client: TestClient) -> None:
    lesson = await create(client)
    for method, path in [
        ("GET", LESSONS_URL),
        ("GET", f"{LESSONS_URL}/{lesson['id']}"),
        ("POST", f"{LESSONS_URL}/{lesson['id']}/open"),
        ("POST", f"{LESSONS_URL}/{lesson['id']}/tokens"),
        ("DELETE", f"{LESSONS_URL}/{lesson['id']}"),
    ]:
        resp = await client.request(method, path)
        await expect_error(resp, 401, "unauthorized")
    resp = await client.get(f"{LESSONS_URL}/{lesson['id']}", headers=auth())
    assert (await resp.json())["state"] == "created"


async def test_jwt_auth_works(client: TestClient, app: web.Application) -> None:
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=auth_jwt())
    assert resp.status == 201
    lesson = await resp.json()
    assert (await app[LESSONS].get(lesson["id"])).integration == KEY_A
    # Full five minutes, and the optional API audience, are fine.
    resp = await client.get(
        f"{LESSONS_URL}/{lesson['id']}", headers=auth_jwt(lifetime=300, extra={"aud": "urok-api"})
    )
    assert resp.status == 200
    # Journal B's JWT authenticates journal B.
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=auth_jwt(KEY_B, SECRET_B))
    assert resp.status == 201
    lesson_id = (await resp.json())["id"]
    assert (await app[LESSONS].get(lesson_id)).integration == KEY_B


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(auth_jwt(iat=0, lifetime=60), id="expired-long-ago"),
        pytest.param(auth_jwt(iat=time.time() - 200, lifetime=120), id="expired"),
        pytest.param(auth_jwt("journal-x"), id="unknown-kid"),
        pytest.param(auth_jwt(KEY_A, SECRET_B), id="wrong-secret"),
        pytest.param(auth_jwt(KEY_B, SECRET_A), id="kid-of-other-journal"),
        pytest.param(auth_jwt(lifetime=301), id="lives-too-long"),
        pytest.param(auth_jwt(iat=time.time() + 3600), id="iat-in-future"),
        pytest.param(auth_jwt(algorithm="HS512"), id="hs512"),
        pytest.param(auth_jwt(extra={"aud": "urok-call"}), id="call-audience"),
    ],
)
async def test_bad_jwt_401(client: TestClient, headers: dict[str, str]) -> None:
    resp = await client.post(LESSONS_URL, json=lesson_body(), headers=headers)
    await expect_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("missing", ["iat", "exp"])
async def test_jwt_without_iat_or_exp_401(client: TestClient, missing: str) -> None:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60}
    del claims[missing]
    token = jwt.encode(claims, SECRET_A, algorithm="HS256", headers={"kid": KEY_A})
    resp = await client.get(LESSONS_URL, headers={"Authorization": f"Bearer {token}"})
    error = await expect_error(resp, 401, "unauthorized")
    assert missing in error["message"]


async def test_jwt_without_kid_or_alg_none_401(client: TestClient) -> None:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60}
    no_kid = jwt.encode(claims, SECRET_A, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": KEY_A})
    for token in (no_kid, unsigned):
        resp = await client.get(LESSONS_URL, headers={"Authorization": f"Bearer {token}"})
        await expect_error(resp, 401, "unauthorized")


async def test_join_token_is_not_an_api_credential(client: TestClient) -> None:
    lesson = await create(client)
    resp = await mint(client, lesson["id"], "t-1", "teacher")
    token = (await resp.json())["token"]
    resp = await client.get(LESSONS_URL, headers={"Authorization": f"Bearer {token}"})
    await expect_error(resp, 401, "unauthorized")


# ---------------------------------------------------------------- JSON errors scope


async def test_api_http_errors_are_json(client: TestClient) -> None:
    resp = await client.put(LESSONS_URL, headers=auth())
    await expect_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    resp = await client.get("/api/v1/nothing-here", headers=auth())
    await expect_error(resp, 404, "not_found")


async def test_other_paths_are_left_alone(client: TestClient) -> None:
    resp = await client.get("/not-api")
    assert resp.status == 404
    assert resp.content_type != "application/json"


async def test_openapi_served_without_auth(client: TestClient) -> None:
    resp = await client.get("/api/v1/openapi.yaml")
    assert resp.status == 200
    assert resp.content_type == "application/yaml"
    assert (await resp.text()).startswith("openapi: 3.1")
