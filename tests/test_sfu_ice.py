"""sfu/ice.py: ICE servers as configured, and the announced address in our SDP."""

from __future__ import annotations

from sfu.ice import announce_address, rtc_configuration


def test_configured_ice_servers_are_used_as_given() -> None:
    config = rtc_configuration([{"urls": ["stun:stun.school.example:3478"]}])
    assert [s.urls for s in config.iceServers] == [["stun:stun.school.example:3478"]]
    assert rtc_configuration([]).iceServers == []


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
