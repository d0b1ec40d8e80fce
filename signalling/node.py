"""This node in the cluster: its record and load in the placement registry, and its leases.

`NodeAgent.run` (a cleanup-context task of the app) publishes the node's
record every `cluster.heartbeat_seconds`, with a time to live of
`cluster.stale_after_seconds`, and in the same beat renews the lease of every
lesson whose call runs here and releases those whose call has gone. A call
that starts here claims its lesson at once (`claim`). On a clean stop the
node releases its lessons and removes its record; a node that dies simply
stops refreshing, and its record and leases run out.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from rooms.placement import NodeLoad, NodeRecord, Placement
from signalling.cluster_peers import ClusterPeers
from signalling.config import Settings

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("urok")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


VERSION = _version()


def default_node_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def own_record(settings: Settings, node_id: str) -> NodeRecord:
    """This node's record with no load yet: addresses and limits from the settings."""
    cluster = settings.cluster
    ice = settings.ice
    media_address = ice.announced_address or (ice.addresses[0] if ice.addresses else settings.host)
    return NodeRecord(
        id=node_id,
        public_url=cluster.node_url or settings.public_url,
        internal_url=cluster.internal_url or f"http://{settings.host}:{settings.port}",
        media_address=media_address,
        version=VERSION,
        limits=cluster.limits,
        media_ports=settings.media.udp_ports,
    )


class CpuShare:
    """This process's CPU time over wall time since the previous reading (1.0 = one core)."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = time.process_time()

    def read(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._wall
        share = (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._wall, self._cpu = wall, cpu
        return round(max(0.0, share), 4)


class NodeAgent:
    def __init__(
        self,
        settings: Settings,
        placement: Placement,
        *,
        measure: Callable[[], NodeLoad],
        draining: Callable[[], bool],
        running: Callable[[], Iterable[str]],
    ) -> None:
        self.settings = settings
        self.placement = placement
        self.id = settings.cluster.node_id or default_node_id()
        self._base = own_record(settings, self.id)
        self._measure = measure
        self._draining = draining
        self._running = running  # ids of the lessons whose call runs here
        self._cpu = CpuShare()
        self.held: set[str] = set()
        self.peers = ClusterPeers()  # the live nodes' addresses, for the connection cap
        self._halted = asyncio.Event()
        self._failing = False

    @property
    def internal_url(self) -> str:
        return self._base.internal_url

    def record(self) -> NodeRecord:
        load = replace(self._measure(), cpu_share=self._cpu.read())
        return replace(self._base, load=load, draining=self._draining())

    async def beat(self) -> None:
        """Refresh the record, renew the leases of calls running here, release the others."""
        cluster = self.settings.cluster
        await self.placement.register(self.record(), cluster.stale_after_seconds)
        self.peers.update(r for r in await self.placement.nodes() if r.id != self.id)
        running = sorted(set(self._running()))
        lost = await self.placement.renew(self.id, running, cluster.stale_after_seconds)
        for lesson_id in self.held.intersection(lost):
            # Another node took it while this one looked dead (a stall longer than
            # stale_after): two calls for one lesson until the relay moves people over.
            logger.warning("lesson %s is held by another node now", lesson_id)
        for lesson_id in self.held - set(running):
            await self.placement.release(lesson_id, self.id)
        self.held = set(running) - set(lost)

    async def beat_logged(self) -> None:
        """A beat; a failure is logged once, not at every beat while Redis is away."""
        try:
            await self.beat()
        except Exception:
            if not self._failing:
                logger.exception("refreshing this node's record failed")
            self._failing = True
        else:
            if self._failing:
                logger.info("node %s is registered again", self.id)
            self._failing = False

    async def run(self) -> None:
        """Beat until `halt`. Stopped by an event, not by cancelling: a cancel that lands
        inside a redis-py call can be swallowed there, and the loop would go on."""
        # One waiter for the loop's life (wait_for would make a task per beat).
        halted = asyncio.ensure_future(self._halted.wait())
        try:
            while not halted.done():
                await asyncio.wait({halted}, timeout=self.settings.cluster.heartbeat_seconds)
                if not halted.done():
                    await self.beat_logged()
        finally:
            halted.cancel()

    def halt(self) -> None:
        self._halted.set()

    async def claim(self, lesson_id: str) -> str:
        """A call runs here: hold its lesson (unless a live node does); the holder."""
        if lesson_id in self.held:
            return self.id
        holder = await self.placement.claim(
            lesson_id, self.id, self.settings.cluster.stale_after_seconds
        )
        if holder == self.id:
            self.held.add(lesson_id)
        else:
            logger.warning(
                "lesson %s is held by node %s, its call starts here too", lesson_id, holder
            )
        return holder

    async def release(self, lesson_id: str) -> None:
        self.held.discard(lesson_id)
        await self.placement.release(lesson_id, self.id)

    async def locate(self, lesson_id: str) -> NodeRecord | None:
        """The live node holding the lesson, placing it by load if none does; None if no
        node can take it (all draining or full)."""
        lease = self.settings.cluster.placement_lease_seconds
        for _attempt in range(3):
            holder = await self.placement.place(lesson_id, lease)
            if holder is None:
                return None
            record = await self.placement.node(holder)
            if record is not None:
                return record
            # The holder died between the two reads: its lesson is free again.
        return None

    async def stop(self) -> None:
        """Release this node's lessons and remove its record (if Redis is there to hear it:
        otherwise they run out by themselves)."""
        held, self.held = sorted(self.held), set()
        try:
            for lesson_id in held:
                await self.placement.release(lesson_id, self.id)
            await self.placement.deregister(self.id)
        except Exception as exc:
            logger.warning("could not deregister node %s: %s", self.id, exc)
