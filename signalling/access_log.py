"""The access log, without secrets: a `?token=` (a recording link) is logged redacted."""

from __future__ import annotations

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

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
        super().log(request, response, time)
