"""Opus FEC and RED in our SDP (sfu/audio_sdp.py), through the real transports.

The publisher's offer and the subscriber's answer are Chromium 156's own (captured from
/usr/bin/chromium); the browser test (tests/browser/test_audio_loss.py) checks the
whole path with live browsers.
"""

from __future__ import annotations

from aiortc import sdp

from sfu.aiortc_hooks import ForwardingReceiver
from sfu.audio_sdp import (
    PREFERRED_RED_PAYLOAD_TYPE,
    publisher_audio_level_id,
    red_accepted,
    red_codecs_offered,
    subscriber_offer,
)
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from tests.sfu_support import (
    SubscribingClient,
    client_offer,
    publish_from_client,
    transport_options,
)

FINGERPRINT = (
    "D7:32:00:FE:6D:45:45:34:9F:98:81:BD:6C:A8:4C:06:C2:7C:C1:3C:5E:58:36:FF:4E:CD:AE:2A:"
    "DB:2D:8A:AB"
)
CHROMIUM_OFFER = """v=0
o=- 3455883211094724550 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:mxDo
a=ice-pwd:V6OdlyLiloURq2JyTyDn1ItT
a=ice-options:trickle
a=fingerprint:sha-256 {FINGERPRINT}
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendonly
a=msid:- df160e1a-de27-4da2-8de7-f4ec00575d24
a=rtcp-mux
a=rtcp-rsize
a=rtcp-xr:rcvr-rtt=all
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:875785142 cname:EYwV45r8oo/aeo6D
a=ssrc:875785142 msid:- df160e1a-de27-4da2-8de7-f4ec00575d24
""".replace("{FINGERPRINT}", FINGERPRINT).replace("\n", "\r\n")

# Chromium's answer to an offer of ours (Opus 96, RED 63 over it), the lines that matter.
CHROMIUM_ANSWER_AUDIO = """m=audio 9 UDP/TLS/RTP/SAVPF 96 63 9 0 8
c=IN IP4 0.0.0.0
a=mid:0
a=recvonly
a=rtcp-mux
a=rtpmap:96 opus/48000/2
a=fmtp:96 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 96/96
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
"""
# As aiortc's SDP parser reads our fmtp (it turns only the keys it knows into numbers).
OPUS_PARAMETERS = {"minptime": 10, "useinbandfec": 1, "usedtx": "1"}
SESSION = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def section(description: str, kind: str) -> sdp.MediaDescription:
    return next(m for m in sdp.SessionDescription.parse(description).media if m.kind == kind)


def codec(media: sdp.MediaDescription, name: str) -> tuple[int, dict[str, object]]:
    found = next(c for c in media.rtp.codecs if c.name.lower() == name)
    assert found.payloadType is not None
    return found.payloadType, dict(found.parameters)


async def test_chromiums_offer_is_answered_with_red_first_and_opus_fec() -> None:
    transport = PublisherTransport(transport_options())
    try:
        answer, producers = await transport.handle_offer(CHROMIUM_OFFER, {})
        assert [p.kind for p in producers] == ["audio"]
        audio = section(answer, "audio")
        # libwebrtc sends RED only when it comes before the codec it carries.
        assert audio.fmt[:2] == [63, 111]
        assert codec(audio, "red") == (63, {"111/111": None})
        # FEC and DTX asked of its encoder (usedtx: silence sends almost nothing).
        assert codec(audio, "opus") == (111, OPUS_PARAMETERS)
        # The audio level extension (RFC 6464) is answered with Chromium's own id.
        assert publisher_audio_level_id(answer) == {"0": 1}
        # The forwarding receiver takes RED packets (aiortc's own table has no RED).
        (transceiver,) = transport.pc.getTransceivers()
        receiver = transceiver.receiver
        assert isinstance(receiver, ForwardingReceiver)
        assert [(c.mimeType, c.payloadType) for c in receiver.extra_codecs] == [("audio/red", 63)]
    finally:
        await transport.close()


async def test_an_offer_without_red_gets_opus_fec_and_nothing_else() -> None:
    transport = PublisherTransport(transport_options())
    pc, _ = await publish_from_client(transport, ["audio", "video"])
    try:
        answer = pc.remoteDescription.sdp
        audio = section(answer, "audio")
        assert "red" not in {c.name.lower() for c in audio.rtp.codecs}
        assert codec(audio, "opus")[1] == OPUS_PARAMETERS
        assert all(c.name.lower() != "red" for c in section(answer, "video").rtp.codecs)
        assert red_codecs_offered(pc.localDescription.sdp) == {}
        assert publisher_audio_level_id(answer) == {"0": 2}  # aiortc offers it as id 2
    finally:
        await transport.close()
        await pc.close()


async def test_subscribers_are_offered_red_after_opus_and_an_aiortc_one_declines() -> None:
    publisher = PublisherTransport(transport_options())
    pub_pc, producers = await publish_from_client(publisher, ["audio", "video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        consumers = [subscriber.consume(p) for p in producers]
        offer, _ = await client.next_offer()
        audio = section(offer, "audio")
        opus_pt, opus_parameters = codec(audio, "opus")
        assert opus_parameters == OPUS_PARAMETERS
        assert codec(audio, "red") == (PREFERRED_RED_PAYLOAD_TYPE, {f"{opus_pt}/{opus_pt}": None})
        assert audio.fmt.index(PREFERRED_RED_PAYLOAD_TYPE) == audio.fmt.index(opus_pt) + 1
        assert all(c.name.lower() != "red" for c in section(offer, "video").rtp.codecs)
        client.offered.set()  # answer the offer just read
        await client.answer(subscriber)
        assert [c.red_payload_type for c in consumers] == [None, None]
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


def test_red_accepted_reads_chromiums_answer() -> None:
    assert red_accepted(SESSION + CHROMIUM_ANSWER_AUDIO.replace("\n", "\r\n")) == {"0": 63}
    # RED over another payload type than the answer's Opus is no RED for us.
    other = CHROMIUM_ANSWER_AUDIO.replace("a=fmtp:63 96/96", "a=fmtp:63 97/97")
    assert red_accepted(SESSION + other.replace("\n", "\r\n")) == {"0": None}
    without = CHROMIUM_ANSWER_AUDIO.replace("96 63 9", "96 9").replace(
        "a=rtpmap:63 red/48000/2\na=fmtp:63 96/96\n", ""
    )
    assert red_accepted(SESSION + without.replace("\n", "\r\n")) == {"0": None}


async def test_the_red_payload_type_never_collides() -> None:
    _, offer = await client_offer(["audio", "video"])
    taken = offer.replace(" 97 98", f" {PREFERRED_RED_PAYLOAD_TYPE} 98").replace(
        "a=rtpmap:97 ", f"a=rtpmap:{PREFERRED_RED_PAYLOAD_TYPE} "
    )
    assert f"rtpmap:{PREFERRED_RED_PAYLOAD_TYPE} VP8" in taken
    audio = section(subscriber_offer(taken), "audio")
    red_pt, _ = codec(audio, "red")
    assert red_pt != PREFERRED_RED_PAYLOAD_TYPE
    used = {pt for m in sdp.SessionDescription.parse(taken).media for pt in m.fmt}
    assert red_pt not in used
