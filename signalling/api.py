"""The journal integration API (server-to-server), under /api/v1/.

Described in signalling/openapi.yaml, which is also where the request schemas
used for validation here come from, so the description and the checks agree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from rooms.lessons import (
    Lesson,
    LessonConflict,
    LessonNotFound,
    LessonState,
    Person,
    Role,
    new_lesson_id,
)
from rooms.names import BadName, clean_name
from rooms.schedule import ScheduleError, check_schedule
from signalling.auth import AuthError, authenticate
from signalling.config import Integration, Settings
from signalling.errors import HttpError, error_response
from signalling.keys import LESSONS, SETTINGS, TOKENS
from signalling.protocol import decode_json
from signalling.protocol_document import client_messages_schema_text
from signalling.schema_check import SchemaCheck, SchemaError

log = logging.getLogger(__name__)

API_PREFIX = "/api/"

OPENAPI_TEXT: str = resources.files("signalling").joinpath("openapi.yaml").read_text("utf-8")
OPENAPI: dict[str, Any] = yaml.safe_load(OPENAPI_TEXT)
# Journal bodies: a 500-person roster is ~2,000 values.
MAX_BODY_VALUES = 4096


def _validator(schema_name: str) -> SchemaCheck:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    return SchemaCheck(ref, {"components": OPENAPI["components"]})


LESSON_CREATE = _validator("LessonCreate")
TOKEN_REQUEST = _validator("TokenRequest")

# ISO-8601 date and time, optional seconds and fraction, optional offset.
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?$"
)


# The API's errors are the server's one error shape (signalling.errors).
ApiError = HttpError


class ValidationFailed(ApiError):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(400, code, message, field=field)


# Codes for aiohttp's own HTTP errors raised on /api/ paths.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    401: ("unauthorized", "Authentication is required."),
    403: ("forbidden", "This is not allowed."),
    404: ("not_found", "There is no such API endpoint."),
    405: ("method_not_allowed", "This endpoint does not accept that HTTP method."),
    413: ("body_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be JSON."),
}
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer every error on /api/ paths as JSON; leave other paths alone."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", f"HTTP error {exc.status}."))
        headers = {k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
        return error_response(exc.status, code, message, headers)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "The server failed to handle the request.")


# ---------------------------------------------------------------- helpers


def _integration(request: web.Request) -> Integration:
    try:
        return authenticate(request.app[SETTINGS], request.headers.get("Authorization"))
    except AuthError as exc:
        err = ApiError(401, "unauthorized", str(exc))
        err.headers["WWW-Authenticate"] = 'Bearer realm="urok-api"'
        raise err from exc


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = decode_json(raw, MAX_BODY_VALUES)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = str(exc)[:150]
        raise ApiError(400, "bad_json", f"The request body is not valid JSON ({reason}).") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.", field="$")
    return body


def _child(path: str, name: str) -> str:
    return f"{path}.{name}"


def _display(path: str) -> str:
    return path.removeprefix("$.") if path != "$" else "The body"


_TYPE_WORDS = {
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def _schema_failure(error: SchemaError) -> ValidationFailed:
    """Turn a schema error into a clear message with a field path."""
    path = error.json_path
    kind = error.keyword
    detail = error.detail
    if kind == "required":
        field = _child(path, str(detail.get("property", "")))
        return ValidationFailed("missing_field", f"{_display(field)} is required.", field)
    if kind == "additionalProperties":
        extra = [str(k) for k in detail.get("unexpected", [])]
        field = _child(path, extra[0][:50]) if extra else path
        return ValidationFailed("unknown_field", f"{_display(field)} is not a known field.", field)
    where = _display(path)
    if kind == "type":
        types = detail.get("types", [])
        word = _TYPE_WORDS.get(types[0], types[0]) if len(types) == 1 else " or ".join(types)
        return ValidationFailed("wrong_type", f"{where} must be {word}.", path)
    if kind in ("minLength", "pattern"):
        return ValidationFailed("invalid_value", f"{where} must not be empty.", path)
    if kind == "maxLength":
        return ValidationFailed(
            "invalid_value", f"{where} must be at most {detail.get('limit')} characters.", path
        )
    if kind == "maxItems":
        return ValidationFailed(
            "invalid_value", f"{where} must have at most {detail.get('limit')} entries.", path
        )
    if kind == "enum":
        allowed = ", ".join(str(v) for v in detail.get("options", []))
        return ValidationFailed("invalid_value", f"{where} must be one of: {allowed}.", path)
    return ValidationFailed("invalid_value", f"{where} is invalid: {error.describe()}.", path)


def _validate(validator: SchemaCheck, body: dict[str, Any]) -> None:
    error = validator.first_error(body)
    if error is not None:
        raise _schema_failure(error)


def _parse_datetime(value: str, field: str) -> datetime:
    match = _DATETIME.match(value)
    try:
        if match is None:
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            "invalid_datetime",
            f"{_display(field)} must be an ISO-8601 date and time such as "
            "2026-11-24T09:00:00+03:00.",
            field,
        ) from exc
    if match.group("offset") is None or parsed.tzinfo is None:
        raise ValidationFailed(
            "naive_datetime",
            f"{_display(field)} must carry a UTC offset, such as +03:00 or Z.",
            field,
        )
    return parsed


def shown_name(value: str, field: str, max_length: int = 200) -> str:
    """A name or title as it will be shown (rooms.names), or a 400 naming the field."""
    try:
        return clean_name(value, max_length)
    except BadName as exc:
        shown = _display(field)
        if exc.code == "name_empty":
            message = f"{shown} must contain visible characters."
        else:
            message = f"{shown} must be at most {max_length} characters."
        raise ValidationFailed("invalid_value", message, field) from exc


def check_roster_ids(host_id: str, roster: list[dict[str, Any]], host: str) -> None:
    """Roster ids are unique and differ from the host's (teacher's) id."""
    seen = {host_id}
    for index, entry in enumerate(roster):
        if entry["id"] in seen:
            field = f"$.roster[{index}].id"
            other = host if entry["id"] == host_id else "another roster entry"
            raise ValidationFailed(
                "duplicate_id", f"roster[{index}].id {entry['id']!r} is also {other}'s id.", field
            )
        seen.add(entry["id"])


def check_times(
    settings: Settings,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    prefix: str,
    too_long: str,
    until: date | None = None,
) -> None:
    """The schedule bounds (rooms.schedule) as a 400 naming the field under `prefix`."""
    try:
        check_schedule(starts_at, ends_at, now, settings.schedule_limits, until)
    except ScheduleError as exc:
        field = f"{prefix}{exc.field}"
        code = too_long if exc.code == "too_long" else exc.code
        raise ValidationFailed(code, f"{field.removeprefix('$.')}: {exc.message}", field) from exc


def _lesson_from_body(
    body: dict[str, Any], integration: Integration, settings: Settings, now: datetime
) -> Lesson:
    """Validate a create request (synchronously) and build the lesson it describes."""
    _validate(LESSON_CREATE, body)
    teacher = body["teacher"]
    check_roster_ids(teacher["id"], body["roster"], "the teacher")
    starts_at = _parse_datetime(body["starts_at"], "$.starts_at")
    ends_at = _parse_datetime(body["ends_at"], "$.ends_at")
    check_times(settings, starts_at, ends_at, now, "$.", "lesson_too_long")
    return Lesson(
        id=new_lesson_id(),
        integration=integration.key_id,
        group_id=body["group"]["id"],
        group_title=shown_name(body["group"]["title"], "$.group.title"),
        subject=shown_name(body["subject"], "$.subject"),
        teacher=Person(
            id=teacher["id"], name=shown_name(teacher["name"], "$.teacher.name"), role=Role.TEACHER
        ),
        roster=roster_people(body["roster"]),
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
    )


def roster_people(roster: list[dict[str, Any]]) -> tuple[Person, ...]:
    return tuple(
        Person(
            id=entry["id"],
            name=shown_name(entry["name"], f"$.roster[{index}].name"),
            role=Role(entry["role"]),
        )
        for index, entry in enumerate(roster)
    )


def _call_url(settings: Settings, lesson_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/call/{lesson_id}"


def lesson_json(lesson: Lesson, settings: Settings) -> dict[str, Any]:
    return {
        "id": lesson.id,
        "state": lesson.state.value,
        "group": {"id": lesson.group_id, "title": lesson.group_title},
        "subject": lesson.subject,
        "teacher": {"id": lesson.teacher.id, "name": lesson.teacher.name},
        "roster": [{"id": p.id, "name": p.name, "role": p.role.value} for p in lesson.roster],
        "starts_at": lesson.starts_at.isoformat(),
        "ends_at": lesson.ends_at.isoformat(),
        "title": lesson.title,
        "call_url": _call_url(settings, lesson.id),
        "kind": lesson.kind.value,
    }


async def _lesson(request: web.Request, integration: Integration) -> Lesson:
    lesson_id = request.match_info["lesson_id"]
    try:
        return await request.app[LESSONS].get(lesson_id, integration.key_id)
    except LessonNotFound as exc:
        raise ApiError(404, "lesson_not_found", f"There is no lesson {lesson_id[:100]!r}.") from exc


def _ended(lesson: Lesson) -> ApiError:
    return ApiError(409, "lesson_ended", f"Lesson {lesson.id} has ended.")


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- handlers


async def create_lesson(request: web.Request) -> web.Response:
    integration = _integration(request)
    body = await _json_object(request)
    # The store checks and inserts atomically (on one loop, or in Redis for
    # several nodes), so parallel creates for one class cannot both succeed.
    lesson = _lesson_from_body(body, integration, request.app[SETTINGS], _now())
    registry = request.app[LESSONS]
    try:
        await registry.create(lesson)
    except LessonConflict as exc:
        active = exc.active
        raise ApiError(
            409,
            "lesson_conflict",
            f"Class {active.group_id!r} already has an active lesson {active.id}; "
            "end it before creating another.",
            active_lesson_id=active.id,
        ) from exc
    log.info("lesson %s created for %s/%s", lesson.id, integration.key_id, lesson.group_id)
    return web.json_response(lesson_json(lesson, request.app[SETTINGS]), status=201)


async def list_lessons(request: web.Request) -> web.Response:
    integration = _integration(request)
    group_id = request.query.get("group_id")
    active = request.query.get("active")
    if active not in (None, "true", "false"):
        raise ApiError(400, "invalid_value", "The active parameter must be true or false.")
    lessons = [
        lesson
        for lesson in await request.app[LESSONS].list(integration.key_id, group_id)
        if active is None or lesson.active == (active == "true")
    ]
    settings = request.app[SETTINGS]
    return web.json_response({"lessons": [lesson_json(lesson, settings) for lesson in lessons]})


async def get_lesson(request: web.Request) -> web.Response:
    lesson = await _lesson(request, _integration(request))
    return web.json_response(lesson_json(lesson, request.app[SETTINGS]))


async def open_lesson(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson = await _lesson(request, integration)
    if lesson.state is LessonState.ENDED:
        raise _ended(lesson)
    lesson = await request.app[LESSONS].open(lesson.id, integration.key_id, _now())
    log.info("lesson %s opened", lesson.id)
    return web.json_response(lesson_json(lesson, request.app[SETTINGS]))


async def end_lesson(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson = await _lesson(request, integration)
    if lesson.active:
        lesson = await request.app[LESSONS].end(lesson.id, integration.key_id, _now())
        log.info("lesson %s ended by %s", lesson.id, integration.key_id)
    return web.json_response(lesson_json(lesson, request.app[SETTINGS]))


def _check_role(lesson: Lesson, user_id: str, role: Role) -> None:
    if role is Role.GUEST:
        return
    if role is Role.TEACHER:
        if user_id != lesson.teacher.id:
            raise ApiError(
                403, "not_in_roster", f"User {user_id!r} is not the teacher of lesson {lesson.id}."
            )
        return
    person = next((p for p in lesson.roster if p.id == user_id), None)
    if person is None or person.role is not role:
        raise ApiError(
            403,
            "not_in_roster",
            f"User {user_id!r} is not on the roster of lesson {lesson.id} as a {role.value}.",
        )


def token_expiry(lesson: Lesson, settings: Settings) -> datetime:
    """When join tokens for the lesson expire: its scheduled end plus the grace period."""
    # Whole seconds, as in the token's exp claim.
    expires_ts = int((lesson.ends_at + timedelta(seconds=settings.token_grace_seconds)).timestamp())
    return datetime.fromtimestamp(expires_ts, lesson.ends_at.tzinfo)


async def mint_token(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson = await _lesson(request, integration)
    body = await _json_object(request)
    _validate(TOKEN_REQUEST, body)
    if not lesson.active:
        raise _ended(lesson)
    user, role = body["user"], Role(body["role"])
    _check_role(lesson, user["id"], role)
    settings = request.app[SETTINGS]
    now = _now()
    expires_at = token_expiry(lesson, settings)
    if expires_at <= now:
        raise ApiError(
            409,
            "lesson_ended",
            f"Lesson {lesson.id} is over: its scheduled end and the grace period have passed.",
        )
    token = request.app[TOKENS].mint(
        key_id=integration.key_id,
        lesson_id=lesson.id,
        user_id=user["id"],
        name=shown_name(user["name"], "$.user.name", 100),
        role=role,
        now=now,
        expires_at=expires_at,
    )
    body_out = {
        "token": token,
        "url": f"{_call_url(settings, lesson.id)}#token={token}",
        "expires_at": expires_at.isoformat(),
    }
    return web.json_response(body_out, status=201, headers={"Cache-Control": "no-store"})


async def protocol_schema(request: web.Request) -> web.Response:
    return web.Response(text=client_messages_schema_text(), content_type="application/schema+json")


async def openapi_yaml(request: web.Request) -> web.Response:
    return web.Response(text=OPENAPI_TEXT, content_type="application/yaml")


def setup(app: web.Application) -> None:
    """Register the /api/ routes and their JSON error middleware.

    Needs only app[SETTINGS], app[LESSONS] and app[TOKENS]. The ad-hoc calls'
    routes (adhoc.setup_api) build on this module and register themselves.
    """
    app.middlewares.append(json_errors)
    router = app.router
    router.add_post("/api/v1/lessons", create_lesson, name="api_create_lesson")
    router.add_get("/api/v1/lessons", list_lessons, name="api_list_lessons", allow_head=False)
    router.add_get(
        "/api/v1/lessons/{lesson_id}", get_lesson, name="api_get_lesson", allow_head=False
    )
    router.add_delete("/api/v1/lessons/{lesson_id}", end_lesson, name="api_end_lesson")
    router.add_post("/api/v1/lessons/{lesson_id}/open", open_lesson, name="api_open_lesson")
    router.add_post("/api/v1/lessons/{lesson_id}/tokens", mint_token, name="api_mint_token")
    router.add_get("/api/v1/openapi.yaml", openapi_yaml, name="api_openapi", allow_head=False)
    router.add_get(
        "/api/v1/protocol.schema.json",
        protocol_schema,
        name="api_protocol_schema",
        allow_head=False,
    )
