"""The `[turn]` section: TURN servers with expiring credentials (coturn's "REST API" scheme).

The node and the TURN servers share a secret; each join gets a username naming
when it expires and a password derived from it (signalling/turn.py), so nothing
a page receives is worth anything after the lesson. Static TURN credentials
stay possible in `[ice] servers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from signalling.config_sections import ConfigError


@dataclass(frozen=True)
class TurnSettings:
    # coturn's static-auth-secret (use-auth-secret); or UROK_TURN_SECRET. Never sent to clients.
    secret: str = ""
    # turn: / turns: URLs, e.g. "turn:turn.school.example:3478?transport=udp".
    urls: tuple[str, ...] = ()
    # Credentials are valid until the lesson's call can last at the latest (its end plus
    # end_grace_minutes), plus this: for clock skew between the node and the TURN servers
    # and a page reconnecting at the very end.
    margin_seconds: int = 1800
    # The server's own peer connections gather relay candidates on these servers too
    # (off: the server has a routable address, and a TURN allocation per connection
    # slows every connection's gathering down).
    server_uses: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


KNOWN_TURN_KEYS = frozenset({"secret", "urls", "margin_seconds", "server_uses"})
# turn:host[:port][?transport=udp|tcp] and turns:host[:port][?transport=tcp] (RFC 7065).
_TURN_URL = re.compile(
    r"^(?P<scheme>turns?):(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(?P<port>\d{1,5}))?"
    r"(\?transport=(?P<transport>udp|tcp))?$"
)
MIN_SECRET_BYTES = 16


def check_turn_url(url: str) -> None:
    match = _TURN_URL.match(url)
    if match is None:
        raise ConfigError(
            f"turn.urls: {url!r} is not turn:HOST[:PORT][?transport=udp|tcp] or turns:…"
        )
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"turn.urls: {url!r} has a port out of 1-65535")
    if match["scheme"] == "turns" and match["transport"] == "udp":
        # TURN over DTLS: browsers do not speak it.
        raise ConfigError(f"turn.urls: {url!r}: turns: runs over TCP (TLS), not udp")


def turn_section(value: Any, base: TurnSettings) -> TurnSettings:
    if not isinstance(value, dict):
        raise ConfigError("turn must be a table")
    unknown = sorted(set(value) - KNOWN_TURN_KEYS)
    if unknown:
        raise ConfigError(f"unknown turn setting(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    if "secret" in value:
        if not isinstance(value["secret"], str):
            raise ConfigError("turn.secret must be a string")
        changes["secret"] = value["secret"]
    if "urls" in value:
        urls = value["urls"]
        if isinstance(urls, str):  # from the environment: comma-separated
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ConfigError("turn.urls must be a list of strings")
        for url in urls:
            check_turn_url(url)
        changes["urls"] = tuple(urls)
    if "margin_seconds" in value:
        margin = value["margin_seconds"]
        if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= 86400:
            raise ConfigError("turn.margin_seconds must be an integer from 0 to 86400")
        changes["margin_seconds"] = margin
    if "server_uses" in value:
        if not isinstance(value["server_uses"], bool):
            raise ConfigError("turn.server_uses must be true or false")
        changes["server_uses"] = value["server_uses"]
    return checked(replace(base, **changes))


def checked(settings: TurnSettings) -> TurnSettings:
    """The section as a whole: URLs and a secret come together."""
    if settings.urls and not settings.secret:
        raise ConfigError("turn.urls are set but turn.secret is empty (or set UROK_TURN_SECRET)")
    if settings.secret and not settings.urls:
        raise ConfigError("turn.secret is set but turn.urls is empty")
    if settings.secret and len(settings.secret.encode()) < MIN_SECRET_BYTES:
        # Anyone holding one credential could try secrets offline against it.
        raise ConfigError(f"turn.secret must be at least {MIN_SECRET_BYTES} bytes")
    return settings
