"""`urok check-config FILE`: read a configuration as `urok serve` would and say what it
would do, without starting anything. Secrets (TURN secret, Redis password,
integration secrets, the metrics token) are never printed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from signalling.config import Settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def redacted_redis_url(url: str) -> str:
    """The URL with its password (user info or ?password=) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user_info, host = netloc.rsplit("@", 1)
        user = user_info.split(":", 1)[0] if ":" in user_info else ""
        netloc = f"{user}:***@{host}"
    query = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def describe(settings: Settings) -> list[str]:
    """One line per thing an operator opens, points at or checks."""
    ice, turn = settings.ice, settings.turn
    lines = [
        f"listen: {settings.host}:{settings.port} (public URL {settings.public_url})",
        f"media addresses: {', '.join(ice.addresses)}"
        + (f" (announced as {ice.announced_address})" if ice.announced_address else ""),
        f"media UDP ports: {_media_ports(settings)}",
    ]
    for server in ice.servers:
        credentials = " (static credentials)" if server.username is not None else ""
        lines.append(f"ICE server: {', '.join(server.urls)}{credentials}")
    if turn.enabled:
        lines.append(
            f"TURN: {', '.join(turn.urls)} (credentials per join, valid to the lesson's end "
            f"+ {settings.end_grace_minutes} min + {turn.margin_seconds} s; the server's own "
            f"connections {'use' if turn.server_uses else 'do not use'} it)"
        )
    else:
        lines.append("TURN: none (pages behind UDP-blocking firewalls cannot connect)")
    store = redacted_redis_url(settings.redis_url) if settings.redis_url else "in memory (one node)"
    lines.append(f"store: {store}")
    origins = [o for o in settings.frame_ancestors() if o != "'self'"]
    lines.append(f"origins allowed to embed the call page: {', '.join(origins) or 'none'}")
    keys = ", ".join(i.key_id for i in settings.integrations)
    lines.append(f"integrations: {len(settings.integrations)} ({keys})")
    lines.append(f"trusted proxies: {', '.join(settings.limits.trusted_proxies) or 'none'}")
    lines.append(f"demo journal: {'on' if settings.demo_journal else 'off'}")
    recording = settings.recording
    lines.append(
        f"recordings: {'on, in ' + str(settings.recordings_dir) if recording.enabled else 'off'}"
    )
    return lines


def _media_ports(settings: Settings) -> str:
    ports = settings.media.udp_ports
    return f"{ports[0]}-{ports[1]}" if ports else "any (the system's ephemeral ports)"


def warnings(settings: Settings) -> list[str]:
    """What is allowed but probably not meant in production."""
    out = []
    if settings.demo_journal and settings.host not in LOOPBACK:
        out.append(f"the demo journal is on while serving on {settings.host}")
    if not settings.public_url.startswith("https://") and settings.host not in LOOPBACK:
        out.append("public_url is not https://: browsers allow camera and microphone only there")
    if settings.ice.addresses == ("127.0.0.1",) and settings.host not in LOOPBACK:
        out.append("media is gathered on 127.0.0.1 only: set [ice] addresses")
    return out
