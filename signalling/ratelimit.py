"""Throttling of guessing and abuse: failed joins, forged invite codes, wrong API secrets,
guest tokens per invite link.

Every limit is a `SlidingWindow`: at most N events per key in the last
`limits.window_seconds` (signalling/config.py `LimitSettings`), with memory
bounded by `max_keys` keys of at most N timestamps each (the least recently
used key is forgotten first). Keys are client addresses (`client_key`: an
IPv6 address by its /64, which one subscriber usually holds whole), invite
codes, and people (integration, user, lesson) of verified join tokens.

HTTP refusals are 429 with `Retry-After` (whole seconds) and the API's error
body `{"error": {"code": "rate_limited", "message": …}}`; the WebSocket answers
an `error` with code `rate_limited` and `retry_after` (seconds), then closes.

`setup(app)` puts a `Limits` in app[LIMITS] and adds two middlewares: the
first believes X-Forwarded-For from `limits.trusted_proxies` only (it replaces
request.remote, so everything downstream sees the client), the second counts
and refuses on /api/ (401 answers) and /invite/{code} (404 answers, guest
tokens). Both must run outside the API's JSON error middleware, so
`setup` is called before signalling.api.setup.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from rooms.ratelimit import SlidingWindow
from signalling.config import LimitSettings, Settings
from signalling.frame_budget import FrameBudgets
from signalling.protocol import ProtocolError

if TYPE_CHECKING:
    from signalling.tokens import JoinClaims

RATE_LIMITED = "rate_limited"
# Join refusals that say "guessing" when they come from one address many times;
# the others (lesson not open yet, …) are counted only per person, so a class
# behind one school NAT is not locked out by people pressing Join early.
GUESS_CODES = frozenset({"token_invalid", "lesson_not_found"})
# Routes of signalling/adhoc.py these limits watch.
INVITE_PAGE, INVITE_JOIN = "invite_page", "invite_join"


def client_key(address: str | None) -> str:
    """The key a client address is limited by: IPv4 as is, IPv6 by its /64."""
    if not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def budget_address(address: str | None, settings: LimitSettings) -> str | None:
    """The key of a client's per-address frame and request budget (frame_budget.py);
    None for loopback, unless `pace_loopback`: a reverse proxy on the same machine
    would otherwise make every client one address."""
    try:
        loopback = address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    return None if loopback and not settings.pace_loopback else client_key(address)


def whole_seconds(retry_after: float) -> int:
    return max(1, math.ceil(retry_after))


def rate_limited_response(retry_after: float, message: str) -> web.Response:
    """429 with Retry-After and the API's JSON error body."""
    seconds = whole_seconds(retry_after)
    return web.json_response(
        {"error": {"code": RATE_LIMITED, "message": f"{message} Try again in {seconds} s."}},
        status=429,
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


class RateLimited(web.HTTPTooManyRequests):
    """Raise from a handler: 429 with Retry-After and the JSON error body."""

    def __init__(self, retry_after: float, message: str) -> None:
        seconds = whole_seconds(retry_after)
        body = {"error": {"code": RATE_LIMITED, "message": f"{message} Try again in {seconds} s."}}
        super().__init__(
            headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
            text=json.dumps(body),
            content_type="application/json",
        )


class Limits:
    """The server's limits, one SlidingWindow each, and counters of what they refused."""

    def __init__(
        self, settings: LimitSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings = settings or LimitSettings()
        window = settings.window_seconds

        def limit(count: int) -> SlidingWindow:
            return SlidingWindow(count, window, clock=clock)

        self.join_ip = limit(settings.join_failures_per_ip)
        self.join_user = limit(settings.join_failures_per_user)
        self.invite_ip = limit(settings.invite_failures_per_ip)
        self.guest_tokens = limit(settings.guest_tokens_per_invite)
        self.api_auth = limit(settings.api_auth_failures_per_ip)
        self.bad_requests = limit(settings.bad_requests_per_ip)
        self.trusted_proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )
        self.frames = FrameBudgets(
            settings.ws_frames_per_second,
            settings.ws_frame_burst,
            settings.ws_frames_per_address_per_second,
            clock,
        )
        # Refusals per limit ("join", "invite", "guest_tokens", "api_auth").
        self.refused: Counter[str] = Counter()

    # ------------------------------------------------------------ WebSocket joins

    def join_allowed(self, ip: str | None, subject: str | None = None) -> float | None:
        """None when a join from `ip` (by `subject`, once known) may be tried; else seconds."""
        retry = self.join_ip.retry_after(client_key(ip))
        if retry is None and subject is not None:
            retry = self.join_user.retry_after(subject)
        if retry is not None:
            self.refused["join"] += 1
        return retry

    def join_failed(self, ip: str | None, subject: str | None, code: str = "token_invalid") -> None:
        """Count a refused join: per address when it looks like guessing, per person always."""
        if code == RATE_LIMITED:
            return
        if code in GUESS_CODES:
            self.join_ip.record(client_key(ip))
        if subject is not None:
            self.join_user.record(subject)

    def join_subject(self, ip: str | None, claims: JoinClaims, ref: str | None = None) -> str:
        """The person a verified join token names; ProtocolError when they are over the limit."""
        subject = f"{claims.key_id}\n{claims.user_id}\n{claims.lesson_id}"
        retry = self.join_allowed(ip, subject)
        if retry is not None:
            raise join_rate_limited(retry, ref)
        return subject

    # ------------------------------------------------------------ HTTP

    def forwarded_client(self, request: web.BaseRequest) -> str | None:
        """The client address: X-Forwarded-For's last untrusted hop, from a trusted proxy only."""
        remote = request.remote
        if not self.trusted_proxies or not remote or not self._trusted(remote):
            return remote
        hops = [
            hop.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")
        ]
        for hop in reversed(hops):
            if not hop:
                continue
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return remote  # garbled: trust nothing in it
            if not self._trusted(hop):
                return hop
        return remote

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def trusted_proxy(address: str, settings: LimitSettings) -> bool:
    """Whether `address` (an IP address) is one of `settings.trusted_proxies`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)


def join_rate_limited(retry_after: float, ref: str | None = None) -> ProtocolError:
    seconds = whole_seconds(retry_after)
    return ProtocolError(
        RATE_LIMITED,
        f"too many refused joins; try again in {seconds} s",
        ref,
        retry_after=seconds,
    )


LIMITS = web.AppKey("limits", Limits)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def forwarded_for(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """request.remote = the client behind a trusted reverse proxy (X-Forwarded-For)."""
    limits = request.app[LIMITS]
    if limits.trusted_proxies:
        client = limits.forwarded_client(request)
        if client is not None and client != request.remote:
            request = request.clone(remote=client)
    return await handler(request)


@web.middleware
async def rate_limits(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Refuse (429) and count on /api/ (401 answers) and the invite link (404s, guest
    tokens); on both, 400 answers (bodies that are not valid) per address."""
    limits = request.app[LIMITS]
    route = request.match_info.route.name
    if not request.path.startswith("/api/") and route not in (INVITE_PAGE, INVITE_JOIN):
        return await handler(request)
    key = client_key(request.remote)
    retry = limits.bad_requests.retry_after(key)
    if retry is not None:
        limits.refused["bad_requests"] += 1
        return rate_limited_response(retry, "Too many malformed requests from this address.")
    response = await _limited(request, handler, limits, route, key)
    if response.status == 400:
        limits.bad_requests.record(key)
    return response


async def _limited(
    request: web.Request, handler: _Handler, limits: Limits, route: str | None, key: str
) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        retry = limits.api_auth.retry_after(key)
        if retry is not None:
            limits.refused["api_auth"] += 1
            return rate_limited_response(retry, "Too many requests with wrong credentials.")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status == 401:
                limits.api_auth.record(key)
            raise
        if response.status == 401:
            limits.api_auth.record(key)
        return response
    retry = limits.invite_ip.retry_after(key)
    if retry is not None:
        limits.refused["invite"] += 1
        return _invite_refusal(route, retry, "Too many invalid invite links from this address.")
    code = request.match_info.get("code", "")
    if route == INVITE_JOIN:
        # Counted before the token is made (concurrent requests cannot overshoot),
        # taken back below when none was.
        retry = limits.guest_tokens.check(code)
        if retry is not None:
            limits.refused["guest_tokens"] += 1
            return rate_limited_response(retry, "Too many people joined by this link just now.")
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if status == 404:
            limits.invite_ip.record(key)
        if route == INVITE_JOIN and status != 201:
            limits.guest_tokens.forget_one(code)


def _invite_refusal(route: str | None, retry_after: float, message: str) -> web.Response:
    if route == INVITE_JOIN:
        return rate_limited_response(retry_after, message)
    # The invite page is for people: a short text, in both languages of the page.
    seconds = whole_seconds(retry_after)
    return web.Response(
        status=429,
        text=(
            f"Слишком много попыток. Повторите через {seconds} с.\n"
            f"Too many attempts. Try again in {seconds} s.\n"
        ),
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


def setup(app: web.Application, settings: Settings) -> Limits:
    """app[LIMITS] and the middlewares; call before signalling.api.setup (see above)."""
    limits = app[LIMITS] = Limits(settings.limits)
    app.middlewares.append(forwarded_for)
    app.middlewares.append(rate_limits)
    return limits
