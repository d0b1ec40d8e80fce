"""Which NACKed packets a subscriber gets again: pure decisions, no I/O.

A subscriber on a congested link loses packets and NACKs them, often many
times a second, each NACK listing everything still missing. Answering every
one of them multiplied what the server sent such a subscriber by up to 100
(issue 16). As mediasoup's RtpStreamSend and libwebrtc's RTPSender do, a
packet is resent only

- if it is not too old to be useful (MAX_AGE since the publisher's original
  arrived: the subscriber's jitter buffer has given up on it by then),
- at most once per round trip of that subscriber (a NACK sent before our
  retransmission could have arrived asks for the same loss again), and
- within a budget per subscriber: a token bucket in bytes filled at a share
  of what that subscriber demonstrably receives (what we sent it, without
  retransmissions, times 1 - its reported loss). BUDGET_SHARE is 25 %:
  recovering random loss of a few % needs a few %, and a link that loses more
  than a quarter is overloaded, which resending cannot fix (lowering what it
  receives can). With bandwidth estimation the share will be of the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reasons a retransmission is refused (the keys of LinkReport.retransmissions_refused).
TOO_OLD = "too_old"
WITHIN_RTT = "within_rtt"
OVER_BUDGET = "over_budget"
NOT_CACHED = "not_cached"  # the producer's cache no longer (or never) had it
BEFORE_KEYFRAME = "before_keyframe"  # older than the keyframe the stream restarted from

_RING = 1024  # resend times kept per stream, by sequence number (as the producer's cache)


@dataclass(frozen=True)
class RetransmitSettings:
    max_age: float = 1.0  # seconds since the original arrived from the publisher
    default_rtt: float = 0.1  # until the subscriber's reports give one
    min_rtt: float = 0.02  # a floor under a measured RTT (loopback measures ~0)
    max_rtt: float = 0.5  # and a ceiling: a packet may be asked again after this long
    budget_share: float = 0.25  # of the subscriber's delivery rate
    min_budget_bps: float = 64_000  # so the first NACKs of a new subscriber are answered
    burst_seconds: float = 0.5  # the bucket holds this much of its rate


class RetransmitBudget:
    """A token bucket in bytes, one per subscriber (shared by its streams)."""

    def __init__(self, settings: RetransmitSettings | None = None) -> None:
        self.settings = settings or RetransmitSettings()
        self._tokens = self._capacity(0.0)
        self._updated: float | None = None

    def _rate(self, delivery_bps: float) -> float:
        """Bytes per second the bucket fills at."""
        share = self.settings.budget_share * delivery_bps
        return max(share, self.settings.min_budget_bps) / 8

    def _capacity(self, delivery_bps: float) -> float:
        return max(self._rate(delivery_bps) * self.settings.burst_seconds, 1500.0)

    def take(self, size: int, now: float, delivery_bps: float) -> bool:
        """Spend `size` bytes if the bucket has them (after filling it up to `now`)."""
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(
                self._capacity(delivery_bps), self._tokens + elapsed * self._rate(delivery_bps)
            )
        self._updated = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True


class RetransmitLimiter:
    """Per outgoing stream: when each of its packets was last resent."""

    def __init__(self, budget: RetransmitBudget) -> None:
        self.budget = budget
        self._seq = [-1] * _RING
        self._resent_at = [0.0] * _RING

    def rtt(self, measured: float | None) -> float:
        settings = self.budget.settings
        if measured is None:
            return settings.default_rtt
        return min(max(measured, settings.min_rtt), settings.max_rtt)

    def refusal(
        self,
        seq: int,
        size: int,
        original_at: float,
        now: float,
        rtt: float | None,
        delivery_bps: float,
    ) -> str | None:
        """None when packet `seq` (`size` bytes on the wire) may be resent now, and it
        is then counted as resent; otherwise why not."""
        if now - original_at > self.budget.settings.max_age:
            return TOO_OLD
        slot = seq % _RING
        if self._seq[slot] == seq and now - self._resent_at[slot] < self.rtt(rtt):
            return WITHIN_RTT
        if not self.budget.take(size, now, delivery_bps):
            return OVER_BUDGET
        self._seq[slot] = seq
        self._resent_at[slot] = now
        return None
