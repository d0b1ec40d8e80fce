"""Browser-facing pages: the call page, its static files and health.

The call page is `/call/{lesson_id}#token=<JWT>`: the join token travels in the
URL fragment, so it never reaches the server (or its logs) with the page
request. The page reads it, shows a pre-join screen and joins over `/ws`.
The demo journal (signalling/demo.py) is added when `settings.demo_journal` is on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from rooms.admission import Door, Refused
from signalling.access import admission, admitted_lesson, bearer_token, history_claims
from signalling.config import Settings
from signalling.errors import NO_STORE, error_response
from signalling.keys import LESSONS, SETTINGS, TOKENS
from signalling.tokens import TokenError

log = logging.getLogger(__name__)

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"
STATIC_DIR = WEB_CLIENT / "static"
DEMO_DIR = WEB_CLIENT / "demo"

# Lesson ids are "les_" + urlsafe base64; refuse anything else before any lookup.
_LESSON_ID = r"[A-Za-z0-9_\-]{1,64}"
# What a Host header may look like when it is copied into the CSP.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
# An origin usable in a Permissions-Policy allowlist.
_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.\-*]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)

# A CSP source expression: no whitespace, ';' or ',' (they would end the directive).
_CSP_SOURCE = re.compile(r"^[^\s;,'\"]+$|^'self'$")


# ---------------------------------------------------------------- headers


def frame_ancestors(settings: Settings) -> list[str]:
    """The configured embedders, minus anything that would break out of the directive."""
    sources = []
    for source in settings.frame_ancestors():
        if _CSP_SOURCE.match(source):
            sources.append(source)
        else:
            log.warning("ignoring frame ancestor %r: not a CSP source expression", source)
    return sources


def call_page_csp(settings: Settings, host: str | None) -> str:
    """The call page's Content-Security-Policy (frame-ancestors from the integrations)."""
    connect = ["'self'"]
    if host and _HOST.match(host):
        # 'self' covers same-origin ws:/wss: in current browsers; older ones need them named.
        connect += [f"ws://{host}", f"wss://{host}"]
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        f"connect-src {' '.join(connect)}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        f"frame-ancestors {' '.join(frame_ancestors(settings))}",
    ]
    return "; ".join(directives)


def permissions_policy(settings: Settings) -> str:
    """camera/microphone/display-capture for this origin and the configured embedders."""
    origins = [o for o in frame_ancestors(settings) if o != "'self'" and _ORIGIN.match(o)]
    allow = " ".join(["self", *(f'"{o}"' for o in origins)])
    return ", ".join(
        f"{feature}=({allow})" for feature in ("camera", "microphone", "display-capture")
    )


def embed_origins(settings: Settings, integration_key: str | None) -> list[str]:
    """The origins whose pages may drive the call page of a lesson of this integration
    over postMessage (docs/embedding.md): its exact configured origins; wildcards and
    anything not an origin are left out (postMessage needs an exact target)."""
    integration = settings.integration(integration_key) if integration_key else None
    if integration is None:
        return []
    return [
        origin.rstrip("/")
        for origin in integration.origins
        if _ORIGIN.match(origin.rstrip("/")) and "*" not in origin
    ]


def _page_headers(csp: str, permissions: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "Permissions-Policy": permissions,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


# ---------------------------------------------------------------- call page


async def call_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    headers = _page_headers(call_page_csp(settings, request.host), permissions_policy(settings))
    return web.FileResponse(STATIC_DIR / "call.html", headers=headers)


def _json_error(status: int, code: str, message: str) -> web.Response:
    return error_response(status, code, message, NO_STORE)


async def call_info(request: web.Request) -> web.Response:
    """What the pre-join screen shows: the lesson's title and state, and who you are.

    Authenticated by the join token (`Authorization: Bearer <join token>`), and
    only for the lesson that token is for.
    """
    lesson_id = request.match_info["lesson_id"]
    token = bearer_token(request)
    if token is None:
        return _json_error(401, "token_invalid", "A join token is required.")
    try:
        claims = request.app[TOKENS].verify(token, lesson_id)
    except TokenError as exc:
        return _json_error(401, "token_invalid", str(exc))
    try:
        lesson = await admitted_lesson(request.app, claims, Door.INFO)
    except Refused as exc:
        return _json_error(exc.status, exc.code, exc.message)
    assert lesson is not None
    try:
        # Whether `join` would be let in now (the teacher may join before opening).
        admission(request.app).check_open(claims.role, lesson, datetime.now(UTC))
        can_join = True
    except Refused:
        can_join = False
    # How the person will enter: the host may have pupils join muted / camera off.
    settings = await request.app[LESSONS].store.get_settings(lesson.id)
    start = settings.start_media(claims.role, host=False)
    body = {
        "lesson": {**lesson.public(), "state": lesson.state.value},
        "you": {"name": claims.name, "role": claims.role.value},
        "can_join": can_join,
        "join": {"audio": start["audio"], "video": start["video"]},
        "embed": {"origins": embed_origins(request.app[SETTINGS], lesson.integration)},
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def call_chat(request: web.Request) -> web.Response:
    """The call's chat history (the last 500 messages), during and after the call.

    Authenticated like the info, by a join token for this lesson, and so open
    to everyone who was let into the call. After the lesson the join token
    expires (token_grace_seconds after the scheduled end); for reading the
    chat an expired token is still accepted for `chat_history_days` after its
    expiry, guests' tokens excepted. A token revoked by removing its bearer
    from the call is refused (403).
    """
    lesson_id = request.match_info["lesson_id"]
    token = bearer_token(request)
    if token is None:
        return _json_error(401, "token_invalid", "A join token is required.")
    try:
        claims = history_claims(request, token, lesson_id)
    except TokenError as exc:
        return _json_error(401, "token_invalid", str(exc))
    try:
        lesson = await admitted_lesson(request.app, claims, Door.HISTORY)
    except Refused as exc:
        return _json_error(exc.status, exc.code, exc.message)
    assert lesson is not None
    store = request.app[LESSONS].store  # app[STORE], also where a bare app without it keeps things
    messages = await store.chat_history(lesson.id)
    return web.json_response(
        {"messages": [m.to_json() for m in messages]}, headers={"Cache-Control": "no-store"}
    )


async def embed_script(request: web.Request) -> web.StreamResponse:
    """The journal's embedding script (docs/embedding.md), for pages of any origin."""
    headers = {
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        # Loadable as a module or under COEP from the journal's own origin.
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    return web.FileResponse(STATIC_DIR / "embed.js", headers=headers)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


@web.middleware
async def static_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Static files revalidate on every load (plain ES modules, no hashed names)."""
    response = await handler(request)
    if request.path.startswith(("/static/", "/demo/static/")):
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


# ---------------------------------------------------------------- setup


def setup(app: web.Application) -> None:
    """Register the call page, its info and chat, static files and /healthz.

    Needs app[SETTINGS]; the call page's info and chat routes also use
    app[TOKENS] and app[LESSONS]. The invite link (adhoc.setup_pages) and the
    demo journal (demo.setup) register themselves.
    """
    app.middlewares.append(static_headers)
    router = app.router
    router.add_get(f"/call/{{lesson_id:{_LESSON_ID}}}", call_page, name="call_page")
    router.add_get(f"/call/{{lesson_id:{_LESSON_ID}}}/info", call_info, name="call_info")
    router.add_get(f"/call/{{lesson_id:{_LESSON_ID}}}/chat", call_chat, name="call_chat")
    router.add_get("/embed.js", embed_script, name="embed_script")
    router.add_get("/healthz", healthz, name="healthz")
    router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
