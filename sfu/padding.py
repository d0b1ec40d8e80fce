"""Padding-only RTP packets on a stream's RTX SSRC, for bandwidth probes (sfu/probe.py).

A packet with the P bit set whose payload is all padding (RFC 3550 5.1): its
last byte counts the padding bytes, at most 255. Sent under the RTX SSRC and
payload type (RFC 4588), as libwebrtc sends its own probes' padding: the RTX
stream has its own sequence numbers, so the media stream the subscriber
decodes, and its loss count, are untouched, and a receiver drops a padding
packet after counting it (libwebrtc; aiortc skips an RTX packet of fewer than
two payload bytes).
"""

from __future__ import annotations

from sfu.rtp_header import rtp_header

MAX_PADDING = 255  # the pad count is one byte
_PADDING_BIT = 0x20


def padding_packet(
    payload_type: int, seq: int, ts: int, ssrc: int, element: int | None, size: int
) -> bytes:
    """A padding-only packet of `size` bytes, header included (as near as the one-byte
    pad count allows); with abs-send-time (`element`) its time is left to stamp."""
    header = rtp_header(payload_type, seq, ts, ssrc, element)
    pad = min(MAX_PADDING, max(1, size - len(header)))
    return bytes([header[0] | _PADDING_BIT]) + header[1:] + bytes(pad - 1) + bytes([pad])
