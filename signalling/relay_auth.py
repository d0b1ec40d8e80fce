"""The node-to-node credential of a relayed WebSocket: whose connection it really is.

A node relaying a client's WebSocket to the lesson's node (signalling/ws_relay.py)
connects from its own address; the owning node must still limit and log by the
client's. The relay sends the client's address in RELAYED_FOR with, in RELAY_AUTH,
`<unix time>.<HMAC-SHA256(key, time + "\\n" + address)>`. The owner believes the
address only when the MAC is right and the time within MAX_SKEW_SECONDS of its own
clock (a captured header is worthless a minute later); anything else is ignored and
the connection counts as the relaying peer's, as any other.

The key is derived from the cluster secret that signs the other node-to-node
requests (signalling/recording_nodes.py: `cluster.secret`, or a random one the nodes
share through Redis), fetched only for a connection that carries the header.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Mapping

from aiohttp import web

from signalling.recording_nodes import NODE_LINK

logger = logging.getLogger(__name__)

RELAYED_FOR = "X-Urok-Relayed-For"
RELAY_AUTH = "X-Urok-Relay-Auth"
MAX_SKEW_SECONDS = 60


async def relay_key(app: web.Application) -> bytes:
    """The key relayed addresses are signed with: the cluster secret's, for this use only
    (a recording request's signature is never a relay credential, nor the reverse)."""
    secret = await app[NODE_LINK].secret(app)
    return hmac.new(secret, b"urok-ws-relay", hashlib.sha256).digest()


def _mac(key: bytes, stamp: str, address: str) -> str:
    return hmac.new(key, f"{stamp}\n{address}".encode(), hashlib.sha256).hexdigest()


def relay_headers(key: bytes, address: str, now: float) -> dict[str, str]:
    """The headers a relaying node sends for a client at `address`."""
    stamp = str(int(now))
    return {RELAYED_FOR: address, RELAY_AUTH: f"{stamp}.{_mac(key, stamp, address)}"}


def relayed_client(headers: Mapping[str, str], key: bytes, now: float) -> str | None:
    """The client address a relaying node vouches for in `headers`, or None (no relay
    headers, a wrong or stale credential, not an IP address)."""
    address, auth = headers.get(RELAYED_FOR), headers.get(RELAY_AUTH)
    if address is None or auth is None:
        return None
    stamp, _, mac = auth.partition(".")
    if not stamp.isdigit() or len(stamp) > 12 or abs(now - int(stamp)) > MAX_SKEW_SECONDS:
        return None
    if not hmac.compare_digest(mac, _mac(key, stamp, address)):
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


async def relayed_peer(request: web.Request) -> str | None:
    """The client address a relaying node vouches for in `request`, if it carries one."""
    if RELAYED_FOR not in request.headers:
        return None
    try:
        key = await relay_key(request.app)
    except Exception as exc:  # Redis away: the connection is the TCP peer's
        logger.warning("cannot check a relayed address: %s", exc)
        return None
    return relayed_client(request.headers, key, time.time())
