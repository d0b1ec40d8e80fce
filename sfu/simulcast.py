"""Which simulcast layer a packet belongs to: SSRCs learned from RID header extensions.

A browser sending simulcast announces rids, not SSRCs (RFC 8853). Each layer's
packets carry its rid (`rtp-stream-id`, RFC 8852) until the browser sees our
receiver reports for that SSRC, and its retransmissions (RTX) carry the rid they
repair (`repaired-rtp-stream-id`). The forwarding receiver hands every rid it
sees here; from then on a packet's SSRC alone says its layer.

Before that, the packets must reach the right receiver: aiortc routes an
unknown SSRC by payload type only, which fails when a camera and a screen share
on one connection have the same ones. `MidRtpRouter` (installed on our
publishers' connections by sfu/aiortc_hooks.py) routes it by its MID first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import RtpPacket


class RidDemux:
    """SSRC -> layer index for one simulcast m-section (layer order: the offer's rids)."""

    __slots__ = ("_index", "_layer_by_ssrc", "_repaired", "rids", "ssrc_by_layer")

    def __init__(self, rids: Sequence[str]) -> None:
        self.rids = tuple(rids)
        self._index = {rid: i for i, rid in enumerate(self.rids)}
        self._layer_by_ssrc: dict[int, int] = {}
        self.ssrc_by_layer: list[int | None] = [None] * len(self.rids)
        self._repaired: dict[int, int] = {}  # RTX SSRC -> the layer it repairs

    def learn(self, ssrc: int, rid: str | None, repaired_rid: str | None) -> None:
        """A packet of `ssrc` carried these RID header extensions (None: absent)."""
        if rid is not None:
            layer = self._index.get(rid)
            if layer is not None and self.ssrc_by_layer[layer] != ssrc:
                old = self.ssrc_by_layer[layer]
                if old is not None:  # the browser restarted that layer under a new SSRC
                    self._layer_by_ssrc.pop(old, None)
                self.ssrc_by_layer[layer] = ssrc
                self._layer_by_ssrc[ssrc] = layer
        if repaired_rid is not None:
            layer = self._index.get(repaired_rid)
            if layer is not None:
                self._repaired[ssrc] = layer

    def layer_of(self, ssrc: int) -> int | None:
        """The layer of a media SSRC (None: no rid seen for it yet)."""
        return self._layer_by_ssrc.get(ssrc)

    def repaired_ssrc(self, rtx_ssrc: int) -> int | None:
        """The media SSRC that an RTX SSRC repairs (None: unknown yet)."""
        layer = self._repaired.get(rtx_ssrc)
        return self.ssrc_by_layer[layer] if layer is not None else None


class MidRtpRouter(RtpRouter):
    """aiortc's RTP router, demultiplexing a new SSRC by its MID header extension
    first (RFC 8843, 9.2), then as aiortc does (SSRC, payload type)."""

    def route_rtp(self, packet: RtpPacket) -> Any:
        mid = packet.extensions.mid
        if mid is not None and packet.ssrc not in self.ssrc_table:
            receiver = self.mid_table.get(mid)
            if receiver is not None:
                self.ssrc_table[packet.ssrc] = receiver
        return super().route_rtp(packet)
