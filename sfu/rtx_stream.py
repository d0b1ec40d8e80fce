"""The RTX stream (RFC 4588) of one outgoing stream: the subscriber's RTX payload types,
the stream's own sequence numbers, and the two kinds of packet it carries:
retransmissions (the original sequence number first in the payload, so the subscriber
and we can tell one from the original) and probes' padding (sfu/padding.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.padding import padding_packet
from sfu.rtp_header import RTX_OSN, rtp_header, stamped
from sfu.rtp_rewrite import HALF_SEQ, SEQ_MOD


class RtxStream:
    __slots__ = ("_seq", "payload_types")

    def __init__(self) -> None:
        # The subscriber's media payload type -> its RTX payload type (empty: no RTX).
        self.payload_types: dict[int, int] = {}
        self._seq = random.randrange(HALF_SEQ)

    def negotiate(self, codecs: Iterable[RTCRtpCodecParameters]) -> None:
        """The subscriber's codecs as negotiated: which of them have RTX."""
        self.payload_types = {
            apt: c.payloadType
            for c in codecs
            if c.mimeType.lower().endswith("/rtx")
            and isinstance(apt := c.parameters.get("apt"), int)
            and c.payloadType is not None
        }

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % SEQ_MOD
        return self._seq

    def retransmission(
        self, marker_pt: int, out_seq: int, ts: int, ssrc: int, element: int | None, payload: bytes
    ) -> bytes:
        """Packet `out_seq` again (`marker_pt`: its marker bit and the RTX payload type)."""
        header = rtp_header(marker_pt, self._next_seq(), ts, ssrc, element)
        return header + RTX_OSN.pack(out_seq) + payload

    def padding(self, ts: int, ssrc: int, element: int | None, size: int) -> bytes | None:
        """A padding-only packet of about `size` bytes, stamped with abs-send-time now if
        `element` (None: no RTX negotiated)."""
        if not self.payload_types:
            return None
        payload_type = next(iter(self.payload_types.values()))
        data = padding_packet(payload_type, self._next_seq(), ts, ssrc, element, size)
        return data if element is None else stamped(data, element, time.monotonic())
