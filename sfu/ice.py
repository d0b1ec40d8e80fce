"""ICE servers and addresses in SDP, with aiortc's public API only.

Which ICE (STUN/TURN) servers a peer connection uses, and the public address
announced in our SDP in place of the local one (a server behind 1:1 NAT).
Which local addresses ICE gathers on is set in sfu/aiortc_hooks.py, since
that patches aioice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer


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
