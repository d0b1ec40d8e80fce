"""The cluster's own nodes as clients of this one.

A WebSocket that lands on another node is relayed here over one node-to-node
connection per client (signalling/ws_relay.py), all from that node's address: the
cap on open connections per client address (http_guard.py, 500 by default) would
refuse the 501st pupil relayed by one node. The live nodes' internal addresses
(their records in Redis, refreshed at each beat) are not capped as one client;
the owner limits each relayed client by its signed address (relay_auth.py). A
relaying node connects from its own internal address when that is an address of
its machine, so the owner can tell it from the clients on the same host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from rooms.placement import NodeRecord
from signalling.ratelimit import client_key


def internal_host(internal_url: str) -> str | None:
    """The IP address of an internal URL (None for a host name: not resolved here)."""
    host = urlsplit(internal_url).hostname
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


class ClusterPeers:
    """The client keys (ratelimit.client_key) of the live nodes' internal addresses."""

    def __init__(self) -> None:
        self.keys: frozenset[str] = frozenset()

    def update(self, records: Iterable[NodeRecord]) -> None:
        hosts = (internal_host(record.internal_url) for record in records)
        self.keys = frozenset(client_key(host) for host in hosts if host is not None)

    def __contains__(self, key: object) -> bool:
        return key in self.keys


def relay_source(internal_url: str) -> str | None:
    """The address relayed connections leave from: this node's internal address if it
    is one of this machine's (bound once here to find out), else the system's choice."""
    host = internal_host(internal_url)
    if host is None:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return None
    return host
