"""What one round's sample says a person's downlink carried, and whether it is congested.

Heavy loss is congestion at once, and what the link delivered (what the plan
forwards less the share its reports say was lost, with their undercount) is what the
plan may cut to (rooms/layer_fit.py `carried_bps`); so are the pacer's drops, a
queue that grows, and a queue a cut left full (rooms/queue_delay.py `CutDrain`: that
cut was not enough). What the loss says is also kept for the
probes (rooms/calls/link_probes.py `delivered_bps`): while the link is known short,
a climb within it needs no probe.
"""

from __future__ import annotations

from rooms.calls.subscriber_link import SubscriberLink
from rooms.layer_fit import FitVideo, LayerFit
from rooms.link_quality import DownlinkSample
from rooms.queue_delay import REPORTS_LAG
from sfu.subscriber_transport import SubscriberTransport

# Loss at least this share of what was sent: what the link carried (sent less lost) is
# what the estimate's plan may cut to at once (rooms/layer_fit.py `carried_bps`).
CARRIED_AFTER_LOSS = 0.1
# Of what the reports say arrived, taken for what the link carries: a cut too deep
# pauses a tile for a few seconds (steps up come back), one too shallow freezes the
# videos kept (0.85 left three 300 kbit/s videos on 1 Mbit/s in one run of two).
LOSS_UNDERCOUNT = 0.7
# While the link's queue grows, what it carries is taken for this share of what is
# forwarded (the plan then fits under it: rooms/layer_fit.py `carried_margin`).
QUEUE_CARRIED = 0.95
# A queue judged growing this many samples in a row holds back (one is enough just
# after a step up: rooms/queue_delay.py). Three: at load 8 this machine's round trips
# on a 20 Mbit/s link jumped to 46-62 ms for a second or two now and then.
QUEUE_SAMPLES = 3
# Loss this heavy in a sample is congestion at once (the judge waits for two samples).
HEAVY_LOSS = 0.25
# Just after a step up, NACKs for more than this share of the video sent undo it (loss
# the step brought on: the NACKs come at once, the reports' loss a second later).
PROBE_NACKS = 0.01


def measure(
    link: SubscriberLink,
    subscriber: SubscriberTransport,
    sample: DownlinkSample | None,
    videos: list[FitVideo],
    now: float,
    congested: bool,
) -> tuple[bool, float | None]:
    """Whether the link is congested, and what it was measured to carry (None: not
    measured): heavy loss (at once when a quarter or more: no need to wait for the
    judge), the pacer's drops, a growing queue, or, just after a step up, any loss."""
    carried = _carried(sample, videos, link.fit)
    if carried is not None:
        # With the reports' undercount too: a first second's loss of 14-38 % on 1 Mbit/s
        # put it at 1.2-1.6 Mbit/s, and a step within 0.7 of that froze the kept videos.
        link.probes.measured(carried, _reports_before_cut(link.fit, now))
    if carried is not None and sample is not None and (sample.loss or 0.0) >= HEAVY_LOSS:
        congested = True
    paced = _paced(subscriber, link)
    if paced is not None:  # the pacer could not send it all: that is congestion
        congested = True
        carried = paced if carried is None else min(carried, paced)
    queue = link.queue
    usual = queue.floor  # before this sample: a queue draining lowers it as it goes
    if sample is not None:
        queue.observe(sample.rtt_median, now, sample.rtt_peak)
    rtt = sample.rtt_median if sample is not None else None
    if link.drain.undrained(link.fit.cut_at, rtt, usual, now):
        # The last cut left the link's queue full: it was not enough (the plan takes one
        # step more). A first cut on a first report kept three videos on 1 Mbit/s now
        # and then; their queue stayed at 130-140 ms, and they froze.
        congested = True
        carried = _queued(link, videos, carried)
    probing = link.fit.probing(now)
    if probing and queue.rising:
        link.fit.doubt()  # no more steps up on top of this one for now
    lossy = sample is not None and sample.nacked > PROBE_NACKS * max(1, sample.video_sent)
    if (
        (queue.building and queue.run >= QUEUE_SAMPLES)
        or (probing and queue.peaked)
        or (probing and lossy)
    ):
        # The link's queue grows (a step up it cannot carry, before it loses
        # anything): back below what is forwarded, and no faster from the pacer.
        congested = True
        carried = _queued(link, videos, carried)
        subscriber.bandwidth.on_queue_growing()
    return congested, carried


def _queued(link: SubscriberLink, videos: list[FitVideo], carried: float | None) -> float:
    """What a queued link carries: `QUEUE_CARRIED` of what the plan forwards (or less,
    when the sample measured less)."""
    queued = QUEUE_CARRIED * sum(video.bps(link.fit.layer(video)) for video in videos)
    return queued if carried is None else min(carried, queued)


def _paced(subscriber: SubscriberTransport, link: SubscriberLink) -> float | None:
    """What the pacer sends of the video at most, when it had to drop some since the
    last round (its queue grew past its limit: more was forwarded than it may send)."""
    pacer = subscriber.pacer
    dropped, link.paced_drops = pacer.dropped_video - link.paced_drops, pacer.dropped_video
    if dropped <= 0 or pacer.estimate_bps is None:
        return None
    return pacer.pacing_bps


def _carried(sample: DownlinkSample | None, videos: list[FitVideo], fit: LayerFit) -> float | None:
    """What the link delivered of the videos the plan forwards, by the share of packets
    its reports say were lost, when that is a good share (else None: nothing measured
    to hold the plan to). The plan's own figures, not what the pacer sent: a pacer
    window is not the reports' interval. Times LOSS_UNDERCOUNT: a sample's reports cover
    part of a second that was mostly over the link (measured: 2.2 Mbit/s into 1 Mbit/s
    showed 45-60 % lost), and cutting to too little is undone in a few seconds, while
    too much freezes the videos kept."""
    loss = sample.loss if sample is not None else None
    if loss is None or loss < CARRIED_AFTER_LOSS:
        return None
    return sum(video.bps(fit.layer(video)) for video in videos) * (1 - loss) * LOSS_UNDERCOUNT


def _reports_before_cut(fit: LayerFit, now: float) -> bool:
    """Whether the sample's reports are mostly of what was sent before the last cut: it
    says the link carried too little of what is sent now (on 1.5 Mbit/s, 67 % lost of
    3.4 Mbit/s sent put the five videos kept, 0.6 Mbit/s, at 0.2 Mbit/s, and nothing
    climbed back in 45 s)."""
    return fit.cut_at is not None and now - fit.cut_at < REPORTS_LAG
