"""The RTP headers the SFU writes in front of a forwarded payload.

Version 2, no padding, no CSRC; marker + payload type; seq; ts; SSRC. Where the
subscriber negotiated abs-send-time (video), the header carries a one-byte-header
extension block (RFC 8285: 0xBEDE, one word) holding that one element: the
subscriber's receive-side estimator reads it and sends REMB (sfu/bandwidth.py).
"""

from __future__ import annotations

import struct

RTP_HEADER = struct.Struct("!BBHII")
RTP_HEADER_AST = struct.Struct("!BBHIIHHI")
SEQ_TS = struct.Struct("!HI")  # sequence number and timestamp, at offset 2
RTX_OSN = struct.Struct("!H")  # RFC 4588: the original sequence number, then its payload
_AST_ELEMENT = struct.Struct("!I")
_AST_AT = 16  # where the element starts in the packet
AST_UNITS = 262144  # abs-send-time counts seconds in 6.18 fixed point


def ast_element(extension_id: int | None) -> int | None:
    """The element's header ((id << 28) | (length - 1 = 2) << 24), or None."""
    return None if extension_id is None else (extension_id << 28) | (2 << 24)


def header_size(element: int | None) -> int:
    return 12 if element is None else 20


def rtp_header(marker_pt: int, seq: int, ts: int, ssrc: int, element: int | None) -> bytes:
    """A header; with abs-send-time its time is left 0 (stamped() when it goes)."""
    if element is None:
        return RTP_HEADER.pack(0x80, marker_pt, seq, ts, ssrc)
    return RTP_HEADER_AST.pack(0x90, marker_pt, seq, ts, ssrc, 0xBEDE, 1, element)


def stamped(data: bytes, element: int, now: float) -> bytes:
    """`data` (written by rtp_header with `element`) with abs-send-time `now`."""
    value = _AST_ELEMENT.pack(element | (int(now * AST_UNITS) & 0xFFFFFF))
    return data[:_AST_AT] + value + data[_AST_AT + 4 :]
