"""The sections of the server settings: their types and how each is read.

signalling/config.py puts them together into Settings (and re-exports them).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from signalling.config_ports import parse_udp_ports


class ConfigError(ValueError):
    """The configuration file or environment holds something unusable."""


@dataclass(frozen=True)
class Integration:
    """One journal vendor allowed to call the server-to-server API."""

    key_id: str
    secret: str
    name: str = ""
    # Origins allowed to embed the call page in an iframe (CSP frame-ancestors).
    origins: tuple[str, ...] = ()
    # Where lesson events are POSTed (signalling/webhooks.py); None: no webhooks.
    webhook_url: str | None = None


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to clients and used by the server."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class IceSettings:
    # Local addresses the media server gathers host candidates on.
    addresses: tuple[str, ...] = ("127.0.0.1",)
    # Address announced to clients instead of the local one (cloud / NAT).
    announced_address: str | None = None
    # None by default: never a public STUN server nobody configured.
    servers: tuple[IceServer, ...] = ()


@dataclass(frozen=True)
class MediaSettings:
    """The media plane (sfu/): what it may ask of publishers."""

    # A publisher is asked for a keyframe at most once per this many seconds, however
    # many subscribers lose packets or join (the floor; sfu/producer.py).
    keyframe_interval_s: float = 1.0
    # Bounded audio (sfu/audio_slots.py): in a room with more microphones than this
    # (plus the hosts'), each person receives the loudest this many and the hosts';
    # smaller rooms are as without it. 0: everyone receives every microphone,
    # however large the call (one m-section per microphone).
    audio_slots: int = 6
    # Bounded video (sfu/video_slots.py): each person receives at most this many
    # cameras on m-sections of their own (the hosts' and shared screens besides);
    # past that, the cameras their page does not show have none, and take one
    # (another hidden camera's) when shown. 0: every camera has its m-section.
    video_slots: int = 30
    # A camera shown as a thumbnail (a grid tile, not the teacher's, the spotlight's or a
    # speaker's): "half" its frame rate (the lower VP8 temporal layers: ~60 % of the
    # bits, sfu/temporal_layers.py) or "full".
    thumbnail_frame_rate: str = "half"
    # Publishers' cameras encode only the simulcast layers somebody receives
    # (rooms/calls/dynacast.py; the page follows `publish_layers`).
    dynacast: bool = True
    # The UDP port range (first, last) of every media socket (ICE host candidates;
    # signalling/config_ports.py); None: any port the system gives.
    udp_ports: tuple[int, int] | None = None


KNOWN_MEDIA_KEYS = frozenset(
    {
        "keyframe_interval_s",
        "audio_slots",
        "video_slots",
        "udp_ports",
        "thumbnail_frame_rate",
        "dynacast",
    }
)
THUMBNAIL_FRAME_RATES = ("half", "full")


def _media(value: Any, base: MediaSettings) -> MediaSettings:
    if not isinstance(value, dict):
        raise ConfigError("media must be a table")
    unknown = sorted(set(value) - KNOWN_MEDIA_KEYS)
    if unknown:
        raise ConfigError(f"unknown media setting(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    if "keyframe_interval_s" in value:
        number = value["keyframe_interval_s"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError("media.keyframe_interval_s must be a number")
        if not 0.1 <= number <= 60:
            raise ConfigError("media.keyframe_interval_s must be from 0.1 to 60")
        changes["keyframe_interval_s"] = float(number)
    if "audio_slots" in value:
        slots = value["audio_slots"]
        if isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= 32:
            raise ConfigError("media.audio_slots must be a whole number from 0 to 32")
        changes["audio_slots"] = slots
    if "video_slots" in value:
        slots = value["video_slots"]
        if isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= 100:
            raise ConfigError("media.video_slots must be a whole number from 0 to 100")
        changes["video_slots"] = slots
    if "thumbnail_frame_rate" in value:
        rate = value["thumbnail_frame_rate"]
        if rate not in THUMBNAIL_FRAME_RATES:
            raise ConfigError('media.thumbnail_frame_rate must be "half" or "full"')
        changes["thumbnail_frame_rate"] = rate
    if "dynacast" in value:
        if not isinstance(value["dynacast"], bool):
            raise ConfigError("media.dynacast must be true or false")
        changes["dynacast"] = value["dynacast"]
    if "udp_ports" in value:
        try:
            changes["udp_ports"] = parse_udp_ports(value["udp_ports"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return replace(base, **changes)


def default_data_dir() -> Path:
    """$XDG_DATA_HOME/urok (~/.local/share/urok): where a server without a config keeps files."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "urok"


@dataclass(frozen=True)
class RecordingSettings:
    """Call recordings (recording/): on or off, where the files go, how they look."""

    enabled: bool = True
    # None: <data_dir>/recordings.
    directory: Path | None = None
    width: int = 1280
    height: int = 720
    fps: int = 15
    # A recording is not started with less free space than this on the recordings disk.
    min_free_mb: int = 1024
    # Recordings one node runs at once: each recorder process takes up to most of a core
    # (docs/performance.md), and the live calls on the node come first.
    max_concurrent: int = 4
    # Recordings are deleted this many days after they ended (0: kept until deleted
    # through the API).
    retention_days: int = 0


@dataclass(frozen=True)
class LimitSettings:
    """Throttling and HTTP hardening (signalling/ratelimit.py, signalling/http_guard.py).

    Every count is per `window_seconds` (a sliding window); 0 turns that limit off.
    Clients are told by address (an IPv6 address by its /64); behind a reverse
    proxy every client has the proxy's address unless it is in `trusted_proxies`.
    """

    window_seconds: float = 60.0
    # WebSocket joins refused with token_invalid / lesson_not_found, per address.
    join_failures_per_ip: int = 20
    # Joins refused (any reason) per person (integration, user and lesson of a valid token).
    join_failures_per_user: int = 20
    # /invite/{code} requests with a code that is not a live call's, per address.
    invite_failures_per_ip: int = 20
    # Guest tokens handed out through one invite link.
    guest_tokens_per_invite: int = 30
    # /api/ requests answered 401 (wrong secret or JWT), per address.
    api_auth_failures_per_ip: int = 20
    # /api/ and invite requests answered 400 (a body that is not valid), per address:
    # each costs up to a few ms to read and check.
    bad_requests_per_ip: int = 120
    # A connection that has not sent a request's complete headers in this time is closed.
    header_timeout_seconds: float = 10.0
    # A request body not read completely in this time is answered 408.
    body_timeout_seconds: float = 30.0
    # Open connections per client address (TCP peer: a reverse proxy counts as one).
    max_connections_per_ip: int = 500
    # Malformed HTTP requests are logged as one warning per address per this interval.
    bad_request_log_seconds: float = 60.0
    # WebSocket frames read per second per connection (a burst of ws_frame_burst
    # first) and per address (4 bursts); past that the reader waits (frame_budget.py).
    ws_frames_per_second: float = 20.0
    ws_frame_burst: int = 60
    ws_frames_per_address_per_second: float = 200.0
    # HTTP requests read per second per connection (a burst of http_request_burst
    # first) and per address (4 bursts); past that the connection is read later.
    http_requests_per_second: float = 50.0
    http_request_burst: int = 100
    http_requests_per_address_per_second: float = 500.0
    # Pace loopback clients per address too (normally not: a reverse proxy on the
    # same machine makes every client 127.0.0.1). For benches and tests.
    pace_loopback: bool = False
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()


def _str_tuple(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return tuple(value)


def _ice_servers(value: Any) -> tuple[IceServer, ...]:
    if not isinstance(value, list):
        raise ConfigError("ice.servers must be a list of tables")
    servers = []
    for item in value:
        if not isinstance(item, dict) or "urls" not in item:
            raise ConfigError("each ice.servers entry needs urls")
        urls = _str_tuple(item["urls"], "ice.servers.urls")
        for url in urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ConfigError(f"ICE server URL must start with stun:, turn: or turns: ({url})")
        username, credential = item.get("username"), item.get("credential")
        for name, value in (("username", username), ("credential", credential)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"ice.servers {name} must be a string")
        servers.append(IceServer(urls=urls, username=username, credential=credential))
    return tuple(servers)


_HTTP_URL = r"^https?://[^/\s]+(/\S*)?$"


def _integrations(value: Any) -> tuple[Integration, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("integrations must be a non-empty list of tables")
    out = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            raise ConfigError("each integration must be a table")
        key_id, secret = item.get("key_id"), item.get("secret")
        if not isinstance(key_id, str) or not key_id:
            raise ConfigError("integration key_id must be a non-empty string")
        if not isinstance(secret, str) or len(secret.encode()) < 32:
            # HS256 wants a key of at least 256 bits (RFC 7518 section 3.2).
            raise ConfigError(f"integration {key_id}: secret must be at least 32 bytes")
        if key_id in seen:
            raise ConfigError(f"integration {key_id} is configured twice")
        seen.add(key_id)
        webhook_url = item.get("webhook_url")
        if webhook_url is not None and (
            not isinstance(webhook_url, str) or not re.match(_HTTP_URL, webhook_url)
        ):
            raise ConfigError(f"integration {key_id}: webhook_url must be an http(s) URL")
        out.append(
            Integration(
                key_id=key_id,
                secret=secret,
                name=str(item.get("name", key_id)),
                origins=_str_tuple(item.get("origins", []), "integration origins"),
                webhook_url=webhook_url,
            )
        )
    return tuple(out)


KNOWN_ICE_KEYS = frozenset({"addresses", "announced_address", "servers"})
KNOWN_RECORDING_KEYS = frozenset(
    {
        "enabled",
        "directory",
        "width",
        "height",
        "fps",
        "min_free_mb",
        "max_concurrent",
        "retention_days",
    }
)


def _recording(value: Any, base: RecordingSettings) -> RecordingSettings:
    if not isinstance(value, dict):
        raise ConfigError("recording must be a table")
    unknown = sorted(set(value) - KNOWN_RECORDING_KEYS)
    if unknown:
        raise ConfigError(f"unknown recording setting(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    if "enabled" in value:
        if not isinstance(value["enabled"], bool):
            raise ConfigError("recording.enabled must be true or false")
        changes["enabled"] = value["enabled"]
    if "directory" in value:
        if not isinstance(value["directory"], str):
            raise ConfigError("recording.directory must be a string")
        changes["directory"] = Path(value["directory"]) if value["directory"] else None
    for key, lower, upper, even in (
        ("width", 160, 3840, True),
        ("height", 90, 2160, True),
        ("fps", 1, 60, False),
        ("min_free_mb", 0, 10**7, False),
        ("max_concurrent", 1, 1000, False),
        ("retention_days", 0, 36500, False),
    ):
        if key in value:
            number = value[key]
            if (
                isinstance(number, bool)
                or not isinstance(number, int)
                or not lower <= number <= upper
                or (even and number % 2)
            ):
                kind = "an even integer" if even else "an integer"
                raise ConfigError(f"recording.{key} must be {kind} from {lower} to {upper}")
            changes[key] = number
    return replace(base, **changes)


LIMIT_COUNTS = (
    "join_failures_per_ip",
    "join_failures_per_user",
    "invite_failures_per_ip",
    "guest_tokens_per_invite",
    "api_auth_failures_per_ip",
    "bad_requests_per_ip",
    "max_connections_per_ip",
    "ws_frame_burst",
    "http_request_burst",
)
LIMIT_SECONDS = (
    "window_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "bad_request_log_seconds",
    # Rates, not seconds, but read the same way (a non-negative number).
    "ws_frames_per_second",
    "ws_frames_per_address_per_second",
    "http_requests_per_second",
    "http_requests_per_address_per_second",
)
KNOWN_LIMIT_KEYS = frozenset({*LIMIT_COUNTS, *LIMIT_SECONDS, "trusted_proxies", "pace_loopback"})


def _limits(value: Any, base: LimitSettings) -> LimitSettings:
    if not isinstance(value, dict):
        raise ConfigError("limits must be a table")
    unknown = sorted(set(value) - KNOWN_LIMIT_KEYS)
    if unknown:
        raise ConfigError(f"unknown limits setting(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key in LIMIT_COUNTS:
        if key in value:
            number = value[key]
            if isinstance(number, str) and number.strip().isdigit():
                number = int(number)  # from the environment
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 10**6:
                raise ConfigError(f"limits.{key} must be an integer from 0 to 1000000 (0: off)")
            changes[key] = number
    for key in LIMIT_SECONDS:
        if key in value:
            number = value[key]
            if isinstance(number, str):
                try:
                    number = float(number)
                except ValueError:
                    raise ConfigError(f"limits.{key} must be a number") from None
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ConfigError(f"limits.{key} must be a number")
            lower = 0.001 if key == "window_seconds" else 0
            if not lower <= number <= 86400:
                raise ConfigError(f"limits.{key} must be from {lower:g} to 86400")
            changes[key] = float(number)
    if "pace_loopback" in value:
        flag = value["pace_loopback"]
        if isinstance(flag, str) and flag.lower() in ("1", "true", "0", "false"):
            flag = flag.lower() in ("1", "true")  # from the environment
        if not isinstance(flag, bool):
            raise ConfigError("limits.pace_loopback must be true or false")
        changes["pace_loopback"] = flag
    if "trusted_proxies" in value:
        proxies = _str_tuple(value["trusted_proxies"], "limits.trusted_proxies")
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"limits.trusted_proxies: {proxy!r} is not an IP address or network"
                ) from None
        changes["trusted_proxies"] = proxies
    return replace(base, **changes)


def _ip_address(value: str, name: str) -> None:
    # ICE candidates carry addresses, not names: a name fails only at the first call.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not an IP address") from None


def _ice(ice: Any, base: IceSettings) -> IceSettings:
    if not isinstance(ice, dict):
        raise ConfigError("ice must be a table")
    unknown = sorted(set(ice) - KNOWN_ICE_KEYS)
    if unknown:
        raise ConfigError(f"unknown ice setting(s): {', '.join(unknown)}")
    settings = base
    if "addresses" in ice:
        addresses = _str_tuple(ice["addresses"], "ice.addresses")
        for address in addresses:
            _ip_address(address, "ice.addresses")
        settings = replace(settings, addresses=addresses)
    if "announced_address" in ice:
        announced = str(ice["announced_address"]) or None  # empty: none
        if announced is not None:
            _ip_address(announced, "ice.announced_address")
        settings = replace(settings, announced_address=announced)
    if "servers" in ice:
        settings = replace(settings, servers=_ice_servers(ice["servers"]))
    return settings
