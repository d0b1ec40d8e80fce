"""Browser-facing pages: call page headers, static files, i18n catalogs, healthz, demo journal."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rooms.lessons import LessonRegistry, LessonState, Role
from signalling import adhoc, api, demo, pages
from signalling.config import DEMO_SECRET, Integration, Settings
from signalling.keys import LESSONS, SETTINGS, TOKENS
from signalling.tokens import TokenService

STATIC = Path(pages.STATIC_DIR)
DEMO = Path(pages.DEMO_DIR)
JOURNAL = "https://journal.example.ru"
DIARY = "https://dnevnik.example.ru:8443"


def make_app(settings: Settings | None = None, *, with_api: bool = False) -> web.Application:
    settings = settings or Settings()
    app = web.Application()
    app[SETTINGS] = settings
    app[LESSONS] = LessonRegistry()
    app[TOKENS] = TokenService(settings)
    if with_api:
        api.setup(app)
        adhoc.setup_api(app)
    pages.setup(app)
    adhoc.setup_pages(app)
    if settings.demo_journal:
        demo.setup(app)
    return app


def embedding_settings(**overrides: Any) -> Settings:
    return Settings(
        integrations=(
            Integration(key_id="demo", secret=DEMO_SECRET, name="Demo", origins=(JOURNAL,)),
            Integration(
                key_id="diary",
                secret="diary-secret-0123456789",
                name="Diary",
                origins=(DIARY, JOURNAL),
            ),
        ),
        **overrides,
    )


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    clients: list[TestClient] = []

    async def make(settings: Settings | None = None, *, with_api: bool = False) -> TestClient:
        client = TestClient(TestServer(make_app(settings, with_api=with_api)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


# ---------------------------------------------------------------- health and call page


async def test_healthz(client_for: Callable[..., Awaitable[TestClient]]) -> None:
    client = await client_for()
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_call_page_headers_with_default_settings(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    resp = await client.get("/call/les_abc-DEF_123")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert '<script type="module" src="/static/js/call.js"></script>' in html
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    csp = csp_directives(resp.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert "blob:" in csp["media-src"] and "mediastream:" in csp["media-src"]
    host = resp.url.host + ":" + str(resp.url.port)
    assert f"ws://{host}" in csp["connect-src"] and f"wss://{host}" in csp["connect-src"]
    assert csp["object-src"] == ["'none'"]
    assert "unsafe" not in resp.headers["Content-Security-Policy"]
    assert resp.headers["Permissions-Policy"] == (
        "camera=(self), microphone=(self), display-capture=(self)"
    )


async def test_call_page_can_be_embedded_by_configured_journals(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for(embedding_settings())
    resp = await client.get("/call/les_x")
    assert resp.status == 200
    csp = csp_directives(resp.headers["Content-Security-Policy"])
    # Every configured origin once, after 'self'.
    assert csp["frame-ancestors"] == ["'self'", JOURNAL, DIARY]
    policy = resp.headers["Permissions-Policy"]
    allow = f'(self "{JOURNAL}" "{DIARY}")'
    assert policy == f"camera={allow}, microphone={allow}, display-capture={allow}"


def test_embed_origins_are_the_lessons_integrations_exact_origins() -> None:
    """The call page drives postMessage only with these (docs/embedding.md): one
    integration's, never another's, never a wildcard or a directive."""
    settings = Settings(
        integrations=(
            Integration(
                key_id="demo",
                secret=DEMO_SECRET,
                origins=(JOURNAL + "/", "https://*.example.ru", "https://x.example; a", "'self'"),
            ),
            Integration(key_id="diary", secret="diary-secret-0123456789", origins=(DIARY,)),
        )
    )
    assert pages.embed_origins(settings, "demo") == [JOURNAL]
    assert pages.embed_origins(settings, "diary") == [DIARY]
    assert pages.embed_origins(settings, "missing") == []
    assert pages.embed_origins(settings, None) == []


async def test_a_malformed_origin_cannot_inject_csp_directives(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    settings = Settings(
        integrations=(
            Integration(
                key_id="demo",
                secret=DEMO_SECRET,
                origins=(JOURNAL, "https://x.example; script-src *", "https://y.example, z"),
            ),
        )
    )
    client = await client_for(settings)
    resp = await client.get("/call/les_x")
    csp = csp_directives(resp.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'self'", JOURNAL]
    assert csp["script-src"] == ["'self'"]
    assert "x.example" not in resp.headers["Permissions-Policy"]


async def test_csp_ignores_a_hostile_host_header(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    resp = await client.get("/call/les_x", headers={"Host": "evil; script-src *"})
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "evil" not in csp
    assert csp_directives(csp)["connect-src"] == ["'self'"]


@pytest.mark.parametrize(
    "path", ["/call/", "/call/les_x/extra", "/call/les%20x", "/call/" + "a" * 65]
)
async def test_call_page_refuses_odd_paths(
    client_for: Callable[..., Awaitable[TestClient]], path: str
) -> None:
    client = await client_for()
    resp = await client.get(path)
    assert resp.status == 404


# ---------------------------------------------------------------- static files


def js_imports(path: Path) -> list[str]:
    return re.findall(r"""from\s+['"](\./[\w./-]+)['"]""", path.read_text("utf-8"))


async def test_static_files_are_served_with_their_types(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    for path, types in (
        ("/static/js/call.js", ("text/javascript", "application/javascript")),
        ("/static/css/call.css", ("text/css",)),
        ("/static/i18n/ru.json", ("application/json",)),
        ("/static/i18n/en.json", ("application/json",)),
        ("/static/call.html", ("text/html",)),
        ("/embed.js", ("text/javascript", "application/javascript")),
    ):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.content_type in types, (path, resp.content_type)
        assert resp.headers["Cache-Control"] == "no-cache"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_module_and_stylesheet_the_page_loads_exists(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    html = (STATIC / "call.html").read_text("utf-8")
    urls = re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", html)
    assert "/static/js/call.js" in urls and "/static/css/call.css" in urls
    for js in (STATIC / "js").glob("*.js"):
        urls += [f"/static/js/{name[2:]}" for name in js_imports(js)]
    for url in urls:
        resp = await client.get(url)
        assert resp.status == 200, url


async def test_static_route_does_not_escape_its_directory(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    for path in ("/static/../signalling/config.py", "/static/%2e%2e/signalling/config.py"):
        resp = await client.get(path)
        assert resp.status in (403, 404), path


# ---------------------------------------------------------------- i18n


def catalog(lang: str) -> dict[str, str]:
    return json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8"))


def test_catalogs_have_identical_keys_and_placeholders() -> None:
    ru, en = catalog("ru"), catalog("en")
    assert set(ru) == set(en)
    for key in ru:
        assert ru[key].strip() and en[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", ru[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_russian_is_the_default_language() -> None:
    html = (STATIC / "call.html").read_text("utf-8")
    assert '<html lang="ru">' in html
    ru = catalog("ru")
    assert ru["prejoin.join_video"] == "Войти с видео"
    assert ru["prejoin.join_audio"] == "Только звук"
    assert ru["left.title"] == "Вы вышли из урока"
    i18n_js = (STATIC / "js" / "i18n.js").read_text("utf-8")
    assert "DEFAULT_LANGUAGE = 'ru'" in i18n_js


def test_every_string_the_page_uses_is_in_the_catalog() -> None:
    ru = catalog("ru")
    html = (STATIC / "call.html").read_text("utf-8")
    used = set(re.findall(r'data-i18n(?:-title|-aria-label)?="([\w.]+)"', html))
    for js in (STATIC / "js").glob("*.js"):
        used |= set(re.findall(r"""\bt\(\s*'([\w.]+)'""", js.read_text("utf-8")))
        used |= set(re.findall(r"""i18n\.t\(\s*'([\w.]+)'""", js.read_text("utf-8")))
    assert len(used) > 30
    assert used - set(ru) == set()


def test_every_protocol_error_code_has_a_readable_message() -> None:
    protocol = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    codes = {
        "token_invalid",
        "lesson_not_found",
        "lesson_ended",
        "lesson_not_open",
        "not_joined",
        "bad_sdp",
        "no_offer",
        "too_large",
        "bad_json",
        "unknown_type",
        "bad_message",
    }
    for code in codes:
        assert f"`{code}`" in protocol, code
    ru = catalog("ru")
    for code in codes:
        assert f"errors.{code}" in ru, code
        assert re.search("[а-яА-Я]", ru[f"errors.{code}"]), code
    for reason in ("ended", "replaced"):
        assert f"{reason}.title" in ru


# ---------------------------------------------------------------- pre-join info


async def test_call_info_needs_the_lessons_own_token(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for(with_api=True)
    headers = {"Authorization": f"Bearer {DEMO_SECRET}"}
    now = datetime.now(UTC)
    body = {
        "group": {"id": "5a", "title": "5А"},
        "subject": "Математика",
        "teacher": {"id": "t-1", "name": "Анна Петровна"},
        "roster": [{"id": "s-1", "name": "Иван", "role": "student"}],
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(minutes=45)).isoformat(),
    }
    resp = await client.post("/api/v1/lessons", json=body, headers=headers)
    lesson = await resp.json()
    body["group"] = {"id": "5b", "title": "5Б"}
    resp = await client.post("/api/v1/lessons", json=body, headers=headers)
    other = await resp.json()

    async def token(lesson_id: str, user: str, role: str) -> str:
        resp = await client.post(
            f"/api/v1/lessons/{lesson_id}/tokens",
            json={"user": {"id": user, "name": user}, "role": role},
            headers=headers,
        )
        return str((await resp.json())["token"])

    student = await token(lesson["id"], "s-1", "student")
    teacher = await token(lesson["id"], "t-1", "teacher")
    url = f"/call/{lesson['id']}/info"
    resp = await client.get(url, headers={"Authorization": f"Bearer {student}"})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    info = await resp.json()
    assert info["lesson"]["title"] == "Математика, 5А"
    assert info["lesson"]["state"] == "created"
    assert info["you"] == {"name": "s-1", "role": "student"}
    assert info["can_join"] is False  # not open yet
    assert info["embed"] == {"origins": []}  # the test's integration names none
    resp = await client.get(url, headers={"Authorization": f"Bearer {teacher}"})
    assert (await resp.json())["can_join"] is True
    await client.post(f"/api/v1/lessons/{lesson['id']}/open", headers=headers)
    resp = await client.get(url, headers={"Authorization": f"Bearer {student}"})
    assert (await resp.json())["can_join"] is True

    # No token, a broken one, another lesson's token, an integration secret: refused.
    other_token = await token(other["id"], "s-1", "student")
    for auth in (None, "Bearer nonsense", f"Bearer {other_token}", f"Bearer {DEMO_SECRET}"):
        resp = await client.get(url, headers={"Authorization": auth} if auth else {})
        assert resp.status == 401, auth
        assert (await resp.json())["error"]["code"] == "token_invalid"


# ---------------------------------------------------------------- demo journal


async def test_demo_journal_only_when_enabled(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    off = await client_for(Settings(demo_journal=False))
    for path in ("/", "/demo/api/classes", "/demo/static/demo.js"):
        resp = await off.get(path)
        assert resp.status == 404, path
    assert (await off.get("/healthz")).status == 200

    on = await client_for(Settings(demo_journal=True))
    resp = await on.get("/")
    assert resp.status == 200
    html = await resp.text()
    assert "Электронный журнал" in html and "/demo/static/demo.js" in html
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    for path in ("/demo/static/demo.js", "/demo/static/demo.css"):
        assert (await on.get(path)).status == 200, path
    resp = await on.get("/demo/api/classes")
    classes = (await resp.json())["classes"]
    assert len(classes) >= 3
    for cls in classes:
        assert cls["teacher"]["name"] and len(cls["students"]) >= 5


async def test_demo_secret_never_reaches_the_page(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await client_for()
    for path in ("/", "/demo/static/demo.js", "/demo/api/classes", "/call/les_x"):
        resp = await client.get(path)
        assert DEMO_SECRET not in await resp.text(), path


def test_demo_secret_is_not_in_any_served_file() -> None:
    for file in [*DEMO.rglob("*"), *STATIC.rglob("*")]:
        if file.is_file():
            assert DEMO_SECRET not in file.read_text("utf-8"), file


async def test_demo_backend_drives_the_real_api_over_http(
    client_for: Callable[..., Awaitable[TestClient]],
) -> None:
    settings = Settings()
    app = make_app(settings, with_api=True)
    seen: list[tuple[str, str, str]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            seen.append((request.method, request.path, request.headers.get("Authorization", "")))
        return await handler(request)

    app.middlewares.insert(0, record)
    async with TestClient(TestServer(app)) as client:
        classes = (await (await client.get("/demo/api/classes")).json())["classes"]
        cls = classes[0]
        resp = await client.get(f"/demo/api/classes/{cls['id']}/lesson")
        assert (await resp.json()) == {"lesson": None}

        now = datetime.now(UTC).replace(microsecond=0)
        body = {
            "class_id": cls["id"],
            "subject": cls["subjects"][0],
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(minutes=45)).isoformat(),
        }
        resp = await client.post("/demo/api/lessons", json=body)
        assert resp.status == 201, await resp.text()
        lesson = (await resp.json())["lesson"]
        assert lesson["state"] == "created"
        assert lesson["title"] == f"{cls['subjects'][0]}, {cls['title']}"
        stored = await app[LESSONS].get(lesson["id"])
        assert stored.integration == "demo"
        assert [p.name for p in stored.roster] == [s["name"] for s in cls["students"]]
        assert all(p.role is Role.STUDENT for p in stored.roster)
        # It went through the HTTP API with the demo secret.
        assert ("POST", "/api/v1/lessons", f"Bearer {DEMO_SECRET}") in seen

        # A second lesson for the class is refused with the API's error, passed on.
        resp = await client.post("/demo/api/lessons", json=body)
        assert resp.status == 409
        error = (await resp.json())["error"]
        assert error["code"] == "lesson_conflict"
        assert error["active_lesson_id"] == lesson["id"]

        resp = await client.get(f"/demo/api/classes/{cls['id']}/lesson")
        assert (await resp.json())["lesson"]["id"] == lesson["id"]

        resp = await client.get(f"/demo/api/lessons/{lesson['id']}/links")
        links = await resp.json()
        assert links["teacher"]["url"].startswith(f"/call/{lesson['id']}#token=")
        assert [p["name"] for p in links["roster"]] == [s["name"] for s in cls["students"]]
        student_token = links["roster"][0]["url"].split("#token=", 1)[1]
        claims = app[TOKENS].verify(student_token, lesson["id"])
        assert claims.role is Role.STUDENT and claims.user_id == cls["students"][0]["id"]

        resp = await client.post(f"/demo/api/lessons/{lesson['id']}/open")
        assert resp.status == 200
        opened = await resp.json()
        assert opened["lesson"]["state"] == "open"
        teacher_token = opened["teacher_url"].split("#token=", 1)[1]
        assert app[TOKENS].verify(teacher_token, lesson["id"]).is_teacher
        assert (await app[LESSONS].get(lesson["id"])).state is LessonState.OPEN

        resp = await client.delete(f"/demo/api/lessons/{lesson['id']}")
        assert (await resp.json())["lesson"]["state"] == "ended"
        assert (await app[LESSONS].get(lesson["id"])).state is LessonState.ENDED
        resp = await client.post(f"/demo/api/lessons/{lesson['id']}/open")
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "lesson_ended"

        for method, path in (("POST", "/demo/api/lessons"),):
            resp = await client.request(method, path, json={"class_id": "nope", "subject": "x"})
            assert resp.status == 404
        resp = await client.post(
            "/demo/api/lessons", json={"class_id": cls["id"], "subject": "Астрология"}
        )
        assert resp.status == 400
