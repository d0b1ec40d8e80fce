"""Which node runs a lesson's call: node records with their load, and lesson → node leases.

Every node publishes a `NodeRecord` (who it is, where it is reached, its load
and its own limits) every few seconds with a time to live: a node whose
record has expired is dead. A lesson is placed on one node when it first
needs media; the mapping is a lease the owning node keeps renewing while the
call runs and releases when it ends. `Placement` is the interface;
`LocalPlacement` (the memory store: one process) answers "this node" to
everything, `rooms.placement_redis.RedisPlacement` shares it between nodes.

The score (lower is better; rooms/placement_scripts.py computes it in Redis,
`load_score` is the same formula in Python, for the docs and tests):

    score = cpu_share / max_cpu + streams / max_streams + lessons / max_lessons

each term the share of one of the node's own limits in use, `lessons`
counting the leases it holds (placements not yet reflected in its CPU and
streams count at once, so a burst of new lessons spreads). A node with any
term at 1 or more is full and gets nothing new, nor does a draining node;
ties go to the smaller node id.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

# Node ids go into Redis keys as they are: keep them to a safe alphabet.
NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class NodeLoad:
    cpu_share: float = 0.0  # this process's CPU time over wall time, last interval (1.0 = a core)
    streams: int = 0  # forwarded streams: consumers carrying a producer
    participants: int = 0
    recordings: int = 0  # recordings running
    calls: int = 0


@dataclass(frozen=True)
class NodeLimits:
    """The most one node takes on before it is full (each node announces its own)."""

    max_cpu: float = 0.8
    max_streams: int = 2000
    max_lessons: int = 200


@dataclass(frozen=True)
class NodeRecord:
    id: str
    public_url: str  # where browsers and journals reach this node's HTTP and WebSocket
    internal_url: str  # HTTP address for node-to-node calls
    media_address: str  # the address its ICE candidates announce
    version: str
    load: NodeLoad = field(default_factory=NodeLoad)
    limits: NodeLimits = field(default_factory=NodeLimits)
    draining: bool = False
    # Its media sockets' UDP port range (first, last); None: any port.
    media_ports: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        return cls(
            id=str(data["id"]),
            public_url=str(data["public_url"]),
            internal_url=str(data["internal_url"]),
            media_address=str(data["media_address"]),
            version=str(data["version"]),
            load=NodeLoad(**data.get("load", {})),
            limits=NodeLimits(**data.get("limits", {})),
            draining=bool(data.get("draining", False)),
            media_ports=_port_range(data.get("media_ports")),
        )


def _port_range(value: Any) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else None


def load_score(record: NodeRecord, lessons: int) -> float:
    """The placement score of a node holding `lessons` leases (see the module docstring)."""
    limits, load = record.limits, record.load
    return (
        load.cpu_share / limits.max_cpu
        + load.streams / limits.max_streams
        + lessons / limits.max_lessons
    )


def is_full(record: NodeRecord, lessons: int) -> bool:
    limits, load = record.limits, record.load
    return (
        load.cpu_share >= limits.max_cpu
        or load.streams >= limits.max_streams
        or lessons >= limits.max_lessons
    )


class Placement(ABC):
    """Node records and lesson leases (one Redis, or just this process)."""

    @abstractmethod
    async def register(self, record: NodeRecord, ttl_seconds: float) -> None:
        """Publish (or refresh) this node's record; it expires after `ttl_seconds`."""

    @abstractmethod
    async def deregister(self, node_id: str) -> None:
        """Remove the record at once (a clean stop)."""

    @abstractmethod
    async def nodes(self) -> list[NodeRecord]:
        """Live nodes (records not expired), by id."""

    @abstractmethod
    async def node(self, node_id: str) -> NodeRecord | None:
        """A live node's record, None if it is unknown or dead."""

    @abstractmethod
    async def place(self, lesson_id: str, lease_seconds: float) -> str | None:
        """The node holding the lesson; if none (or its holder is dead), the least loaded
        live node that is neither draining nor full, given a lease of `lease_seconds`.
        None when every live node is draining or full. Atomic: concurrent calls agree."""

    @abstractmethod
    async def claim(self, lesson_id: str, node_id: str, lease_seconds: float) -> str:
        """`node_id` takes the lesson unless another live node holds it; the holder."""

    @abstractmethod
    async def renew(self, node_id: str, lesson_ids: list[str], lease_seconds: float) -> list[str]:
        """Renew `node_id`'s leases (taking back any that lapsed unclaimed); the lessons
        another node holds now, lost."""

    @abstractmethod
    async def release(self, lesson_id: str, node_id: str) -> None:
        """Give the lesson up, if `node_id` holds it."""

    @abstractmethod
    async def holder(self, lesson_id: str) -> str | None:
        """The node whose lease on the lesson runs (alive or not yet noticed dead)."""

    @abstractmethod
    async def shared_secret(self) -> bytes:
        """A random secret every node of this placement reads alike (the first to ask
        makes it): signs node-to-node requests when no cluster.secret is configured."""


class LocalPlacement(Placement):
    """One process, no Redis: this node is the only one and holds every lesson."""

    def __init__(self) -> None:
        self.record: NodeRecord | None = None
        self.held: set[str] = set()
        self._secret = secrets.token_bytes(32)

    def _this(self) -> str | None:
        return self.record.id if self.record is not None else None

    async def register(self, record: NodeRecord, ttl_seconds: float) -> None:
        self.record = record

    async def deregister(self, node_id: str) -> None:
        if self._this() == node_id:
            self.record = None

    async def nodes(self) -> list[NodeRecord]:
        return [self.record] if self.record is not None else []

    async def node(self, node_id: str) -> NodeRecord | None:
        return self.record if self._this() == node_id else None

    async def place(self, lesson_id: str, lease_seconds: float) -> str | None:
        # Even a draining single node takes it: there is nowhere else to go.
        node_id = self._this()
        if node_id is not None:
            self.held.add(lesson_id)
        return node_id

    async def claim(self, lesson_id: str, node_id: str, lease_seconds: float) -> str:
        self.held.add(lesson_id)
        return node_id

    async def renew(self, node_id: str, lesson_ids: list[str], lease_seconds: float) -> list[str]:
        self.held.update(lesson_ids)
        return []

    async def release(self, lesson_id: str, node_id: str) -> None:
        self.held.discard(lesson_id)

    async def holder(self, lesson_id: str) -> str | None:
        return self._this() if lesson_id in self.held else None

    async def shared_secret(self) -> bytes:
        return self._secret
