"""The one shape of an HTTP error: {"error": {"code", "message", ...}} with a status.

The journal API, the call page's JSON routes, the recordings and the demo
journal all answer errors through here.
"""

from __future__ import annotations

from aiohttp import web

NO_STORE = {"Cache-Control": "no-store"}
_EXCEPTIONS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    410: web.HTTPGone,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: str
) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, headers=headers)


class HttpError(Exception):
    """An error to answer with `status`; `extra` fields join code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers, **self.extra)

    def http_exception(self) -> web.HTTPException:
        """The same answer as an exception aiohttp sends itself (from any handler)."""
        kind = _EXCEPTIONS.get(self.status, web.HTTPInternalServerError)
        return kind(
            text=self.response().text, content_type="application/json", headers=self.headers
        )
