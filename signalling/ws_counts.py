"""What the call WebSockets did, counted for GET /metrics (signalling/metrics.py).

Labels stay a bounded set: message types are the protocol's own (anything else
is "other"), error codes are the server's own constants, capped all the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

OTHER = "other"
# More distinct error codes than this would mean a code built from input: fold them.
MAX_ERROR_CODES = 64


class WsCounters:
    def __init__(self, message_types: Iterable[str]) -> None:
        self.messages: dict[str, int] = dict.fromkeys([*sorted(message_types), OTHER], 0)
        self.errors: dict[str, int] = {}
        # The call WebSockets open now (closed as going away at shutdown: signalling/ws.py).
        self.open: set[web.WebSocketResponse] = set()
        self.resumes = 0  # participants taken over by a new connection
        self.resumes_refused = 0
        self.ice_restarts = {"publisher": 0, "subscriber": 0}  # media connections replaced
        self.relays = 0  # connections relayed to the lesson's node (signalling/ws_relay.py)
        self.relayed = 0  # of which open now

    @property
    def connections(self) -> int:
        return len(self.open)

    def message(self, kind: object) -> None:
        key = kind if isinstance(kind, str) and kind in self.messages else OTHER
        self.messages[key] += 1

    def error(self, code: str) -> None:
        if code not in self.errors and len(self.errors) >= MAX_ERROR_CODES:
            code = OTHER
        self.errors[code] = self.errors.get(code, 0) + 1
