"""ICE: which servers, which local addresses, and the address announced in SDP.

Which ICE (STUN/TURN) servers a peer connection uses, and the public address
announced in our SDP in place of the local one (a server behind 1:1 NAT), and
which local addresses ICE gathers host candidates on (aioice leaves loopback
out and otherwise uses every interface; its module function is replaced, and
sfu/aiortc_hooks.py checks that it is still there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

_original_get_host_addresses = aioice.ice.get_host_addresses
_host_addresses: tuple[str, ...] | None = None


def restrict_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather ICE host candidates only on `addresses` (None: aioice's own choice).

    Process-wide, because aioice looks host addresses up through a module
    function. The server sets it once at start from its configuration.
    """
    global _host_addresses
    _host_addresses = tuple(addresses) if addresses is not None else None
    aioice.ice.get_host_addresses = _configured_host_addresses


def _configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _host_addresses is None:
        return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [a for a in _host_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def rtc_configuration(ice_servers: Sequence[dict[str, Any]]) -> RTCConfiguration:
    """An RTCConfiguration with exactly the configured ICE servers.

    aiortc falls back to a public Google STUN server when iceServers is None;
    an explicit (possibly empty) list keeps it from doing so. Everything is
    bundled on one transport.
    """
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    # max-bundle: with aiortc's default ("balanced") a second video m-section
    # added in one offer keeps a transport that BUNDLE then stops, and never sends.
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$", re.MULTILINE)


def announce_address(sdp: str, local_addresses: Sequence[str], announced: str | None) -> str:
    """Replace our local host-candidate addresses with the announced one."""
    if not announced:
        return sdp
    local = set(local_addresses)

    def swap(match: re.Match[str]) -> str:
        if match.group(2) in local:
            return match.group(1) + announced + match.group(3)
        return match.group(0)

    sdp = _CANDIDATE.sub(swap, sdp)
    return re.sub(
        r"^c=IN IP(4|6) (\S+)$",
        lambda m: _swap_c_line(m, local, announced),
        sdp,
        flags=re.MULTILINE,
    )


def _swap_c_line(match: re.Match[str], local: set[str], announced: str) -> str:
    if match.group(2) not in local:
        return match.group(0)
    family = "6" if ":" in announced else "4"
    return f"c=IN IP{family} {announced}"
