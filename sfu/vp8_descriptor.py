"""Continuous VP8 picture ids and TL0PICIDX across a change of simulcast layer.

Each simulcast layer numbers its pictures on its own (RFC 7741, 4.2: PictureID,
7 or 15 bits; TL0PICIDX, 8 bits). A subscriber's decoder that sees them jump
when the SFU changes layer may take the jump for lost frames and ask for a
keyframe, so after a change the numbers go on from the last ones sent: only
those bytes of the payload descriptor are rewritten, nothing is decoded.

    byte 0: X R N S R PID(3)      X: extended control bits follow
    byte 1: I L T K RSV(4)        I: PictureID, L: TL0PICIDX, T/K: TID/KEYIDX
    PictureID: M + 7 bits, or M + 15 bits when M is set
    TL0PICIDX: 8 bits
"""

from __future__ import annotations

from collections import deque

PICTURE_ID_MOD = 1 << 15
TL0_MOD = 1 << 8
# `temporal_bits`: not read yet; no TID in the descriptor. Otherwise TID (0-3) | SYNC |
# START (the first packet of the picture: S set, partition 0).
UNREAD, NO_TID = -2, -1
SYNC, START = 4, 8
# Changes of picture numbering a consumer remembers for resending (~4 s of pictures
# dropped every other frame at 30 fps).
RECENT_CHANGES = 64


def fields(payload: bytes) -> tuple[int, bool, int] | None:
    """(offset of the PictureID or -1, whether it is 15 bits, offset of TL0PICIDX or -1);
    None when the descriptor has neither (or is cut short)."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return None
    ext = payload[1]
    at = 2
    pid_at, wide = -1, False
    if ext & 0x80:
        if len(payload) <= at:
            return None
        pid_at, wide = at, bool(payload[at] & 0x80)
        at += 2 if wide else 1
    tl0_at = -1
    if ext & 0x40:
        if len(payload) <= at:
            return None
        tl0_at = at
    if pid_at < 0 and tl0_at < 0:
        return None
    if wide and len(payload) < pid_at + 2:
        return None
    return pid_at, wide, tl0_at


def temporal_bits(payload: bytes) -> int:
    """The packet's temporal layer (RFC 7741 TID), layer sync (Y) and picture start bits,
    or NO_TID."""
    if len(payload) < 2 or not payload[0] & 0x80 or not payload[1] & 0x20:
        return NO_TID
    ext, at = payload[1], 2
    if ext & 0x80:
        if len(payload) <= at:
            return NO_TID
        at += 2 if payload[at] & 0x80 else 1
    if ext & 0x40:
        at += 1
    if len(payload) <= at:
        return NO_TID
    bits = payload[at]
    start = START if payload[0] & 0x17 == 0x10 else 0
    return bits >> 6 | (SYNC if bits & 0x20 else 0) | start


def picture_id(payload: bytes, at: int, wide: bool) -> int:
    if wide:
        return ((payload[at] & 0x7F) << 8) | payload[at + 1]
    return payload[at] & 0x7F


def rewritten(payload: bytes, pid_delta: int, tl0_delta: int) -> bytes:
    """`payload` with its PictureID and TL0PICIDX moved on by these deltas (modulo)."""
    found = fields(payload)
    if found is None or (pid_delta == 0 and tl0_delta == 0):
        return payload
    return _rewritten(payload, found, pid_delta, tl0_delta)


def _rewritten(
    payload: bytes, found: tuple[int, bool, int], pid_delta: int, tl0_delta: int
) -> bytes:
    pid_at, wide, tl0_at = found
    end = max(pid_at + (2 if wide else 1), tl0_at + 1)
    head = bytearray(payload[:end])
    if pid_at >= 0:
        pid = (picture_id(payload, pid_at, wide) + pid_delta) % PICTURE_ID_MOD
        if wide:
            head[pid_at], head[pid_at + 1] = 0x80 | (pid >> 8), pid & 0xFF
        else:
            head[pid_at] = pid & 0x7F
    if tl0_at >= 0:
        head[tl0_at] = (payload[tl0_at] + tl0_delta) % TL0_MOD
    return bytes(head) + payload[end:]


class Vp8Continuity:
    """One consumer's picture numbering: continuous across `switch()`es and pictures it
    does not forward (`drop_picture()`)."""

    __slots__ = (
        "_base_delta",
        "_changes",
        "_last_pid",
        "_last_tl0",
        "_pending",
        "pid_delta",
        "tl0_delta",
    )

    def __init__(self) -> None:
        self._pending = False
        self._last_pid: int | None = None
        self._last_tl0: int | None = None
        self.pid_delta = 0
        self.tl0_delta = 0
        # (first source picture id, delta from it on), newest last: a resent packet
        # must carry the id its picture went out with.
        self._changes: deque[tuple[int, int]] = deque(maxlen=RECENT_CHANGES)
        self._base_delta = 0  # the delta before the oldest change kept

    def _changed(self, first_pid: int) -> None:
        if len(self._changes) == RECENT_CHANGES:
            self._base_delta = self._changes[0][1]
        self._changes.append((first_pid, self.pid_delta))

    def switch(self) -> None:
        """The next packet forwarded starts another layer (a keyframe)."""
        self._pending = True
        self._changes.clear()
        self._base_delta = self.pid_delta

    def drop_picture(self, payload: bytes) -> None:
        """The picture this packet starts is not forwarded: the ids after it move down by
        one (a receiver that sees a gap in picture ids waits for the missing picture)."""
        found = fields(payload)
        if found is None or found[0] < 0:
            return
        pid_at, wide, _ = found
        self.pid_delta = (self.pid_delta - 1) % PICTURE_ID_MOD
        self._changed(picture_id(payload, pid_at, wide) + 1)

    def forward(self, payload: bytes) -> bytes:
        """The payload to send in place of `payload`, the next packet forwarded."""
        found = fields(payload)
        if found is None:
            return payload
        pid_at, wide, tl0_at = found
        pid_mod = PICTURE_ID_MOD if wide else 1 << 7
        if self._pending:
            self._pending = False
            if pid_at >= 0 and self._last_pid is not None:
                in_pid = picture_id(payload, pid_at, wide)
                self.pid_delta = (self._last_pid + 1 - in_pid) % pid_mod
                self._changed(in_pid)
            if tl0_at >= 0 and self._last_tl0 is not None:
                self.tl0_delta = (self._last_tl0 + 1 - payload[tl0_at]) % TL0_MOD
        if pid_at >= 0:
            out = (picture_id(payload, pid_at, wide) + self.pid_delta) % pid_mod
            self._last_pid = _newer(out, self._last_pid, pid_mod)
        if tl0_at >= 0:
            out_tl0 = (payload[tl0_at] + self.tl0_delta) % TL0_MOD
            self._last_tl0 = _newer(out_tl0, self._last_tl0, TL0_MOD)
        if self.pid_delta == 0 and self.tl0_delta == 0:
            return payload
        return _rewritten(payload, found, self.pid_delta, self.tl0_delta)

    def resent(self, payload: bytes) -> bytes:
        """A packet forwarded before, to send again: with the ids it went out with."""
        found = fields(payload)
        if found is None:
            return payload
        pid_at, wide, _ = found
        pid_delta = self.pid_delta
        if pid_at >= 0:
            in_pid = picture_id(payload, pid_at, wide)
            mod = PICTURE_ID_MOD if wide else 1 << 7
            pid_delta = self._base_delta
            for first, delta in reversed(self._changes):
                if (in_pid - first) % mod < mod // 2:  # at or after `first`
                    pid_delta = delta
                    break
        return rewritten(payload, pid_delta, self.tl0_delta)  # a retransmission: rare


def _newer(value: int, last: int | None, mod: int) -> int:
    """`value` if it comes after `last` (serial arithmetic modulo `mod`), else `last`."""
    if last is None or 0 < (value - last) % mod < mod // 2:
        return value
    return last
