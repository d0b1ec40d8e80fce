"""Sequence number and timestamp rewriting for one outgoing RTP stream.

A consumer sends under its own SSRC. Its source can change (another producer,
a pause and resume), and the receiver must still see one continuous stream:
sequence numbers go on from the last one sent and timestamps advance with the
wall-clock time that passed, whatever the new source's own numbering is.
Everything is modular: sequence numbers wrap at 2**16, timestamps at 2**32.
"""

from __future__ import annotations

import random
from collections import deque

from aiortc import clock

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
HALF_SEQ = 1 << 15
NTP_SECOND = 1 << 32
# How far back (in packets) a late packet of the current segment is still sent.
REORDER_WINDOW = 1024
# Runs between skipped packets whose numbering NACKs can still be mapped back (`skip`).
SKIPPED_RUNS = 64


def seq_newer(a: int, b: int) -> bool:
    """True when sequence number `a` comes after `b` (RFC 3550 serial arithmetic)."""
    return a != b and ((a - b) % SEQ_MOD) < HALF_SEQ


class StreamRewriter:
    """Maps (source seq, source timestamp) to the consumer's own numbering."""

    __slots__ = (
        "_base_in_seq",
        "_base_in_ts",
        "_last_out_seq",
        "_last_out_time",
        "_last_out_ts",
        "_pending_switch",
        "_run_sent",
        "_runs",
        "clock_rate",
        "seq_offset",
        "ts_offset",
    )

    def __init__(self, clock_rate: int, first_seq: int | None = None, first_ts: int | None = None):
        self.clock_rate = clock_rate
        # Start in the lower half, as browsers do, to stay clear of an early
        # wrap-around that trips some SRTP implementations.
        start_seq = random.randrange(HALF_SEQ) if first_seq is None else first_seq
        start_ts = random.randrange(TS_MOD) if first_ts is None else first_ts
        self._last_out_seq = (start_seq - 1) % SEQ_MOD
        self._last_out_ts = start_ts
        self._last_out_time: float | None = None
        self._base_in_seq = 0
        self._base_in_ts = 0
        self._pending_switch = True
        self.seq_offset = 0
        self.ts_offset = 0
        # Within a segment, packets not sent (`skip`) start a new run of numbering:
        # the earlier runs' (first out seq, offset), newest last, for NACKs.
        self._runs: deque[tuple[int, int]] = deque(maxlen=SKIPPED_RUNS)
        self._run_sent = False

    def switch(self) -> None:
        """The next packet starts a new source segment (new producer, resume)."""
        self._pending_switch = True

    def skip(self, in_seq: int) -> None:
        """The source's newest packet `in_seq` is not sent (a temporal layer not
        forwarded): the packets after it are numbered one less, so the receiver sees no
        gap. A late packet from before it is not sent either."""
        if self._pending_switch:
            return  # the next packet sent starts a segment of its own
        if self._run_sent:
            self._runs.append(((self._base_in_seq + self.seq_offset) % SEQ_MOD, self.seq_offset))
            self._run_sent = False
        self._base_in_seq = (in_seq + 1) % SEQ_MOD
        self.seq_offset = (self.seq_offset - 1) % SEQ_MOD

    def rewind(self, last_seq: int, last_ts: int) -> None:
        """What was numbered after `last_seq` was never sent (the pacer dropped it): the
        next packet starts a new segment right after `last_seq`, past `last_ts`."""
        self._last_out_seq = last_seq % SEQ_MOD
        self._last_out_ts = last_ts % TS_MOD
        self._pending_switch = True

    def rewrite(self, in_seq: int, in_ts: int, now: float) -> tuple[int, int] | None:
        """Return (out_seq, out_ts), or None for a packet older than the segment start."""
        if self._pending_switch:
            self._pending_switch = False
            self._base_in_seq = in_seq
            self._base_in_ts = in_ts
            out_seq = (self._last_out_seq + 1) % SEQ_MOD
            if self._last_out_time is None:
                out_ts = self._last_out_ts
            else:
                # Advance by the wall time that passed, at least one tick, so
                # the receiver's jitter buffer sees time move forward.
                elapsed = max(1, int((now - self._last_out_time) * self.clock_rate))
                out_ts = (self._last_out_ts + elapsed) % TS_MOD
            self.seq_offset = (out_seq - in_seq) % SEQ_MOD
            self.ts_offset = (out_ts - in_ts) % TS_MOD
            self._runs.clear()
        elif in_seq != self._base_in_seq and not seq_newer(in_seq, self._base_in_seq):
            return None
        elif (in_seq - self._base_in_seq) % SEQ_MOD > REORDER_WINDOW:
            # Drag the segment start along so serial comparisons stay valid
            # however long the segment runs.
            self._base_in_seq = (in_seq - REORDER_WINDOW) % SEQ_MOD
        out_seq = (in_seq + self.seq_offset) % SEQ_MOD
        out_ts = (in_ts + self.ts_offset) % TS_MOD
        self._run_sent = True
        if seq_newer(out_seq, self._last_out_seq) or self._last_out_time is None:
            self._last_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
        return out_seq, out_ts

    def source_seq(self, out_seq: int) -> int | None:
        """The source sequence number behind `out_seq` in the current segment (for NACKs)."""
        if seq_newer(out_seq, self._last_out_seq):
            return None
        in_seq = (out_seq - self.seq_offset) % SEQ_MOD
        if in_seq == self._base_in_seq or seq_newer(in_seq, self._base_in_seq):
            return in_seq
        for first_out, offset in reversed(self._runs):  # before a skipped packet
            if out_seq == first_out or seq_newer(out_seq, first_out):
                return (out_seq - offset) % SEQ_MOD
        return None

    def segment_age(self, in_ts: int) -> int:
        """How far (in clock ticks) `in_ts` is past the current segment's first packet
        (0 for the packet that will start a new one): what came from the source before
        that (a pause, another producer) is older."""
        if self._pending_switch:
            return 0
        return (in_ts - self._base_in_ts) % TS_MOD

    def out_timestamp(self, in_ts: int) -> int:
        return (in_ts + self.ts_offset) % TS_MOD

    @property
    def last_out_seq(self) -> int:
        """The highest sequence number sent so far (before the first packet: one before it)."""
        return self._last_out_seq

    @property
    def last_out_ts(self) -> int:
        return self._last_out_ts

    @property
    def last_out_time(self) -> float | None:
        return self._last_out_time

    def report_times(
        self, publisher_report: tuple[int, int, float] | None, now: float
    ) -> tuple[int, int]:
        """(NTP, RTP timestamp) of a sender report of this stream at `now`. From the
        publisher's own pair (its last SR: ntp, rtp, when received) where there is one:
        audio and video of one publisher then share its clock, which lip sync needs."""
        rate = self.clock_rate
        if publisher_report is not None:
            ntp, rtp_ts, received = publisher_report
            age = now - received
            ntp_time = ntp + int(age * NTP_SECOND)
            rtp_time = (self.out_timestamp(rtp_ts) + int(age * rate)) % TS_MOD
        else:
            last_time = self._last_out_time or now
            ntp_time = clock.current_ntp_time()
            rtp_time = (self._last_out_ts + int((now - last_time) * rate)) % TS_MOD
        return ntp_time & 0xFFFFFFFFFFFFFFFF, rtp_time
