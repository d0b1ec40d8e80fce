"""The demo journal: `/` serves a small class journal and `/demo/api/...` its backend.

The backend plays the journal vendor: it calls the real journal API over HTTP
on this server's own listening address with the demo integration's secret,
which never leaves the server. Off in production (`demo_journal = false`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web

from signalling.config import DEMO_KEY_ID
from signalling.errors import HttpError
from signalling.keys import SETTINGS
from signalling.pages import _LESSON_ID, DEMO_DIR, _page_headers
from signalling.protocol import decode_json

log = logging.getLogger(__name__)

DEMO_HTTP = web.AppKey("demo_http", aiohttp.ClientSession)

DEMO_CLASSES: tuple[dict[str, Any], ...] = (
    {
        "id": "demo-5a",
        "title": "5А",
        "teacher": {"id": "demo-t-smirnova", "name": "Анна Петровна Смирнова"},
        "subjects": ["Математика", "Русский язык", "Окружающий мир"],
        "students": [
            {"id": "demo-s-5a-1", "name": "Иван Иванов"},
            {"id": "demo-s-5a-2", "name": "Мария Кузнецова"},
            {"id": "demo-s-5a-3", "name": "Алексей Соколов"},
            {"id": "demo-s-5a-4", "name": "Дарья Морозова"},
            {"id": "demo-s-5a-5", "name": "Егор Новиков"},
        ],
    },
    {
        "id": "demo-7b",
        "title": "7Б",
        "teacher": {"id": "demo-t-volkov", "name": "Сергей Николаевич Волков"},
        "subjects": ["Физика", "Информатика", "Алгебра"],
        "students": [
            {"id": "demo-s-7b-1", "name": "Полина Васильева"},
            {"id": "demo-s-7b-2", "name": "Артём Павлов"},
            {"id": "demo-s-7b-3", "name": "София Семёнова"},
            {"id": "demo-s-7b-4", "name": "Максим Голубев"},
            {"id": "demo-s-7b-5", "name": "Виктория Виноградова"},
        ],
    },
    {
        "id": "demo-9v",
        "title": "9В",
        "teacher": {"id": "demo-t-lebedeva", "name": "Ольга Викторовна Лебедева"},
        "subjects": ["История", "Литература", "Обществознание"],
        "students": [
            {"id": "demo-s-9v-1", "name": "Никита Богданов"},
            {"id": "demo-s-9v-2", "name": "Анастасия Воробьёва"},
            {"id": "demo-s-9v-3", "name": "Кирилл Фёдоров"},
            {"id": "demo-s-9v-4", "name": "Елизавета Михайлова"},
            {"id": "demo-s-9v-5", "name": "Тимофей Беляев"},
        ],
    },
)
_CLASSES_BY_ID = {c["id"]: c for c in DEMO_CLASSES}


DemoError = HttpError


def _demo_headers() -> dict[str, str]:
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return _page_headers(csp, "camera=(self), microphone=(self), display-capture=(self)")


async def demo_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(DEMO_DIR / "index.html", headers=_demo_headers())


def _own_base_url(request: web.Request) -> str:
    """http://<address>:<port> this server accepted the request on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = sockname[0], sockname[1]
        if ":" in host:
            return f"http://[{host}]:{port}"
        return f"http://{host}:{port}"
    settings = request.app[SETTINGS]
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.port}"


async def _journal_api(
    request: web.Request, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the real journal API as the demo integration; raise DemoError on failure."""
    integration = request.app[SETTINGS].integration(DEMO_KEY_ID)
    if integration is None:
        raise DemoError(503, "demo_unavailable", "The demo integration is not configured.")
    url = _own_base_url(request) + path
    headers = {"Authorization": f"Bearer {integration.secret}"}
    try:
        async with request.app[DEMO_HTTP].request(method, url, json=body, headers=headers) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None
            if resp.status >= 400:
                error = data.get("error") if isinstance(data, dict) else None
                if not isinstance(error, dict):
                    error = {"code": "http_error", "message": f"HTTP {resp.status}"}
                extra = {k: v for k, v in error.items() if k not in ("code", "message")}
                raise DemoError(
                    resp.status,
                    str(error.get("code", "http_error")),
                    str(error.get("message", "")),
                    **extra,
                )
            if not isinstance(data, dict):
                raise DemoError(502, "bad_gateway", "The journal API answered something odd.")
            return data
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("demo journal: %s %s failed: %s", method, path, exc)
        raise DemoError(502, "api_unreachable", "The journal API could not be reached.") from exc


def _relative_call_url(url: str) -> str:
    """Path and fragment of a call URL, so the link works whatever public_url says."""
    parts = urlsplit(url)
    return parts.path + ("#" + parts.fragment if parts.fragment else "")


def _demo_class(class_id: Any) -> dict[str, Any]:
    cls = _CLASSES_BY_ID.get(class_id) if isinstance(class_id, str) else None
    if cls is None:
        raise DemoError(404, "class_not_found", "Нет такого класса.")
    return cls


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = decode_json(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DemoError(400, "bad_json", "The request body is not JSON.") from exc
    if not isinstance(body, dict):
        raise DemoError(400, "bad_json", "The request body must be a JSON object.")
    return body


def _demo_handler(
    fn: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            response = await fn(request)
        except HttpError as exc:
            response = exc.response()
        response.headers["Cache-Control"] = "no-store"
        return response

    return handler


async def demo_classes(request: web.Request) -> web.Response:
    return web.json_response({"classes": list(DEMO_CLASSES)})


async def demo_active_lesson(request: web.Request) -> web.Response:
    cls = _demo_class(request.match_info["class_id"])
    data = await _journal_api(
        request, "GET", f"/api/v1/lessons?group_id={quote(cls['id'])}&active=true"
    )
    lessons = data.get("lessons") or []
    return web.json_response({"lesson": lessons[-1] if lessons else None})


async def demo_create_lesson(request: web.Request) -> web.Response:
    body = await _json_body(request)
    cls = _demo_class(body.get("class_id"))
    subject = body.get("subject")
    if subject not in cls["subjects"]:
        raise DemoError(400, "bad_subject", "Такого предмета нет в журнале этого класса.")
    starts_at, ends_at = body.get("starts_at"), body.get("ends_at")
    if not starts_at or not ends_at:
        now = datetime.now(UTC).replace(microsecond=0)
        starts_at, ends_at = now.isoformat(), (now + timedelta(minutes=45)).isoformat()
    lesson = await _journal_api(
        request,
        "POST",
        "/api/v1/lessons",
        {
            "group": {"id": cls["id"], "title": cls["title"]},
            "subject": subject,
            "teacher": cls["teacher"],
            "roster": [{**s, "role": "student"} for s in cls["students"]],
            "starts_at": starts_at,
            "ends_at": ends_at,
        },
    )
    return web.json_response({"lesson": lesson}, status=201)


def _lesson_path(request: web.Request, suffix: str = "") -> str:
    return f"/api/v1/lessons/{quote(request.match_info['lesson_id'])}{suffix}"


async def _token_url(request: web.Request, person: dict[str, Any], role: str) -> str:
    minted = await _journal_api(
        request,
        "POST",
        _lesson_path(request, "/tokens"),
        {"user": {"id": person["id"], "name": person["name"]}, "role": role},
    )
    return _relative_call_url(str(minted.get("url", "")))


async def demo_open_lesson(request: web.Request) -> web.Response:
    lesson = await _journal_api(request, "POST", _lesson_path(request, "/open"))
    teacher_url = await _token_url(request, lesson["teacher"], "teacher")
    return web.json_response({"lesson": lesson, "teacher_url": teacher_url})


async def demo_end_lesson(request: web.Request) -> web.Response:
    lesson = await _journal_api(request, "DELETE", _lesson_path(request))
    return web.json_response({"lesson": lesson})


async def demo_links(request: web.Request) -> web.Response:
    """Join links for the teacher and every rostered person of a lesson."""
    lesson = await _journal_api(request, "GET", _lesson_path(request))
    teacher = {**lesson["teacher"], "url": await _token_url(request, lesson["teacher"], "teacher")}
    people = []
    for person in lesson.get("roster", []):
        url = await _token_url(request, person, person["role"])
        people.append(
            {"id": person["id"], "name": person["name"], "role": person["role"], "url": url}
        )
    return web.json_response({"lesson": lesson, "teacher": teacher, "roster": people})


async def _demo_http(app: web.Application) -> AsyncIterator[None]:
    # Resolve only what we pass (numeric addresses); no proxies from the environment.
    connector = aiohttp.TCPConnector(family=socket.AF_UNSPEC, limit=20)
    app[DEMO_HTTP] = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=15), trust_env=False
    )
    yield
    await app[DEMO_HTTP].close()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_demo_http)
    router = app.router
    router.add_get("/", demo_page, name="demo_journal")
    router.add_static("/demo/static/", DEMO_DIR / "static", name="demo_static")
    router.add_get("/demo/api/classes", _demo_handler(demo_classes))
    router.add_get("/demo/api/classes/{class_id}/lesson", _demo_handler(demo_active_lesson))
    router.add_post("/demo/api/lessons", _demo_handler(demo_create_lesson))
    lesson = f"/demo/api/lessons/{{lesson_id:{_LESSON_ID}}}"
    router.add_post(lesson + "/open", _demo_handler(demo_open_lesson))
    router.add_delete(lesson, _demo_handler(demo_end_lesson))
    router.add_get(lesson + "/links", _demo_handler(demo_links))
