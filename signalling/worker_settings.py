"""`urok serve --workers N`: what each of N node processes on one machine gets
(docs/architecture.md, "Several cores on one machine").

Every worker is a full node of the cluster, told apart from its siblings by:

- its node id: the configured `cluster.node_id` (else one derived once, by the parent,
  from the host name and the parent's pid) + "-w<i>", the same across its restarts;
- its slice of `media.udp_ports` (the range split evenly, the last worker also taking the
  remainder), so a firewall opens the one configured range;
- its internal address: with a shared public port an address cannot name one worker, so
  each also listens on a port of its own, announced as its `internal_url`: the configured
  `cluster.internal_url`'s port + i (on that URL's host), else a loopback port the system
  chooses;
- its metrics port (if `metrics.port` is set): that port + i;
- its recordings directory: worker 0 keeps the configured one (so switching from one
  process to workers keeps the recordings listed), worker i > 0 uses `worker-<i>` in it,
  as a separate node would use its own disk (a restarted worker marks the recordings it
  finds unfinished as cut short: they must be its own).

The public host:port, the store and everything else are the same for all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from urllib.parse import urlsplit

from rooms.placement import NODE_ID_PATTERN
from signalling.config import ConfigError, Settings

MAX_WORKERS = 64
# About two UDP ports per participant (sfu/media_ports.py): fewer than ten people per
# worker is a range too small to split.
MIN_MEDIA_PORTS_PER_WORKER = 20
LOOPBACK = "127.0.0.1"


def check_workers(settings: Settings, count: int, node_id_base: str) -> None:
    """ConfigError saying why these settings cannot run `count` workers."""
    if count == 1:
        return
    if not settings.redis_url:
        raise ConfigError(
            f"--workers {count} needs Redis (redis_url, UROK_REDIS_URL or --redis-url): "
            "the workers are separate nodes and share lessons, chat and placement through "
            "it; without Redis run one process (--workers 1)"
        )
    if settings.port == 0:
        raise ConfigError("--workers needs a fixed port (not 0) for the workers to share")
    ports = settings.media.udp_ports
    if ports is not None and (ports[1] - ports[0] + 1) // count < MIN_MEDIA_PORTS_PER_WORKER:
        raise ConfigError(
            f"media.udp_ports {ports[0]}-{ports[1]} is too small for {count} workers: each "
            f"needs at least {MIN_MEDIA_PORTS_PER_WORKER} ports of its own"
        )
    if settings.metrics.port is not None and settings.metrics.port + count - 1 > 65535:
        raise ConfigError(f"metrics.port + {count - 1} (one port per worker) is above 65535")
    if settings.metrics.port is not None and (
        settings.metrics.port <= settings.port < settings.metrics.port + count
    ):
        raise ConfigError(
            f"the workers' metrics ports {settings.metrics.port}-"
            f"{settings.metrics.port + count - 1} include the public port {settings.port}"
        )
    internal = settings.cluster.internal_url
    if internal is not None and _url_port(internal) + count - 1 > 65535:
        raise ConfigError(f"cluster.internal_url's port + {count - 1} is above 65535")
    if not NODE_ID_PATTERN.match(worker_node_id(node_id_base, count - 1)):
        raise ConfigError("cluster.node_id is too long to add a worker suffix (-w<i>)")


def worker_node_id(base: str, index: int) -> str:
    return f"{base}-w{index}"


def _url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def internal_address(settings: Settings, index: int) -> tuple[str, int]:
    """Where worker `index` listens for node-to-node calls (port 0: the system chooses)."""
    internal = settings.cluster.internal_url
    if internal is None:
        return LOOPBACK, 0
    return urlsplit(internal).hostname or LOOPBACK, _url_port(internal) + index


def internal_url(settings: Settings, host: str, port: int) -> str:
    """The announced URL of the internal listener bound at host:port."""
    scheme = urlsplit(settings.cluster.internal_url or "http://").scheme
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    name = f"[{host}]" if literal is not None and literal.version == 6 else host
    return f"{scheme}://{name}:{port}"


def media_slice(ports: tuple[int, int], index: int, count: int) -> tuple[int, int]:
    """Worker `index`'s part of the range `ports`; the last takes the remainder."""
    first, last = ports
    size = (last - first + 1) // count
    start = first + index * size
    return start, last if index == count - 1 else start + size - 1


def worker_settings(
    settings: Settings, index: int, count: int, node_id_base: str, announced_internal: str
) -> Settings:
    """The settings of worker `index` of `count` (see the module docstring)."""
    cluster = replace(
        settings.cluster,
        node_id=worker_node_id(node_id_base, index),
        internal_url=announced_internal,
    )
    media = settings.media
    if media.udp_ports is not None:
        media = replace(media, udp_ports=media_slice(media.udp_ports, index, count))
    metrics = settings.metrics
    if metrics.port is not None:
        metrics = replace(metrics, port=metrics.port + index)
    recording = settings.recording
    if index > 0:
        recording = replace(recording, directory=settings.recordings_dir / f"worker-{index}")
    return replace(settings, cluster=cluster, media=media, metrics=metrics, recording=recording)
