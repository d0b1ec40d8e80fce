"""Simulcast in our SDP (sfu/simulcast_sdp.py), through the real PublisherTransport.

The offer is Chromium's own (captured from /usr/bin/chromium: a 1280x720 camera
sent as three VP8 encodings, rids q/h/f). tests/browser/test_simulcast.py checks
that Chromium then sends all three layers.
"""

from __future__ import annotations

from pathlib import Path

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.aiortc_hooks import ForwardingReceiver
from sfu.simulcast_sdp import REPAIRED_RID_URI, RID_URI, simulcast_answer, simulcast_offered
from sfu.transport import PublisherTransport
from tests.sfu_support import publish_from_client, transport_options

CHROMIUM_OFFER = (Path(__file__).parent / "data" / "chromium_simulcast_offer.sdp").read_text()


def _lines(sdp: str, prefix: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith(prefix)]


def test_reads_rids_and_extension_ids_from_a_chromium_offer() -> None:
    offered = simulcast_offered(CHROMIUM_OFFER)
    assert set(offered) == {"0"}
    assert offered["0"].rids == ("q", "h", "f")
    assert (offered["0"].rid_extension, offered["0"].repaired_extension) == (10, 11)


def test_offers_without_simulcast_have_no_rids() -> None:
    one_rid = CHROMIUM_OFFER.replace("a=simulcast:send q;h;f", "a=simulcast:send q")
    assert simulcast_offered(one_rid)["0"].rids == ()
    assert not simulcast_offered(one_rid)["0"].simulcast
    no_extension = CHROMIUM_OFFER.replace(f"a=extmap:10 {RID_URI}\n", "")
    assert simulcast_offered(no_extension) == {}
    undeclared = CHROMIUM_OFFER.replace("a=rid:f send\n", "")
    assert simulcast_offered(undeclared)["0"].rids == ("q", "h")  # f is not declared
    assert simulcast_answer("v=0\r\n", {}) == "v=0\r\n"


async def test_the_rid_extensions_are_accepted_without_simulcast_too() -> None:
    """Chromium stops offering an extension its last answer left out, and then refuses
    its own offer of a simulcast camera added later (tests/browser/test_classroom.py)."""
    no_simulcast = "\n".join(
        line
        for line in CHROMIUM_OFFER.splitlines()
        if not line.startswith(("a=rid:", "a=simulcast:"))
    )
    transport = PublisherTransport(transport_options())
    try:
        answer, [producer] = await transport.handle_offer(no_simulcast + "\n", {"0": {}})
        assert f"a=extmap:10 {RID_URI}" in answer.splitlines()
        assert f"a=extmap:11 {REPAIRED_RID_URI}" in answer.splitlines()
        assert _lines(answer, "a=rid") == [] and _lines(answer, "a=simulcast") == []
        assert producer.layer_count == 1
    finally:
        await transport.close()


async def test_our_answer_accepts_the_three_layers() -> None:
    transport = PublisherTransport(transport_options())
    try:
        answer, producers = await transport.handle_offer(CHROMIUM_OFFER, {"0": {}})
        assert _lines(answer, "a=rid:") == ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv"]
        assert _lines(answer, "a=simulcast:") == ["a=simulcast:recv q;h;f"]
        assert f"a=extmap:10 {RID_URI}" in answer.splitlines()
        assert f"a=extmap:11 {REPAIRED_RID_URI}" in answer.splitlines()
        assert "a=recvonly" in answer.splitlines()
        # Still a description aiortc reads back (the browser test: Chromium, too).
        [video] = sdp.SessionDescription.parse(answer).media
        assert video.rtp.muxId == "0" and video.direction == "recvonly"
        [producer] = producers
        assert producer.layer_count == 3
        assert [layer.rid for layer in producer.layers] == ["q", "h", "f"]
    finally:
        await transport.close()


async def test_a_publisher_without_simulcast_gets_no_rid_lines_and_one_layer() -> None:
    transport = PublisherTransport(transport_options())
    try:
        pc, producers = await publish_from_client(transport, ["audio", "video"])
        answer = transport.pc.localDescription.sdp
        assert _lines(answer, "a=rid") == [] and _lines(answer, "a=simulcast") == []
        assert [p.layer_count for p in producers] == [1, 1]
        await pc.close()
    finally:
        await transport.close()


async def test_the_receiver_parses_the_rid_extensions_of_the_answer() -> None:
    """The extension ids reach aiortc's packet parser: rids are read off the wire."""
    offer = simulcast_offered(CHROMIUM_OFFER)["0"]
    parameters = RTCRtpReceiveParameters(headerExtensions=offer.header_extensions())
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    sent = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=77)
    sent.extensions.rtp_stream_id = "h"
    sent.extensions.repaired_rtp_stream_id = "f"
    wire = sent.serialize(extensions)
    received = RtpPacket.parse(wire, extensions)
    assert (received.extensions.rtp_stream_id, received.extensions.repaired_rtp_stream_id) == (
        "h",
        "f",
    )
    assert ForwardingReceiver.__annotations__["extra_header_extensions"]
