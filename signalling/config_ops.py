"""The operator's sections of the settings: `[metrics]`, `[health]` and `[log]`.

signalling/config.py puts them into Settings; docs/operations.md explains them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from signalling.config_sections import ConfigError


@dataclass(frozen=True)
class MetricsSettings:
    """GET /metrics (Prometheus): off unless a token or a port is set.

    With `token`, the main port answers /metrics to `Authorization: Bearer <token>`.
    With `port`, a second listener on `host:port` serves /metrics (and nothing
    else), with no token unless `token` is set too; the main port's /metrics is
    then 404. Neither: /metrics is 404 everywhere.
    """

    token: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.port is not None


@dataclass(frozen=True)
class HealthSettings:
    # GET /readyz answers 503 while the event loop's recent worst lag is above this.
    max_loop_lag_ms: int = 500


@dataclass(frozen=True)
class LogSettings:
    # "text": the classic one line of text; "json": one JSON object per line.
    format: str = "text"
    level: str = "INFO"


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _table(value: Any, name: str, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table")
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"unknown {name} setting(s): {', '.join(unknown)}")
    return value


def _int(value: Any, name: str, lowest: int, highest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ConfigError(f"{name} must be an integer from {lowest} to {highest}")
    return value


def metrics_section(value: Any, base: MetricsSettings) -> MetricsSettings:
    table = _table(value, "metrics", frozenset({"token", "port", "host"}))
    changes: dict[str, Any] = {}
    if "token" in table:
        token = table["token"]
        if not isinstance(token, str):
            raise ConfigError("metrics.token must be a string")
        if token and len(token) < 16:
            raise ConfigError("metrics.token must be at least 16 characters (or empty: none)")
        changes["token"] = token or None
    if "port" in table:
        # 0: no separate port (UROK_METRICS_PORT=0 undoes a port in the file).
        changes["port"] = _int(table["port"], "metrics.port", 0, 65535) or None
    if "host" in table:
        host = table["host"]
        try:
            ipaddress.ip_address(host)
        except (TypeError, ValueError):
            raise ConfigError("metrics.host must be an IP address") from None
        changes["host"] = host
    return replace(base, **changes)


def health_section(value: Any, base: HealthSettings) -> HealthSettings:
    table = _table(value, "health", frozenset({"max_loop_lag_ms"}))
    if "max_loop_lag_ms" in table:
        return replace(
            base, max_loop_lag_ms=_int(table["max_loop_lag_ms"], "health.max_loop_lag_ms", 1, 60000)
        )
    return base


def log_section(value: Any, base: LogSettings) -> LogSettings:
    table = _table(value, "log", frozenset({"format", "level"}))
    changes: dict[str, Any] = {}
    if "format" in table:
        if table["format"] not in LOG_FORMATS:
            raise ConfigError(f"log.format must be one of {', '.join(LOG_FORMATS)}")
        changes["format"] = table["format"]
    if "level" in table:
        level = table["level"]
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}")
        changes["level"] = level.upper()
    return replace(base, **changes)
