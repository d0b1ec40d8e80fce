"""Which VP8 temporal layers a consumer forwards: a thumbnail at half the frame rate.

Browsers encode each simulcast layer of a camera with temporal layers (Chromium:
three, TIDs 0, 2, 1, 2, ... in the payload descriptor, RFC 7741). No frame of a
lower temporal layer refers to one of a higher layer, so a consumer may leave out
the higher ones: up to TID 1, half the frames and about 60 % of the bits (the
shares libwebrtc gives its layers: 40 / 20 / 40 %). Nothing is decoded; the
decision reads the descriptor's TID, Y (layer sync) and S bits.

- A picture (one RTP timestamp) is forwarded or left out whole.
- Going down is at once, at the next picture. Going up to TID n waits for a
  layer-sync picture of TID n (it refers to the base layer only) while TID n-1
  is forwarded, or for a keyframe: a picture of TID n without Y may refer to
  earlier pictures of TID n the subscriber never got.
- What is left out leaves no trace for the subscriber: the consumer numbers the
  packets after it on (`StreamRewriter.skip`) and the picture ids too
  (`Vp8Continuity.drop_picture`): libwebrtc's VP8 reference finder holds back
  every frame after a gap in picture ids until the missing picture comes.

A stream without TIDs (aiortc's VP8, H.264) is forwarded whole.
"""

from __future__ import annotations

from sfu.keyframes import starts_keyframe
from sfu.producer import CachedPacket
from sfu.rtp_rewrite import seq_newer
from sfu.vp8_descriptor import NO_TID, START, SYNC, UNREAD, temporal_bits

# What to do with one packet: send it; leave out the first (newest) packet of a picture,
# a later packet of it, or a late one (older than the newest: just not sent).
KEEP, LEAVE_OUT_PICTURE, LEAVE_OUT, LEAVE_OUT_LATE = 0, 1, 2, 3
ALL_LAYERS = 3  # the highest TID RFC 7741 can carry


class TemporalFilter:
    """One consumer's temporal layers: `cap` (None: all) and the highest TID forwarded
    in a decodable way now (`level`)."""

    __slots__ = (
        "_cap",
        "_kept",
        "_newest_seq",
        "_picture_ts",
        "active",
        "highest",
        "level",
        "pictures_left_out",
    )

    def __init__(self) -> None:
        self._cap: int | None = None
        self.level = ALL_LAYERS
        self.highest = 0  # the highest TID seen
        # Whether packets must be looked at: a cap, or on the way back up to all (kept
        # as a plain attribute: the forwarding path reads it for every packet).
        self.active = False
        self._picture_ts: int | None = None
        self._kept = True
        self._newest_seq: int | None = None
        self.pictures_left_out = 0

    def reset(self) -> None:
        """The stream restarts from a keyframe (another layer or source, a resume)."""
        self._picture_ts = None
        self._newest_seq = None
        self.level = self._top
        self._update()

    @property
    def cap(self) -> int | None:
        """The highest TID forwarded (None: all)."""
        return self._cap

    @cap.setter
    def cap(self, cap: int | None) -> None:
        self._cap = cap
        self._update()

    def _update(self) -> None:
        self.active = self._cap is not None or self.level < self.highest

    @property
    def _top(self) -> int:
        return ALL_LAYERS if self._cap is None else self._cap

    def admit(self, entry: CachedPacket) -> int:
        """KEEP, or which kind of packet is left out (see the constants)."""
        bits = entry.temporal
        if bits == UNREAD:
            bits = entry.temporal = temporal_bits(entry.payload)
        if bits == NO_TID:
            return KEEP
        if bits & 3 > self.highest:
            self.highest = bits & 3
            self._update()
        newest = self._newest_seq is None or seq_newer(entry.seq, self._newest_seq)
        if newest:
            self._newest_seq = entry.seq
        if entry.ts != self._picture_ts and newest:
            self._picture_ts = entry.ts
            self._kept = self._decide(bits, entry)
            self._update()
            if not self._kept:
                self.pictures_left_out += 1
                return LEAVE_OUT_PICTURE
        elif entry.ts != self._picture_ts:  # late, of an earlier picture
            return KEEP if bits & 3 <= self.level else LEAVE_OUT_LATE
        if self._kept:
            return KEEP
        return LEAVE_OUT if newest else LEAVE_OUT_LATE

    def _decide(self, bits: int, entry: CachedPacket) -> bool:
        """Whether the picture this packet belongs to is forwarded (at its first packet)."""
        tid, top = bits & 3, self._top
        if self.level > top:
            self.level = top  # down: at once
        if tid <= self.level:
            if tid == 0 and self.level < top and bits & START:
                if starts_keyframe(entry.codec.mimeType, entry.payload):
                    self.level = top
            return True
        if tid == self.level + 1 and tid <= top and bits & SYNC and bits & START:
            self.level = tid  # up: a layer-sync picture refers to the base layer only
            return True
        return False
