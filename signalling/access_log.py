"""The access log, without secrets: a `?token=` (a recording link) is logged redacted.
Behind a trusted reverse proxy the address logged is the client's (signalling/ratelimit.py
reads X-Forwarded-For from `limits.trusted_proxies` only), as the rate limits see it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from signalling.ratelimit import LIMITS

SECRET_PARAMETERS = frozenset({"token"})
REDACTED = "REDACTED"


class RedactingAccessLogger(AccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if request is not None and SECRET_PARAMETERS.intersection(request.query):
            query = [
                (key, REDACTED if key in SECRET_PARAMETERS else value)
                for key, value in request.query.items()
            ]
            request = request.clone(rel_url=request.rel_url.with_query(query))
        if request is not None:
            request = _as_the_client(request)
        super().log(request, response, time)


def _as_the_client(request: BaseRequest) -> BaseRequest:
    # aiohttp logs the request it made, not the one the forwarded_for middleware cloned.
    if not isinstance(request, web.Request):
        return request  # not routed (a malformed request): the peer's address
    try:
        limits = request.app.get(LIMITS)
    except (AssertionError, AttributeError):  # no application matched it
        return request
    if limits is None or not limits.trusted_proxies:
        return request
    client = limits.forwarded_client(request)
    return request if client in (None, request.remote) else request.clone(remote=client)
