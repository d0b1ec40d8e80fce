"""How much a subscriber's downlink carries: one estimate per subscriber transport.

From the subscriber's REMB when it sends one, else from its receiver reports
(the two halves of Google Congestion Control on the receiving side):

- **Delay-based, estimated by the subscriber (REMB).** Every video packet we
  send carries abs-send-time (sfu/consumer.py stamps it when the packet goes to
  the socket); the subscriber's receive-side estimator (libwebrtc's, aiortc's)
  watches the delay between packets grow and sends REMB with the bitrate it
  thinks the link carries. It covers the packets that carry abs-send-time,
  i.e. video (aiortc offers the extension for video only), so the estimate is
  what the subscriber's *video* may take; audio is never limited by it.
- **Loss-based, from receiver reports**, for subscribers that send no REMB
  (a REMB older than `remb_fresh_for` no longer counts): the loss of the video
  streams pooled over about a second. Over 10 % the bound falls to itself
  times (1 - loss / 2) (the first time: to what was sent times that); under
  2 % it rises by 8 % a second, up to twice what is sent plus 500 kbit/s; in
  between it holds. Before the first loss over 10 % there is no such bound.
  With REMB it is not used: a browser's estimator already reacts to loss, and
  the reports also count what never left the server (the pacer's drops, the
  publisher's own losses), which would lower the bound for nothing.

`estimate_bps` is None while neither is known: a subscriber nobody knows
anything about yet is not limited (the pacer keeps its floor).

The SFU only measures; what to send within the estimate (which videos to hold
back) is decided in rooms/, which knows whose videos matter more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtcpReceiverInfo, unpack_remb_fci

from sfu.rtp_rewrite import seq_newer

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def abs_send_time_id(extensions: Sequence[RTCRtpHeaderExtensionParameters]) -> int | None:
    """The id of abs-send-time among negotiated header extensions (None: not negotiated)."""
    return next((e.id for e in extensions if e.uri == ABS_SEND_TIME_URI), None)


class SenderFeedback(Protocol):
    """What a ForwardingSender hands on of its subscriber's RTCP for the estimate."""

    def on_application_feedback(self, fci: bytes) -> None:
        """A PSFB "application layer feedback" (REMB, or another application's)."""
        ...

    def on_reports(self, kind: str, ssrc: int, reports: list[RtcpReceiverInfo]) -> None:
        """Report blocks of an RR/SR that reached the sender of `ssrc` (some may be
        about other streams: aiortc routes a compound report to every sender it names)."""
        ...

    def on_rtcp_packet(self) -> None:
        """Any RTCP packet of the subscriber reached one of its senders (counted)."""
        ...


@dataclass(frozen=True)
class EstimatorSettings:
    remb_fresh_for: float = 3.0  # an older REMB no longer bounds (browsers send 1-5 a second)
    loss_high: float = 0.10
    loss_low: float = 0.02
    increase_per_second: float = 0.08
    loss_window: float = 1.0  # report blocks pooled this long before the bound moves
    # The loss bound never rises above this many times what is sent (plus the slack):
    # rising further would promise what was never tried.
    loss_bound_headroom: float = 2.0
    loss_bound_slack_bps: float = 500_000
    min_bps: float = 64_000
    # The bound after heavy loss: the median of what the link delivered in this many of
    # the last windows with heavy loss.
    delivered_windows: int = 3
    # A window without loss raises the bound to at least this many times what was sent.
    clean_headroom: float = 1.2
    queue_cut: float = 0.15  # at most this share off the bound when the queue grows


@dataclass
class _StreamLoss:
    highest_sequence: int  # extended, as last reported
    covered: int = 0  # sequence numbers the reports covered in this window
    lost: float = 0.0  # of those, lost (fraction_lost x covered)
    # Given back after being held back (`on_resumed`): reports count for nothing until
    # one covers a number past this one (16 bits).
    rebase_until: int | None = None


class BandwidthEstimator:
    """A subscriber's downlink estimate from its REMB and its receiver reports.

    `sent_bps` returns what we send the subscriber's video now (the pacer's
    measurement), which the loss-based bound is taken from."""

    def __init__(
        self, sent_bps: Callable[[], float], settings: EstimatorSettings | None = None
    ) -> None:
        self.settings = settings or EstimatorSettings()
        self._sent_bps = sent_bps
        self.remb_bps: float | None = None
        self.remb_at: float | None = None
        self.rembs_received = 0
        # Every RTCP packet of the subscriber (rooms/calls/link_rest.py: moved or not).
        self.rtcp_packets = 0
        self.loss_bound_bps: float | None = None
        self.loss = 0.0  # pooled video loss of the last complete window
        self._streams: dict[int, _StreamLoss] = {}
        self._window_start: float | None = None
        self._delivered: list[float] = []  # in the last windows with heavy loss
        self._sent_sum = 0.0
        self._sent_samples = 0
        self._bound_at = 0.0

    # ------------------------------------------------------------------ input

    def on_remb(self, bitrate: int, now: float) -> None:
        """A REMB of the subscriber (bits per second)."""
        self.remb_bps = float(bitrate)
        self.remb_at = now
        self.rembs_received += 1

    def on_report(self, ssrc: int, fraction_lost: int, highest_sequence: int, now: float) -> None:
        """A report block about one of the subscriber's video streams (`fraction_lost`
        in 1/256, as RTCP carries it; `highest_sequence` extended)."""
        if self._window_start is None:
            self._window_start = self._bound_at = now
        elif now - self._window_start >= self.settings.loss_window:
            self._close_window(now)  # this report starts the next one
        self._sent_sum += self._sent_bps()  # what was sent over the window, sampled
        self._sent_samples += 1
        stream = self._streams.get(ssrc)
        if stream is None:
            self._streams[ssrc] = _StreamLoss(highest_sequence)
        else:
            covered = (highest_sequence - stream.highest_sequence) & 0xFFFFFFFF
            if covered < 0x80000000:  # not an older report arriving late
                stream.highest_sequence = highest_sequence
                if stream.rebase_until is not None:
                    if seq_newer(highest_sequence & 0xFFFF, stream.rebase_until):
                        stream.rebase_until = None  # past the gap: count from here
                    return
                stream.covered += covered
                stream.lost += covered * fraction_lost / 256

    def on_queue_growing(self) -> None:
        """The link's queue is growing (its round trip is, as rooms/ judges it): it
        carries no more than is sent now, whatever the bound had grown to, but one
        such judgement takes at most `queue_cut` off (what was sent in the pacer's
        last half second can be far below what the link carries)."""
        sent = max(self.settings.min_bps, self._sent_bps())
        bound = self.loss_bound_bps
        if bound is None:
            self.loss_bound_bps = sent
        elif sent < bound:
            self.loss_bound_bps = max(sent, bound * (1 - self.settings.queue_cut))

    def on_link_proven(self, bps: float) -> None:
        """A probe showed the link carries at least `bps` more than is sent (sfu/probe.py):
        what it delivered when it lost much no longer bounds it (the pacer follows the
        bound: held there, a climb's videos queued in the pacer and were dropped)."""
        bound = self.loss_bound_bps
        if bound is not None:
            self.loss_bound_bps = max(bound, self._sent_bps() + bps)
            self._delivered.clear()

    def on_resumed(self, ssrc: int, last_seq: int) -> None:
        """The stream `ssrc` is sent again after being held back, numbered on from
        `last_seq`: what of the numbers up to it never arrived (lost on the link as it
        was cut) the receiver reports only now; its reports count for nothing until one
        covers a number past `last_seq`."""
        stream = self._streams.get(ssrc)
        if stream is not None:
            stream.rebase_until = last_seq & 0xFFFF

    # ------------------------------------------------------------------ as SenderFeedback

    def on_application_feedback(self, fci: bytes, now: float | None = None) -> None:
        try:
            bitrate, _ = unpack_remb_fci(fci)
        except ValueError:
            return  # not REMB
        self.on_remb(bitrate, time.monotonic() if now is None else now)

    def on_rtcp_packet(self) -> None:
        self.rtcp_packets += 1

    def on_reports(
        self, kind: str, ssrc: int, reports: list[RtcpReceiverInfo], now: float | None = None
    ) -> None:
        if kind != "video":
            return  # the estimate is of video (the streams stamped with abs-send-time)
        now = time.monotonic() if now is None else now
        for report in reports:
            if report.ssrc == ssrc:
                self.on_report(ssrc, report.fraction_lost, report.highest_sequence, now)

    # ------------------------------------------------------------------ output

    def estimate_bps(self, now: float) -> float | None:
        """What the subscriber's video may take now (None: nothing known)."""
        remb = self.remb_bps
        if remb is not None and self.remb_at is not None:
            if now - self.remb_at > self.settings.remb_fresh_for:
                remb = None
        return self.loss_bound_bps if remb is None else remb

    def delivered_bps(self, now: float) -> float | None:
        """What the link's reports say it carries of the video (the loss bound), whether
        or not a REMB is fresh (None: no heavy loss seen yet)."""
        return self.loss_bound_bps

    # ------------------------------------------------------------------ the loss bound

    def _close_window(self, now: float) -> None:
        covered = sum(s.covered for s in self._streams.values())
        lost = sum(s.lost for s in self._streams.values())
        for stream in self._streams.values():
            stream.covered, stream.lost = 0, 0.0
        self._window_start = now
        sent = self._sent_sum / max(1, self._sent_samples)
        self._sent_sum, self._sent_samples = 0.0, 0
        if covered == 0:
            return
        self.loss = lost / covered
        self._update_bound(now, sent)

    def _update_bound(self, now: float, sent: float) -> None:
        """`sent`: what was sent over the window the loss is of."""
        settings = self.settings
        elapsed, self._bound_at = now - self._bound_at, now
        if self.loss > settings.loss_high:
            # A link that loses this much is full: what it delivered is what it carries.
            # The median of the last few such windows: reports lag what is sent, so
            # one window just after a cut shows the loss of before with the rate of after.
            self._delivered.append(sent * (1 - self.loss))
            del self._delivered[: -settings.delivered_windows]
            median = sorted(self._delivered)[len(self._delivered) // 2]
            self.loss_bound_bps = max(settings.min_bps, median)
        elif self.loss < settings.loss_low and self.loss_bound_bps is not None:
            # Carried without loss: the link has at least that, and may have more.
            raised = max(
                self.loss_bound_bps * (1 + settings.increase_per_second) ** elapsed,
                sent * settings.clean_headroom,
            )
            ceiling = settings.loss_bound_headroom * sent + settings.loss_bound_slack_bps
            self.loss_bound_bps = max(self.loss_bound_bps, min(raised, ceiling))
