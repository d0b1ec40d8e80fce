"""The `[cluster]` section: how this node announces itself and its limits (docs/architecture.md,
"Several nodes"). Only meaningful with redis_url; with the memory store the node is alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from rooms.placement import NODE_ID_PATTERN, NodeLimits
from signalling.config_sections import ConfigError


@dataclass(frozen=True)
class ClusterSettings:
    # Default: derived from the host name and process id (signalling/node.py).
    node_id: str | None = None
    # Where browsers and journals reach this very node (default: public_url).
    node_url: str | None = None
    # HTTP address other nodes use for internal calls (default: http://host:port).
    internal_url: str | None = None
    # The node's record is refreshed this often and is dead (stale) when not
    # refreshed for stale_after_seconds; the leases of its lessons last as long.
    heartbeat_seconds: float = 2.0
    stale_after_seconds: float = 6.0
    # A lesson placed on a node but not yet joined there stays placed this long.
    placement_lease_seconds: float = 60.0
    limits: NodeLimits = field(default_factory=NodeLimits)
    # Signs node-to-node requests (a recording's file fetched from the node holding it;
    # signalling/recording_nodes.py); or UROK_CLUSTER_SECRET. Empty: a random secret the
    # nodes share through Redis.
    secret: str = ""


KNOWN_CLUSTER_KEYS = frozenset(
    {
        "node_id",
        "node_url",
        "internal_url",
        "heartbeat_seconds",
        "stale_after_seconds",
        "placement_lease_seconds",
        "max_cpu",
        "max_streams",
        "max_lessons",
        "secret",
    }
)
MIN_SECRET_BYTES = 32
_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")


def _number(value: Any, name: str, lowest: float, highest: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"cluster.{name} must be a number")
    if not lowest <= value <= highest:
        raise ConfigError(f"cluster.{name} must be from {lowest} to {highest}")
    return float(value)


def _strings(table: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "node_id" in table:
        if not isinstance(table["node_id"], str) or not NODE_ID_PATTERN.match(table["node_id"]):
            raise ConfigError("cluster.node_id must be 1 to 100 of A-Z a-z 0-9 . _ -")
        changes["node_id"] = table["node_id"]
    if "secret" in table:
        secret = table["secret"]
        if not isinstance(secret, str) or len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"cluster.secret must be a string of at least {MIN_SECRET_BYTES} bytes"
            )
        changes["secret"] = secret
    for key in ("node_url", "internal_url"):
        if key in table:
            if not isinstance(table[key], str) or not _URL.match(table[key]):
                raise ConfigError(f"cluster.{key} must be an http:// or https:// URL")
            changes[key] = table[key]
    return changes


def cluster_section(value: Any, base: ClusterSettings) -> ClusterSettings:
    if not isinstance(value, dict):
        raise ConfigError("cluster must be a table")
    unknown = sorted(set(value) - KNOWN_CLUSTER_KEYS)
    if unknown:
        raise ConfigError(f"unknown cluster setting(s): {', '.join(unknown)}")
    changes = _strings(value)
    for key in ("heartbeat_seconds", "stale_after_seconds", "placement_lease_seconds"):
        if key in value:
            changes[key] = _number(value[key], key, 0.05, 3600)
    limits = base.limits
    if "max_cpu" in value:
        limits = replace(limits, max_cpu=_number(value["max_cpu"], "max_cpu", 0.01, 64))
    for key in ("max_streams", "max_lessons"):
        if key in value:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10**6:
                raise ConfigError(f"cluster.{key} must be an integer from 1 to 1000000")
            limits = replace(limits, **{key: number})
    settings = replace(base, limits=limits, **changes)
    if settings.stale_after_seconds < 2 * settings.heartbeat_seconds:
        # One late refresh must not make a live node look dead.
        raise ConfigError("cluster.stale_after_seconds must be at least 2 × heartbeat_seconds")
    return settings
