"""sfu/sdp_sections.py: an SDP's m-sections of one kind, as text, for a cheap parse."""

from __future__ import annotations

from aiortc import RTCPeerConnection, sdp

from sfu.audio_sdp import red_accepted
from sfu.sdp_sections import only_media


async def offer_of(kinds: list[str]) -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    text = str(pc.localDescription.sdp)
    await pc.close()
    return text


async def test_only_the_m_sections_of_a_kind_are_kept_in_their_order() -> None:
    full = await offer_of(["video", "audio", "video", "video", "audio"])
    audio = sdp.SessionDescription.parse(only_media(full, "audio"))
    assert [(m.kind, m.rtp.muxId) for m in audio.media] == [("audio", "1"), ("audio", "4")]
    video = sdp.SessionDescription.parse(only_media(full, "video"))
    assert [m.rtp.muxId for m in video.media] == ["0", "2", "3"]
    whole = sdp.SessionDescription.parse(full)
    # Each kept m-section is exactly as it was, session part included.
    assert [str(m) for m in audio.media] == [str(m) for m in whole.media if m.kind == "audio"]
    assert audio.origin == whole.origin and audio.group == whole.group
    assert only_media(full, "application").count("\r\nm=") == 0


async def test_red_is_read_from_the_audio_among_many_videos() -> None:
    full = await offer_of(["video", "audio", "video"])
    red = full.replace(
        "a=rtpmap:96 opus/48000/2\r\n",
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 96/96\r\n",
    )
    assert "a=rtpmap:96 opus/48000/2" in full  # the offer's Opus is payload type 96
    red = red.replace("m=audio 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 96 63")
    assert red_accepted(red) == {"1": 63}
    assert red_accepted(full) == {"1": None}
