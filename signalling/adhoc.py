"""Ad-hoc calls by link: the `/api/v1/calls` routes and the invite link `/invite/{code}`.

An ad-hoc call (a parent meeting, a teacher seminar) is a Lesson record of
kind `adhoc`: subject = the call's title, no class title, teacher = the host,
roster = the people invited by name (maybe nobody). Its class (group id) is
`call:<series id>`, unique to the call, so the one-active-lesson-per-class
rule never bites; everything that works on lessons (join tokens, the call
page, the WebSocket, webhooks, chat history) works on it unchanged. Its
waiting room and guest switches are the call's CallSettings in the store.

A call may repeat daily or weekly. Each occurrence is its own record (own id,
chat, attendance, lesson.ended webhook); when one ends by time or by its host,
LessonRegistry.continue_series creates the next in the same series. The series
id is the first occurrence's id; `/api/v1/calls/{call_id}` takes it (or any
occurrence's id) and answers the series' current occurrence.

The invite link carries `<series id>.<MAC>`, the MAC being HMAC-SHA256 under
the owning integration's secret: nothing is stored for it, nobody can make one
for a call without the secret, and it stays the same for the whole series.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from aiohttp import web

from rooms.lessons import (
    SERIES_PREFIX,
    Lesson,
    LessonKind,
    LessonNotFound,
    Person,
    Repeat,
    Role,
    new_lesson_id,
)
from rooms.model import CallSettings
from signalling.api import (
    ApiError,
    ValidationFailed,
    _call_url,
    _integration,
    _json_object,
    _now,
    _parse_datetime,
    _validate,
    _validator,
    check_roster_ids,
    check_times,
    lesson_json,
    roster_people,
    shown_name,
    token_expiry,
)
from signalling.config import Integration, Settings
from signalling.keys import CALLS, LESSONS, SETTINGS, TOKENS

log = logging.getLogger(__name__)

CALL_CREATE = _validator("CallCreate")
CALL_UPDATE = _validator("CallUpdate")
GUEST_JOIN = _validator("GuestJoin")

# Without a schedule a call starts now and lasts this long.
DEFAULT_CALL_DURATION = timedelta(hours=2)

# The invite code: "<series id>.<22 characters of base64url MAC>".
_MAC_BYTES = 16
INVITE_CODE_PATTERN = r"[A-Za-z0-9_\-]{1,64}\.[A-Za-z0-9_\-]{22}"
_MAC_CONTEXT = b"urok-invite-v1:"

LANGUAGES = ("ru", "en")


# ---------------------------------------------------------------- invite codes


def invite_code(secret: str, series_id: str) -> str:
    mac = hmac.new(secret.encode(), _MAC_CONTEXT + series_id.encode(), hashlib.sha256).digest()
    tag = base64.urlsafe_b64encode(mac[:_MAC_BYTES]).rstrip(b"=").decode("ascii")
    return f"{series_id}.{tag}"


def parse_invite_code(settings: Settings, code: str) -> tuple[Integration, str] | None:
    """(owning integration, series id) of a genuine code; None for anything else."""
    series_id, dot, _ = code.rpartition(".")
    if not dot or not series_id or not code.isascii():
        return None
    found = None
    for integration in settings.integrations:
        expected = invite_code(integration.secret, series_id)
        if hmac.compare_digest(expected.encode(), code.encode()):
            found = integration
    return (found, series_id) if found is not None else None


def invite_url(settings: Settings, integration: Integration, series_id: str) -> str:
    code = invite_code(integration.secret, series_id)
    return f"{settings.public_url.rstrip('/')}/invite/{code}"


# ---------------------------------------------------------------- the calls API


def _parse_date(value: str, field: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(
            "invalid_date", f"{field.removeprefix('$.')} must be a date such as 2026-12-25.", field
        ) from exc


def _schedule(
    schedule: dict[str, Any] | None, settings: Settings, now: datetime
) -> tuple[datetime, datetime, Repeat, date | None]:
    """(starts_at, ends_at, repeat, until) of a create request's schedule, validated."""
    if schedule is None:
        starts_at = now.replace(microsecond=0)
        return starts_at, starts_at + DEFAULT_CALL_DURATION, Repeat.NONE, None
    starts_at = _parse_datetime(schedule["starts_at"], "$.schedule.starts_at")
    ends_at = _parse_datetime(schedule["ends_at"], "$.schedule.ends_at")
    check_times(settings, starts_at, ends_at, now, "$.schedule.", "call_too_long")
    if ends_at <= now:
        raise ValidationFailed(
            "invalid_time_range",
            "schedule.ends_at is in the past: the first occurrence must still be ahead.",
            "$.schedule.ends_at",
        )
    repeat = Repeat(schedule.get("repeat", Repeat.NONE.value))
    until: date | None = None
    if "until" in schedule:
        until = _parse_date(schedule["until"], "$.schedule.until")
        if repeat is Repeat.NONE:
            raise ValidationFailed(
                "invalid_value",
                "schedule.until needs schedule.repeat daily or weekly.",
                "$.schedule.until",
            )
        if until < starts_at.date():
            raise ValidationFailed(
                "invalid_time_range",
                "schedule.until must not be before the date of schedule.starts_at.",
                "$.schedule.until",
            )
    check_times(settings, starts_at, ends_at, now, "$.schedule.", "call_too_long", until)
    return starts_at, ends_at, repeat, until


def _call_from_body(
    body: dict[str, Any], integration: Integration, settings: Settings, now: datetime
) -> tuple[Lesson, CallSettings]:
    """Validate a create request and build the call's first occurrence and settings."""
    for misplaced in ("repeat", "until"):
        if misplaced in body:
            raise ValidationFailed(
                "schedule_required",
                f"{misplaced} belongs in schedule, next to starts_at and ends_at: "
                "only a scheduled call repeats.",
                f"$.{misplaced}",
            )
    _validate(CALL_CREATE, body)
    host = body["host"]
    roster = body.get("roster", [])
    check_roster_ids(host["id"], roster, "the host")
    starts_at, ends_at, repeat, until = _schedule(body.get("schedule"), settings, now)
    call_id = new_lesson_id()
    lesson = Lesson(
        id=call_id,
        integration=integration.key_id,
        group_id=SERIES_PREFIX + call_id,
        group_title="",
        subject=shown_name(body["title"], "$.title"),
        teacher=Person(
            id=host["id"], name=shown_name(host["name"], "$.host.name"), role=Role.TEACHER
        ),
        roster=roster_people(roster),
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
        kind=LessonKind.ADHOC,
        repeat=repeat,
        until=until,
    )
    call_settings = CallSettings(
        waiting_room=body.get("waiting_room", False),
        guests_allowed=body.get("guests_allowed", True),
    )
    return lesson, call_settings


def call_json(
    lesson: Lesson, call_settings: CallSettings, settings: Settings, integration: Integration
) -> dict[str, Any]:
    """The AdhocCall object: the occurrence as a lesson, plus the series and its settings."""
    body = lesson_json(lesson, settings)
    del body["group"]  # "call:<series id>", no title: nothing a caller needs
    series_id = lesson.series_id or lesson.id
    body.update(
        series_id=series_id,
        invite_url=invite_url(settings, integration, series_id),
        waiting_room=call_settings.waiting_room,
        guests_allowed=call_settings.guests_allowed,
        repeat=lesson.repeat.value,
        until=lesson.until.isoformat() if lesson.until else None,
    )
    return body


async def _respond(
    request: web.Request, integration: Integration, lesson: Lesson, status: int = 200
) -> web.Response:
    call_settings = await request.app[LESSONS].store.get_settings(lesson.id)
    body = call_json(lesson, call_settings, request.app[SETTINGS], integration)
    return web.json_response(body, status=status)


async def _current_call(request: web.Request, integration: Integration) -> Lesson:
    """The current occurrence of the series named in the path (by any occurrence's id)."""
    call_id = request.match_info["call_id"]
    registry = request.app[LESSONS]
    lesson = await registry.current_in_series(integration.key_id, call_id)
    if lesson is None:
        try:
            one = await registry.get(call_id, integration.key_id)
        except LessonNotFound:
            one = None
        if one is not None and one.series_id is not None:
            lesson = await registry.current_in_series(integration.key_id, one.series_id)
    if lesson is None:
        raise ApiError(404, "call_not_found", f"There is no ad-hoc call {call_id[:100]!r}.")
    return lesson


async def create_call(request: web.Request) -> web.Response:
    integration = _integration(request)
    body = await _json_object(request)
    now = _now()
    lesson, call_settings = _call_from_body(body, integration, request.app[SETTINGS], now)
    registry = request.app[LESSONS]
    # Settings first, so nobody can join before the switches are in place.
    await registry.store.set_settings(lesson.id, call_settings)
    await registry.create(lesson)  # its class is its own: no conflict possible
    lesson = await registry.open(lesson.id, integration.key_id, now)
    log.info("ad-hoc call %s created for %s (%s)", lesson.id, integration.key_id, lesson.repeat)
    return await _respond(request, integration, lesson, status=201)


async def get_call(request: web.Request) -> web.Response:
    integration = _integration(request)
    return await _respond(request, integration, await _current_call(request, integration))


async def update_call(request: web.Request) -> web.Response:
    integration = _integration(request)
    body = await _json_object(request)
    _validate(CALL_UPDATE, body)
    lesson = await _current_call(request, integration)
    if not lesson.active:
        raise ApiError(409, "call_ended", f"Call {lesson.series_id} has ended.")
    registry = request.app[LESSONS]
    calls = request.app.get(CALLS)
    running = calls.get(lesson.id) if calls is not None else None
    if "title" in body:
        title = shown_name(body["title"], "$.title")
        lesson = await registry.update(lesson.id, lambda current: replace(current, subject=title))
        if running is not None:
            running.lesson = lesson  # what people joining from now on are told
    changes = {k: body[k] for k in ("waiting_room", "guests_allowed") if k in body}
    if changes:
        if running is not None:
            # The host's switch in the call takes this path too: everyone in it
            # hears, and turning the waiting room off lets whoever waits in.
            await running.change_settings(**changes)
        else:
            store = registry.store
            await store.set_settings(
                lesson.id, replace(await store.get_settings(lesson.id), **changes)
            )
        log.info("ad-hoc call %s settings changed: %s", lesson.id, changes)
    return await _respond(request, integration, lesson)


async def end_call(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson = await _current_call(request, integration)
    if lesson.active:
        # Reason "ended" (by the journal): a repeating series ends for good.
        lesson = await request.app[LESSONS].end(lesson.id, integration.key_id, _now())
        log.info("ad-hoc call %s ended by %s", lesson.id, integration.key_id)
    return await _respond(request, integration, lesson)


def setup_api(app: web.Application) -> None:
    router = app.router
    router.add_post("/api/v1/calls", create_call, name="api_create_call")
    router.add_get("/api/v1/calls/{call_id}", get_call, name="api_get_call", allow_head=False)
    router.add_patch("/api/v1/calls/{call_id}", update_call, name="api_update_call")
    router.add_delete("/api/v1/calls/{call_id}", end_call, name="api_end_call")


# ---------------------------------------------------------------- the invite link


@cache
def catalog(lang: str) -> dict[str, str]:
    """The invite page's strings (web_client/static/i18n/invite.<lang>.json)."""
    from signalling.pages import WEB_CLIENT

    path = WEB_CLIENT / "static" / "i18n" / f"invite.{lang}.json"
    data: dict[str, str] = json.loads(path.read_text("utf-8"))
    return data


def _language(request: web.Request) -> str:
    lang = request.query.get("lang")
    if lang in LANGUAGES:
        return lang
    default = request.app[SETTINGS].default_language
    return default if default in LANGUAGES else "ru"


async def _invited_call(request: web.Request) -> tuple[Integration, Lesson]:
    """The integration and current occurrence the code is for; ApiError 404 / 410."""
    parsed = parse_invite_code(request.app[SETTINGS], request.match_info["code"])
    lesson = None
    if parsed is not None:
        integration, series_id = parsed
        lesson = await request.app[LESSONS].current_in_series(integration.key_id, series_id)
    if parsed is None or lesson is None:
        # Forged, mistyped, or a series the store has forgotten.
        raise ApiError(404, "invite_not_found", "This invite link is not valid.")
    if not lesson.active:
        raise ApiError(410, "call_ended", "This call has ended.")
    return integration, lesson


def invite_page_csp(settings: Settings) -> str:
    from signalling.pages import frame_ancestors

    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {' '.join(frame_ancestors(settings))}",
        ]
    )


_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <link rel="icon" href="data:,">
  <title>{page_title}</title>
  <link rel="stylesheet" href="/static/css/invite.css">
  <script type="module" src="/static/js/invite.js"></script>
</head>
<body>
  <main class="invite-card">
{content}
  </main>
</body>
</html>
"""

_FORM = """    <p class="invite-eyebrow">{heading}</p>
    <h1 class="invite-title">{title}</h1>
    <p id="invite-when" class="invite-when" data-starts="{starts}" data-ends="{ends}"></p>
    <form id="invite-form" class="invite-form" novalidate{messages}>
      <label for="invite-name">{name_label}</label>
      <input id="invite-name" name="name" type="text" maxlength="100" autocomplete="name"
             placeholder="{name_placeholder}" required>
      <button id="invite-join" type="submit">{join}</button>
      <p id="invite-error" class="invite-error" role="alert" hidden></p>
    </form>
    <p class="invite-note">{note}</p>"""

_NOTICE = """    <h1 class="invite-title">{title}</h1>
    <p class="invite-note">{text}</p>"""


def _render(lang: str, content: str) -> str:
    strings = catalog(lang)
    return _PAGE.format(lang=lang, page_title=html.escape(strings["page_title"]), content=content)


def _page_response(request: web.Request, status: int, body: str) -> web.Response:
    headers = {
        "Content-Security-Policy": invite_page_csp(request.app[SETTINGS]),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


async def invite_page(request: web.Request) -> web.Response:
    """The invite page: the call's title, a name field and "Войти" (or why not)."""
    lang = _language(request)
    strings = catalog(lang)
    esc = html.escape
    try:
        _, lesson = await _invited_call(request)
    except ApiError as exc:
        key = "not_found" if exc.status == 404 else "ended"
        content = _NOTICE.format(
            title=esc(strings[f"{key}.title"]), text=esc(strings[f"{key}.text"])
        )
        return _page_response(request, exc.status, _render(lang, content))
    # Messages the script shows for each error code, e.g. data-error-call-ended.
    messages = "".join(
        f' data-{name.replace(".", "-").replace("_", "-")}="{esc(text)}"'
        for name, text in strings.items()
        if name.startswith("errors.") or name == "joining"
    )
    content = _FORM.format(
        heading=esc(strings["heading"]),
        title=esc(lesson.title),
        starts=esc(lesson.starts_at.isoformat()),
        ends=esc(lesson.ends_at.isoformat()),
        messages=messages,
        name_label=esc(strings["name_label"]),
        name_placeholder=esc(strings["name_placeholder"]),
        join=esc(strings["join"]),
        note=esc(strings["note"]),
    )
    return _page_response(request, 200, _render(lang, content))


async def invite_join(request: web.Request) -> web.Response:
    """POST {name}: a guest join token for the call's current occurrence."""
    try:
        response = await _invite_join(request)
    except ApiError as exc:
        response = exc.response()
    response.headers["Cache-Control"] = "no-store"
    return response


async def _invite_join(request: web.Request) -> web.Response:
    integration, lesson = await _invited_call(request)
    body = await _json_object(request)
    _validate(GUEST_JOIN, body)
    name = shown_name(body["name"], "$.name", 100)
    if not (await request.app[LESSONS].store.get_settings(lesson.id)).guests_allowed:
        raise ApiError(403, "guests_not_allowed", "The host does not let guests join this call.")
    settings = request.app[SETTINGS]
    now = _now()
    expires_at = token_expiry(lesson, settings)
    if expires_at <= now:
        raise ApiError(410, "call_ended", "This call is over.")
    token = request.app[TOKENS].mint(
        key_id=integration.key_id,
        lesson_id=lesson.id,
        user_id="guest-" + secrets.token_urlsafe(9),
        name=name,
        role=Role.GUEST,
        now=now,
        expires_at=expires_at,
    )
    log.info("guest token for call %s by invite", lesson.id)
    url = f"{_call_url(settings, lesson.id)}#token={token}"
    return web.json_response(
        {"token": token, "url": url, "expires_at": expires_at.isoformat()}, status=201
    )


def setup_pages(app: web.Application) -> None:
    router = app.router
    path = f"/invite/{{code:{INVITE_CODE_PATTERN}}}"
    router.add_get(path, invite_page, name="invite_page")
    router.add_post(path, invite_join, name="invite_join")
