"""What a subscriber's RTCP says about its link, for one outgoing stream (a consumer).

RTT as RFC 3550 6.4.1 computes it: every sender report we send is remembered
by the middle 32 bits of its NTP timestamp ("LSR") and the monotonic time it
was built; a report block that echoes that LSR arrives DLSR (1/65536 s) after
the subscriber got it, so RTT = now - sent - DLSR. The NTP values are the
publisher's clock mapped to now (sfu.consumer), which does not matter: they
only identify our own reports.

`LinkStats` is the consumer's mutable record; `LinkReport` the read-only
snapshot others read (`Consumer.link`); `LinkCounters` the few cumulative
counts that rooms/ reads of every stream each second to decide that a
subscriber's link is weak (`Consumer.link_counters`, a tuple: cheap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from aiortc.rtp import RtcpReceiverInfo

# Our sender reports go out every 0.5-1.5 s; the subscriber echoes the latest it got.
_REMEMBERED_REPORTS = 8
# Smoothing of successive RTT samples (the weight of the previous estimate).
RTT_SMOOTHING = 0.75
# A probe's report (sfu/probe.py) is answered within this or not at all: until then the
# regular ones wait (the subscriber echoes only the latest it got).
PROBE_ANSWER_WITHIN = 2.0


@dataclass(frozen=True)
class LinkReport:
    """One outgoing stream as its subscriber sees it, and what we did about it."""

    rtt: float | None  # seconds, smoothed; None until a report echoes one of ours
    fraction_lost: float  # 0..1, in the subscriber's last report interval
    packets_lost: int  # cumulative, as the subscriber reports it
    highest_sequence: int  # extended highest sequence number received, as reported
    jitter: float  # seconds, the subscriber's interarrival jitter estimate
    reports_received: int  # report blocks about this stream
    last_report_at: float | None  # monotonic time of the last one
    packets_sent: int  # media packets, retransmissions not included
    bytes_sent: int  # their payload bytes
    nacks_received: int  # NACK messages
    nacked_packets: int  # sequence numbers they listed
    plis_received: int  # PLI/FIR messages (passed on or not)
    retransmitted: int  # packets resent
    retransmitted_bytes: int  # their size on the wire (RTP header included)
    retransmissions_refused: Mapping[str, int]  # by reason (sfu.retransmit)
    paced_drops: int  # video packets the pacer dropped (queue too long)
    held_for_keyframe: int  # video packets not sent while waiting for a keyframe


class LinkCounters(NamedTuple):
    """Cumulative counts of one outgoing stream, for readers that take differences."""

    packets_sent: int  # media packets, retransmissions not included
    reports_received: int
    highest_sequence: int  # extended, as last reported
    packets_lost: int  # cumulative, as last reported
    nacked_packets: int
    nacked_not_cached: int  # of those, packets the server never had (the publisher lost them)
    # PLI/FIR that say the link lost something: not those of a stream held back or
    # restarting from a keyframe (its decoder waits for the keyframe and asks meanwhile).
    plis_received: int
    rtt: float | None  # the last measured round trip, seconds (None: not yet)
    rtt_sample: float | None  # the last round trip measured, not smoothed


@dataclass
class LinkStats:
    clock_rate: int
    rtt: float | None = None
    rtt_sample: float | None = None  # the last one, not smoothed
    fraction_lost: float = 0.0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: float = 0.0
    reports_received: int = 0
    last_report_at: float | None = None
    nacks_received: int = 0
    nacked_packets: int = 0
    plis_received: int = 0
    plis_restarting: int = 0  # of those, while the stream was held back or awaited a keyframe
    retransmitted: int = 0
    retransmitted_bytes: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    paced_drops: int = 0
    # The last probe's report (sfu/probe.py): its LSR while unanswered, its round trip once
    # answered (None until then, or never).
    probe_lsr: int | None = None
    probe_sent_at: float = 0.0
    probe_rtt: float | None = None
    # LSR (middle 32 bits of the NTP timestamp) -> monotonic time the report was built.
    _sent_reports: dict[int, float] = field(default_factory=dict)

    def sender_report_sent(self, ntp_timestamp: int, now: float, probe: bool = False) -> None:
        lsr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self._sent_reports[lsr] = now
        while len(self._sent_reports) > _REMEMBERED_REPORTS:
            del self._sent_reports[next(iter(self._sent_reports))]
        if probe:
            self.probe_lsr, self.probe_sent_at, self.probe_rtt = lsr, now, None

    def probe_pending(self, now: float) -> bool:
        """A probe's report waits for its echo: no regular one may take its place."""
        return self.probe_lsr is not None and now - self.probe_sent_at < PROBE_ANSWER_WITHIN

    def report_received(self, report: RtcpReceiverInfo, now: float) -> None:
        """A report block about this stream (in an RR, or in an SR of the subscriber)."""
        self.reports_received += 1
        self.last_report_at = now
        self.fraction_lost = report.fraction_lost / 256
        self.packets_lost = report.packets_lost
        self.highest_sequence = report.highest_sequence
        self.jitter = report.jitter / self.clock_rate
        sent = self._sent_reports.get(report.lsr) if report.lsr else None
        if sent is None:
            return
        sample = now - sent - report.dlsr / 65536
        if sample < 0:
            return  # the subscriber's delay claim exceeds what passed: not a usable sample
        if report.lsr == self.probe_lsr:
            # The probe's own measure (the queue its padding built), not the link's usual;
            # forgotten, so that the next report echoing it again is no sample either.
            self.probe_lsr, self.probe_rtt = None, sample
            del self._sent_reports[report.lsr]
            return
        self.rtt_sample = sample
        if self.rtt is None:
            self.rtt = sample
        else:
            self.rtt = RTT_SMOOTHING * self.rtt + (1 - RTT_SMOOTHING) * sample

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def counters(self, packets_sent: int, not_cached: str) -> LinkCounters:
        return LinkCounters(
            packets_sent,
            self.reports_received,
            self.highest_sequence,
            self.packets_lost,
            self.nacked_packets,
            self.refused.get(not_cached, 0),
            self.plis_received - self.plis_restarting,
            self.rtt,
            self.rtt_sample,
        )

    def report(self, packets_sent: int, bytes_sent: int, held_for_keyframe: int) -> LinkReport:
        return LinkReport(
            rtt=self.rtt,
            fraction_lost=self.fraction_lost,
            packets_lost=self.packets_lost,
            highest_sequence=self.highest_sequence,
            jitter=self.jitter,
            reports_received=self.reports_received,
            last_report_at=self.last_report_at,
            packets_sent=packets_sent,
            bytes_sent=bytes_sent,
            nacks_received=self.nacks_received,
            nacked_packets=self.nacked_packets,
            plis_received=self.plis_received,
            retransmitted=self.retransmitted,
            retransmitted_bytes=self.retransmitted_bytes,
            retransmissions_refused=MappingProxyType(dict(self.refused)),
            paced_drops=self.paced_drops,
            held_for_keyframe=held_for_keyframe,
        )
