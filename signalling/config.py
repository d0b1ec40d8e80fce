"""Server settings: embedded defaults, an optional TOML file, then UROK_* env vars.

With no configuration at all the server runs one process with in-memory state,
serves the demo journal and gathers ICE candidates on loopback only, so a
newcomer can try it on one machine.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from rooms.schedule import ScheduleLimits
from signalling.config_cluster import ClusterSettings, cluster_section
from signalling.config_ops import (
    HealthSettings,
    LogSettings,
    MetricsSettings,
    health_section,
    log_section,
    metrics_section,
)
from signalling.config_sections import (
    KNOWN_LIMIT_KEYS,
    ConfigError,
    IceSettings,
    Integration,
    LimitSettings,
    MediaSettings,
    RecordingSettings,
    _ice,
    _integrations,
    _limits,
    _media,
    _recording,
    default_data_dir,
)

# Re-exported: the settings' vocabulary, for whoever reads Settings.
from signalling.config_sections import IceServer as IceServer
from signalling.config_turn import TurnSettings, turn_section

DEMO_KEY_ID = "demo"
DEMO_SECRET = "demo-journal-secret-change-me-in-production"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Base URL people reach the server at; call page links are built from it.
    public_url: str = "http://127.0.0.1:8080"
    integrations: tuple[Integration, ...] = (
        Integration(key_id=DEMO_KEY_ID, secret=DEMO_SECRET, name="Demo journal"),
    )
    token_issuer: str = "urok"
    token_audience: str = "urok-call"
    # Join tokens stay valid this long after the lesson's scheduled end.
    token_grace_seconds: int = 1800
    # Students may join this long before the scheduled start (once it is open).
    early_join_minutes: int = 10
    # A lesson ends by itself this long after its scheduled end.
    end_grace_minutes: int = 10
    # How often the server looks for lessons past their end.
    lesson_sweep_seconds: int = 15
    # Lessons and calls last at most this long, and are scheduled (start, end,
    # repeat end date) within this many days of now.
    max_lesson_hours: int = 12
    schedule_horizon_days: int = 366
    # A call's chat stays readable (GET /call/{id}/chat) with an expired join
    # token for this many days after the token's expiry.
    chat_history_days: int = 30
    # A person whose WebSocket drops stays in the call this long, and resumes if the
    # page reconnects meanwhile (docs/protocol.md "resume"); 0: they leave at once.
    resume_grace_seconds: int = 20
    # The call page keeps trying to reconnect this long before it says the link is lost.
    reconnect_seconds: int = 60
    # On SIGTERM/SIGINT the node drains (signalling/drain.py: people told to come back,
    # recordings finished and posted) for at most this long before it stops.
    drain_seconds: int = 25
    # The demo journal page at / (off in production).
    demo_journal: bool = True
    default_language: str = "ru"
    # Must hold the largest SDP (signalling.protocol.MAX_SDP) plus its envelope.
    max_ws_message_bytes: int = 320 * 1024
    ice: IceSettings = field(default_factory=IceSettings)
    # Lessons and call state in Redis, shared by several nodes (rooms/store_redis.py);
    # None: in this process's memory (one node).
    redis_url: str | None = None
    # Files the server keeps (recordings, unless recording.directory says otherwise).
    data_dir: Path = field(default_factory=default_data_dir)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    # For operators (signalling/config_ops.py, docs/operations.md).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    log: LogSettings = field(default_factory=LogSettings)
    # Nodes sharing lessons over Redis (signalling/config_cluster.py, signalling/node.py).
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    # TURN servers with expiring credentials (signalling/config_turn.py, signalling/turn.py).
    turn: TurnSettings = field(default_factory=TurnSettings)

    @property
    def schedule_limits(self) -> ScheduleLimits:
        return ScheduleLimits(
            max_duration=timedelta(hours=self.max_lesson_hours),
            horizon=timedelta(days=self.schedule_horizon_days),
        )

    @property
    def recordings_dir(self) -> Path:
        return self.recording.directory or self.data_dir / "recordings"

    def integration(self, key_id: str) -> Integration | None:
        for integration in self.integrations:
            if integration.key_id == key_id:
                return integration
        return None

    def frame_ancestors(self) -> tuple[str, ...]:
        origins: list[str] = ["'self'"]
        for integration in self.integrations:
            origins.extend(o for o in integration.origins if o not in origins)
        return tuple(origins)


KNOWN_KEYS = frozenset(
    {
        "host",
        "port",
        "public_url",
        "integrations",
        "token_issuer",
        "token_audience",
        "token_grace_seconds",
        "early_join_minutes",
        "end_grace_minutes",
        "lesson_sweep_seconds",
        "max_lesson_hours",
        "schedule_horizon_days",
        "chat_history_days",
        "resume_grace_seconds",
        "reconnect_seconds",
        "drain_seconds",
        "demo_journal",
        "default_language",
        "data_dir",
        "recording",
        "max_ws_message_bytes",
        "ice",
        "redis_url",
        "limits",
        "media",
        "metrics",
        "health",
        "log",
        "cluster",
        "turn",
    }
)


def settings_from_mapping(data: dict[str, Any], base: Settings | None = None) -> Settings:
    """Apply a parsed TOML document on top of `base` (defaults when None)."""
    settings = base or Settings()
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        # A misspelt key silently ignored is a setting silently not applied.
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    simple: dict[str, Any] = {}
    for key in ("host", "public_url", "token_issuer", "token_audience", "default_language"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"{key} must be a string")
            simple[key] = data[key]
    for key, upper in (
        ("port", 65535),
        ("token_grace_seconds", 7 * 86400),
        ("early_join_minutes", 24 * 60),
        ("end_grace_minutes", 24 * 60),
        ("lesson_sweep_seconds", 3600),
        ("max_lesson_hours", 24),
        ("schedule_horizon_days", 3660),
        ("chat_history_days", 365),
        ("resume_grace_seconds", 3600),
        ("reconnect_seconds", 3600),
        ("drain_seconds", 3600),
        ("max_ws_message_bytes", 16 * 1024 * 1024),
    ):
        if key in data:
            value = data[key]
            # bool is an int in Python: `port = true` must not pass as 1.
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
                raise ConfigError(f"{key} must be an integer from 0 to {upper}")
            simple[key] = value
    if "demo_journal" in data:
        if not isinstance(data["demo_journal"], bool):
            raise ConfigError("demo_journal must be true or false")
        simple["demo_journal"] = data["demo_journal"]
    if "public_url" in simple and not re.match(r"^https?://[^/\s]+(/\S*)?$", simple["public_url"]):
        raise ConfigError("public_url must be an http:// or https:// URL")
    if simple.get("default_language", "ru") not in ("ru", "en"):
        raise ConfigError("default_language must be ru or en")
    if "redis_url" in data:
        redis_url = data["redis_url"]
        if not isinstance(redis_url, str):
            raise ConfigError("redis_url must be a string")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("redis_url must start with redis://, rediss:// or unix://")
        # Empty: back to memory (UROK_REDIS_URL= overrides a URL in the file).
        simple["redis_url"] = redis_url or None
    if "data_dir" in data:
        if not isinstance(data["data_dir"], str) or not data["data_dir"]:
            raise ConfigError("data_dir must be a non-empty string")
        simple["data_dir"] = Path(data["data_dir"])
    simple.update(_sections(data, settings))
    return replace(settings, **simple)


def _sections(data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The tables of a TOML document (and integrations), each read by its own parser."""
    parsers: dict[str, Callable[[Any], Any]] = {
        "recording": lambda value: _recording(value, settings.recording),
        "limits": lambda value: _limits(value, settings.limits),
        "integrations": _integrations,
        "ice": lambda value: _ice(value, settings.ice),
        "media": lambda value: _media(value, settings.media),
        "metrics": lambda value: metrics_section(value, settings.metrics),
        "health": lambda value: health_section(value, settings.health),
        "log": lambda value: log_section(value, settings.log),
        "cluster": lambda value: cluster_section(value, settings.cluster),
        "turn": lambda value: turn_section(value, settings.turn),
    }
    return {key: parse(data[key]) for key, parse in parsers.items() if key in data}


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file at `path` (or $UROK_CONFIG), then UROK_* variables."""
    env = dict(os.environ) if env is None else env
    settings = Settings()
    path = path or env.get("UROK_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    settings = settings_from_mapping(_with_turn_secret(data, env), settings)
    overrides: dict[str, Any] = {}
    for key in ("host", "public_url", "default_language", "redis_url", "data_dir"):
        if f"UROK_{key.upper()}" in env:
            overrides[key] = env[f"UROK_{key.upper()}"]
    if "UROK_PORT" in env:
        try:
            overrides["port"] = int(env["UROK_PORT"])
        except ValueError as exc:
            raise ConfigError("UROK_PORT must be an integer") from exc
    ice: dict[str, Any] = {}
    if "UROK_ICE_ADDRESSES" in env:
        ice["addresses"] = env["UROK_ICE_ADDRESSES"]
    if "UROK_ANNOUNCED_ADDRESS" in env:
        ice["announced_address"] = env["UROK_ANNOUNCED_ADDRESS"]
    if ice:
        overrides["ice"] = ice
    # UROK_LIMITS_<KEY>, e.g. UROK_LIMITS_MAX_CONNECTIONS_PER_IP=0.
    limits = {
        key: env[f"UROK_LIMITS_{key.upper()}"]
        for key in sorted(KNOWN_LIMIT_KEYS)
        if f"UROK_LIMITS_{key.upper()}" in env
    }
    if limits:
        overrides["limits"] = limits
    media = _media_env(env)
    if media:
        overrides["media"] = media
    overrides.update(_operator_env(env))
    if overrides:
        settings = settings_from_mapping(overrides, settings)
    return settings


def _media_env(env: dict[str, str]) -> dict[str, Any]:
    """The [media] settings the environment gives (benches' baselines, a node's ports)."""
    media: dict[str, Any] = {}
    for name, key in (("AUDIO_SLOTS", "audio_slots"), ("VIDEO_SLOTS", "video_slots")):
        if f"UROK_MEDIA_{name}" in env:  # e.g. 0 for a bench that needs every stream
            try:
                media[key] = int(env[f"UROK_MEDIA_{name}"])
            except ValueError as exc:
                raise ConfigError(f"UROK_MEDIA_{name} must be an integer") from exc
    if "UROK_MEDIA_THUMBNAIL_FRAME_RATE" in env:  # "full": a bench's baseline
        media["thumbnail_frame_rate"] = env["UROK_MEDIA_THUMBNAIL_FRAME_RATE"]
    if "UROK_MEDIA_DYNACAST" in env:  # "0": a bench's baseline
        flag = env["UROK_MEDIA_DYNACAST"].strip().lower()
        if flag not in ("0", "1", "true", "false"):
            raise ConfigError("UROK_MEDIA_DYNACAST must be 0 or 1")
        media["dynacast"] = flag in ("1", "true")
    if "UROK_MEDIA_UDP_PORTS" in env:  # e.g. 40000-40999
        media["udp_ports"] = env["UROK_MEDIA_UDP_PORTS"]
    return media


def _with_turn_secret(data: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """UROK_TURN_SECRET joins the file's [turn] before the section is checked (its URLs
    need a secret, which should stay out of files)."""
    turn = data.get("turn", {})
    if "UROK_TURN_SECRET" not in env or not isinstance(turn, dict):
        return data
    return {**data, "turn": {**turn, "secret": env["UROK_TURN_SECRET"]}}


def _operator_env(env: dict[str, str]) -> dict[str, Any]:
    """UROK_METRICS_TOKEN, UROK_METRICS_PORT, UROK_LOG_FORMAT and UROK_CLUSTER_SECRET (a
    secret stays out of files)."""
    out: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    if "UROK_METRICS_TOKEN" in env:
        metrics["token"] = env["UROK_METRICS_TOKEN"]
    if "UROK_METRICS_PORT" in env:
        try:
            metrics["port"] = int(env["UROK_METRICS_PORT"])
        except ValueError as exc:
            raise ConfigError("UROK_METRICS_PORT must be an integer") from exc
    if metrics:
        out["metrics"] = metrics
    if "UROK_LOG_FORMAT" in env:
        out["log"] = {"format": env["UROK_LOG_FORMAT"]}
    if "UROK_CLUSTER_SECRET" in env:
        out["cluster"] = {"secret": env["UROK_CLUSTER_SECRET"]}
    return out
