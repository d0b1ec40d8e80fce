"""TURN credentials that expire (coturn's "REST API" scheme, use-auth-secret).

username = "<expiry, Unix seconds>:<who>", password = base64(HMAC-SHA1(secret, username)).
coturn recomputes the password from the username and refuses a username whose
time has passed, on the allocation and on every refresh; the secret itself stays
on the node and the TURN servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from signalling.config import Settings
from signalling.config_turn import TurnSettings

# The person's id as it stands in the username (it shows in the TURN server's logs),
# unless it is long or unusual: then a hash of it, which still tells two people apart.
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
SERVER_USER = "urok-node"


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_username(expires_at: int, user_id: str) -> str:
    if not _PLAIN_ID.match(user_id):
        user_id = "h" + hashlib.sha256(user_id.encode()).hexdigest()[:16]
    return f"{expires_at}:{user_id}"


def turn_server(turn: TurnSettings, expires_at: int, user_id: str) -> dict[str, Any]:
    """One RTCIceServer entry: the TURN URLs with credentials valid until `expires_at`."""
    username = turn_username(expires_at, user_id)
    return {
        "urls": list(turn.urls),
        "username": username,
        "credential": turn_credential(turn.secret, username),
    }


def call_expiry(settings: Settings, lesson_ends_at: datetime, now: datetime) -> int:
    """When a person's TURN credentials for this lesson run out (Unix seconds): when its
    call ends at the latest (the sweep's grace after the scheduled end), plus the margin."""
    latest_end = max(lesson_ends_at + timedelta(minutes=settings.end_grace_minutes), now)
    return int((latest_end + timedelta(seconds=settings.turn.margin_seconds)).timestamp())


def client_ice_servers(
    settings: Settings, user_id: str, lesson_ends_at: datetime, now: datetime
) -> list[dict[str, Any]]:
    """`ice_servers` for a page joining (or resuming) now: the static servers, and the
    TURN servers with fresh credentials for this person and lesson."""
    servers = [server.to_json() for server in settings.ice.servers]
    if settings.turn.enabled:
        expires = call_expiry(settings, lesson_ends_at, now)
        servers.append(turn_server(settings.turn, expires, user_id))
    return servers


def server_ice_servers(
    settings: Settings, clock: Callable[[], datetime]
) -> Callable[[], list[dict[str, Any]]]:
    """The servers the node's own peer connections use, asked per connection: the static
    ones, and TURN only with turn.server_uses (fresh credentials lasting a whole call)."""
    static = [server.to_json() for server in settings.ice.servers]
    turn = settings.turn
    longest = timedelta(hours=settings.max_lesson_hours, minutes=settings.end_grace_minutes)

    def servers() -> list[dict[str, Any]]:
        if not (turn.enabled and turn.server_uses):
            return static
        expires = int((clock() + longest + timedelta(seconds=turn.margin_seconds)).timestamp())
        return [*static, turn_server(turn, expires, SERVER_USER)]

    return servers
