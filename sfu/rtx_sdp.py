"""RTX that every subscriber can demultiplex: a payload type of its own per m-section.

A retransmission (RFC 4588) goes on the RTX SSRC that our offer announces
with the media SSRC (``a=ssrc-group:FID``). Browsers route it by that SSRC.
aiortc's receiving side does not: its RtpRouter registers only media SSRCs
and routes a packet of an unknown SSRC by its payload type, and only while
one m-section alone has that payload type. aiortc offers the same codec
table in every m-section, so a subscriber of two or more videos dropped every
RTX packet, its NACKs were never answered and its video stopped decoding
(issue 16: 0.7 fps against 30 with retransmissions on the media SSRC).

So each video m-section after the first gets RTX payload types no other
m-section uses (same codec, ``apt`` unchanged; RFC 8843 allows different
payload types for one codec in different bundled m-sections). They are
handed out in m-line order from a fixed pool that leaves out every payload
type of aiortc's codec table and RED's, so an m-section keeps its numbers
in every later offer (m-sections are never removed, only reused). When the
pool runs out, an m-section is offered no RTX: its retransmissions then go
on the media SSRC, which every receiver routes.
"""

from __future__ import annotations

from itertools import islice

from aiortc import sdp
from aiortc.codecs import CODECS, is_rtx

from sfu.audio_sdp import PREFERRED_RED_PAYLOAD_TYPE

_TAKEN = {c.payloadType for codecs in CODECS.values() for c in codecs} | {
    PREFERRED_RED_PAYLOAD_TYPE
}
# Dynamic payload types (35-63 are as good as 96-127 under rtcp-mux, RFC 5761).
RTX_PAYLOAD_TYPES = tuple(pt for pt in (*range(96, 128), *range(35, 64)) if pt not in _TAKEN)


def _drop_rtx(media: sdp.MediaDescription) -> None:
    """No RTX in this m-section: neither its codecs nor its SSRC."""
    rtx_pts = {c.payloadType for c in media.rtp.codecs if is_rtx(c)}
    media.rtp.codecs = [c for c in media.rtp.codecs if not is_rtx(c)]
    media.fmt = [pt for pt in media.fmt if pt not in rtx_pts]
    fid = {s for group in media.ssrc_group if group.semantic == "FID" for s in group.items[1:]}
    media.ssrc = [s for s in media.ssrc if s.ssrc not in fid]
    media.ssrc_group = [g for g in media.ssrc_group if g.semantic != "FID"]


def distinct_rtx_payload_types(offer: str) -> str:
    """Our offer to a subscriber with no RTX payload type shared by two m-sections."""
    description = sdp.SessionDescription.parse(offer)
    distinct_rtx(description)
    return str(description)


def distinct_rtx(description: sdp.SessionDescription) -> None:
    """`distinct_rtx_payload_types` on a parsed offer, in place."""
    free = iter(RTX_PAYLOAD_TYPES)
    first = True
    for media in description.media:
        rtx = [c for c in media.rtp.codecs if is_rtx(c)]
        if media.kind != "video" or not rtx:
            continue
        if first:  # aiortc's own numbers, now used by this m-section alone
            first = False
            continue
        fresh = list(islice(free, len(rtx)))
        if len(fresh) < len(rtx):
            _drop_rtx(media)
            continue
        renumbered = {codec.payloadType: pt for codec, pt in zip(rtx, fresh, strict=True)}
        for codec in rtx:
            codec.payloadType = renumbered[codec.payloadType]
        media.fmt = [renumbered.get(pt, pt) if isinstance(pt, int) else pt for pt in media.fmt]
