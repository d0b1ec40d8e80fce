"""RTX payload types of their own per m-section in our offers (sfu/rtx_sdp.py).

The offers are aiortc's own, made as SubscriberTransport makes them (one sendonly
transceiver per consumer, RED added by sfu/audio_sdp.py); tests/test_sfu_rtx.py
checks that an aiortc subscriber of several videos then gets its retransmissions.
"""

from __future__ import annotations

from collections import defaultdict

from aiortc import RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.codecs import is_rtx

from sfu.audio_sdp import PREFERRED_RED_PAYLOAD_TYPE, subscriber_offer
from sfu.ice import rtc_configuration
from sfu.rtx_sdp import RTX_PAYLOAD_TYPES, distinct_rtx_payload_types


async def _offer(kinds: list[str]) -> str:
    """Our offer to a subscriber of `kinds`, as SubscriberTransport makes it."""
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendonly")
        offer = await pc.createOffer()
        return distinct_rtx_payload_types(subscriber_offer(offer.sdp))
    finally:
        await pc.close()


def _rtx_by_mid(offer: str) -> dict[str, dict[int, int]]:
    """For each video m-section: RTX payload type -> its apt."""
    return {
        media.rtp.muxId or "": {
            c.payloadType: c.parameters["apt"] for c in media.rtp.codecs if is_rtx(c)
        }
        for media in sdp.SessionDescription.parse(offer).media
        if media.kind == "video"
    }


async def test_no_rtx_payload_type_is_shared_and_none_means_two_codecs() -> None:
    offer = await _offer(["audio", "video", "video", "audio", "video"])
    rtx = _rtx_by_mid(offer)
    assert len(rtx) == 3 and all(len(types) == 3 for types in rtx.values())
    owners: dict[int, set[str]] = defaultdict(set)
    for mid, types in rtx.items():
        for pt in types:
            owners[pt].add(mid)
    assert all(len(mids) == 1 for mids in owners.values()), owners
    # Each RTX still names the media codec of its own m-section (aiortc's numbers),
    # and the first video keeps aiortc's RTX numbers.
    first, *_ = rtx.values()
    assert first == {98: 97, 100: 99, 102: 101}
    assert all(set(types.values()) == {97, 99, 101} for types in rtx.values())
    # BUNDLE: one payload type is one codec across the whole description (RED included).
    codec_of: dict[int, set[str]] = defaultdict(set)
    for media in sdp.SessionDescription.parse(offer).media:
        assert set(media.fmt) == {c.payloadType for c in media.rtp.codecs}
        for c in media.rtp.codecs:
            codec_of[c.payloadType].add(f"{c.mimeType} {c.parameters}")
    assert all(len(codecs) == 1 for codecs in codec_of.values()), codec_of
    assert PREFERRED_RED_PAYLOAD_TYPE in codec_of  # RED is there, and RTX left it alone


async def test_an_m_section_keeps_its_rtx_numbers_in_later_offers() -> None:
    # m-sections are never removed: a later offer has more, and the earlier ones
    # must not change (both ends fixed their payload types at the first answer).
    before = _rtx_by_mid(await _offer(["audio", "video", "video"]))
    after = _rtx_by_mid(await _offer(["audio", "video", "video", "audio", "video", "video"]))
    assert {mid: after[mid] for mid in before} == before
    assert len(after) == 4


async def test_beyond_the_free_payload_types_an_m_section_gets_no_rtx() -> None:
    videos = 2 + len(RTX_PAYLOAD_TYPES) // 3
    offer = await _offer(["video"] * videos)
    media = sdp.SessionDescription.parse(offer).media
    with_rtx = [m for m in media if any(is_rtx(c) for c in m.rtp.codecs)]
    assert len(with_rtx) == 1 + len(RTX_PAYLOAD_TYPES) // 3
    last = media[-1]
    assert [c.mimeType for c in last.rtp.codecs] == ["video/VP8", "video/H264", "video/H264"]
    # Its RTX SSRC is not announced either: a receiver expects nothing on it.
    assert len(last.ssrc) == 1 and not last.ssrc_group
    assert media[0].ssrc_group and len(media[0].ssrc) == 2
    # An aiortc subscriber takes such an offer and answers it as it is.
    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        answer = await pc.createAnswer()
        assert answer is not None
        assert _rtx_by_mid(answer.sdp) == _rtx_by_mid(offer)
    finally:
        await pc.close()
