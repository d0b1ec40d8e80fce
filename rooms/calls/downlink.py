"""One person's downlink in numbers: a `DownlinkSample` a second from the SFU's counters.

For each outgoing stream (consumer) of their subscriber connection the SFU
keeps what it sent and what the subscriber's RTCP said (`Consumer.link_counters`,
sfu/link.py). `DownlinkSampler` takes differences:

- loss, from the receiver reports: what the reports cover (extended highest
  sequence number) and what they count as lost, between two reports;
- *only the downlink's* loss: the SFU forwards a publisher's numbering one to
  one, so a packet that never reached the server (lost on the publisher's
  link) is a gap every subscriber reports as lost. The sequence numbers the
  SFU used that it never sent are counted and taken off, in proportion, so
  a pupil is not called weak for a classmate's bad uplink;
- packets NACKed per video packet sent, counting only what the server had
  (a packet it never had is refused "not cached": upstream loss again);
- keyframe requests (PLI/FIR);
- the longest round trip among the streams whose subscriber reported in the
  interval (a round trip not measured again is not a fresh one).

Held-back (paused) streams count for nothing: their decoders stall and ask,
which says nothing about the link. Nor does the first report of a stream given
back: packets lost on the link just before it was held back are seen as lost by
the receiver only when the next one comes, after it is given back (a climb on a
lifted link was undone by the loss of the keyframes dropped at the cut).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from rooms.link_quality import DownlinkSample
from sfu.consumer import Consumer
from sfu.rtp_rewrite import seq_newer
from sfu.subscriber_transport import SubscriberTransport

_EXTENDED_SEQ = 1 << 32  # receiver reports' extended highest sequence numbers
_SEQ = 1 << 16


class _Counters(NamedTuple):
    """One consumer's cumulative counters at one moment (a tuple: made ~2,000 times a
    second in a lesson of 30)."""

    sent: int  # media packets sent, retransmissions not included
    nacked: int  # sequence numbers NACKed that the server had
    keyframe_requests: int
    last_out_seq: int  # the highest sequence number used
    reports: int
    highest_sequence: int
    packets_lost: int
    rtt: float | None
    rtt_sample: float | None

    @classmethod
    def of(cls, consumer: Consumer) -> _Counters:
        link = consumer.link_counters
        return cls(
            link.packets_sent,
            link.nacked_packets - link.nacked_not_cached,
            link.plis_received,
            consumer.rewriter.last_out_seq,
            link.reports_received,
            link.highest_sequence,
            link.packets_lost,
            link.rtt,
            link.rtt_sample,
        )


@dataclass
class _Stream:
    at_sample: _Counters  # at the previous sample
    at_report: _Counters | None  # at the sample that first saw the latest report
    # While held back: the last number used before it was (`last_out_seq`).
    held_at_seq: int | None = None
    # Given back: reports count for nothing until one covers a number past this one.
    rebase_until: int | None = None


@dataclass
class _Totals:
    expected: int = 0
    lost: int = 0
    video_sent: int = 0
    nacked: int = 0
    keyframe_requests: int = 0
    video_streams: int = 0
    rtt: float | None = None
    rtt_samples: list[float] = field(default_factory=list)


def _report_window(before: _Counters, now: _Counters) -> tuple[int, int]:
    """(covered, lost on the downlink) between two receiver reports."""
    covered = (now.highest_sequence - before.highest_sequence) % _EXTENDED_SEQ
    if covered >= _EXTENDED_SEQ // 2:
        return 0, 0  # numbering went back (a report of an older state): skip
    lost = min(covered, max(0, now.packets_lost - before.packets_lost))
    used = (now.last_out_seq - before.last_out_seq) % _SEQ
    never_sent = max(0, used - (now.sent - before.sent))
    if used > 0 and never_sent > 0:
        lost = max(0, lost - round(covered * never_sent / used))
    return covered, lost


@dataclass
class DownlinkSampler:
    """The counters of one subscriber connection, turned into a sample each second."""

    sampled_at: float | None = None
    streams: dict[str, _Stream] = field(default_factory=dict)  # by consumer id

    def sample(self, subscriber: SubscriberTransport, now: float) -> DownlinkSample | None:
        """The differences since the last call (None the first time)."""
        previous, self.streams = self.streams, {}
        totals = _Totals()
        for consumer in subscriber.consumers:
            counters = _Counters.of(consumer)
            stream = previous.get(consumer.id)
            if stream is None:
                stream = _Stream(counters, counters if counters.reports else None)
            elif consumer.paused:
                stream.held_at_seq = counters.last_out_seq
            elif consumer.producer is not None:
                if stream.held_at_seq is not None:  # given back since the last sample
                    stream.rebase_until, stream.held_at_seq = stream.held_at_seq, None
                self._add(totals, consumer, stream, counters)
            if counters.reports and (
                stream.at_report is None or counters.reports > stream.at_report.reports
            ):
                stream.at_report = counters
            stream.at_sample = counters
            self.streams[consumer.id] = stream
        sampled_at, self.sampled_at = self.sampled_at, now
        if sampled_at is None:
            return None
        return DownlinkSample(
            seconds=now - sampled_at,
            expected=totals.expected,
            lost=totals.lost,
            video_sent=totals.video_sent,
            nacked=totals.nacked,
            keyframe_requests=totals.keyframe_requests,
            video_streams=totals.video_streams,
            rtt=totals.rtt,
            rtt_median=_median(totals.rtt_samples),
            rtt_peak=max(totals.rtt_samples, default=None),
        )

    @staticmethod
    def _add(totals: _Totals, consumer: Consumer, stream: _Stream, now: _Counters) -> None:
        before = stream.at_sample
        if consumer.kind == "video":
            totals.video_streams += 1
            totals.video_sent += now.sent - before.sent
            totals.nacked += now.nacked - before.nacked
            totals.keyframe_requests += now.keyframe_requests - before.keyframe_requests
        last = stream.at_report
        if last is not None and now.reports > last.reports:
            if stream.rebase_until is not None:
                # The first report past the numbers used before the stream was held back
                # tells what of them never arrived: loss from before the pause, which
                # the receiver only sees now. Not this window's.
                if seq_newer(now.highest_sequence & 0xFFFF, stream.rebase_until):
                    stream.rebase_until = None
            else:
                covered, lost = _report_window(last, now)
                totals.expected += covered
                totals.lost += lost
        if now.rtt is not None and now.reports > before.reports:
            totals.rtt = max(totals.rtt or 0.0, now.rtt)
            totals.rtt_samples.append(now.rtt_sample if now.rtt_sample is not None else now.rtt)


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None
