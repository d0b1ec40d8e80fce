"""The aiortc/aioice patch module: pinned internals, ICE addresses and servers."""

from __future__ import annotations

import re

import aioice.ice
from aiortc import RTCPeerConnection

from sfu.aiortc_hooks import (
    announce_address,
    check_pinned_internals,
    restrict_host_addresses,
    rtc_configuration,
)


def test_pinned_internals_are_all_present() -> None:
    assert check_pinned_internals() == []


async def test_gathers_only_on_configured_addresses_with_no_stun_server() -> None:
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        hosts = re.findall(
            r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\S+)",
            pc.localDescription.sdp,
            re.MULTILINE,
        )
        assert hosts and {h for h, _ in hosts} == {"127.0.0.1"}
        assert {t for _, t in hosts} == {"host"}  # no server-reflexive: no STUN asked
        gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        assert gatherer._connection.stun_server is None
    finally:
        await pc.close()


def test_configured_ice_servers_are_used_as_given() -> None:
    config = rtc_configuration([{"urls": ["stun:stun.school.example:3478"]}])
    assert [s.urls for s in config.iceServers] == [["stun:stun.school.example:3478"]]
    assert rtc_configuration([]).iceServers == []


def test_address_family_filter() -> None:
    restrict_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
    finally:
        restrict_host_addresses(["127.0.0.1"])


SDP = """v=0
o=- 1 1 IN IP4 0.0.0.0
m=audio 40000 UDP/TLS/RTP/SAVPF 96
c=IN IP4 10.0.0.5
a=candidate:abc 1 udp 2130706431 10.0.0.5 40000 typ host
a=candidate:def 1 udp 2130706431 10.0.0.6 40001 typ host
"""


def test_announced_address_replaces_local_host_candidates_only() -> None:
    out = announce_address(SDP, ["10.0.0.5"], "203.0.113.7")
    assert "a=candidate:abc 1 udp 2130706431 203.0.113.7 40000 typ host" in out
    assert "a=candidate:def 1 udp 2130706431 10.0.0.6 40001 typ host" in out
    assert "c=IN IP4 203.0.113.7" in out
    assert announce_address(SDP, ["10.0.0.5"], None) == SDP
