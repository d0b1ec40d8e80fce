"""One person's downlink as the call judges it once a second (rooms/calls/weak_links.py):
the loss judge, the two plans (by loss, by the estimate), its round trips and probes,
what the person and the hosts were last told.

A link left at rest (`at_rest`) is not judged again until something moved
(rooms/calls/link_rest.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rooms.calls.downlink import DownlinkSampler
from rooms.calls.link_probes import LinkProbes
from rooms.hold_back import HoldPlanner
from rooms.layer_fit import LayerFit
from rooms.link_quality import LinkJudge, Quality
from rooms.queue_delay import CutDrain, QueueDelay


@dataclass
class SubscriberLink:
    """One person's downlink: the judge, the plan, audio only, what they were told."""

    judge: LinkJudge
    planner: HoldPlanner
    fit: LayerFit = field(default_factory=LayerFit)  # by the SFU's bandwidth estimate
    audio_only: bool = False
    sampler: DownlinkSampler = field(default_factory=DownlinkSampler)
    told: dict[str, Any] | None = None  # the last message the person got
    told_hosts: Quality = Quality.GOOD
    paced_drops: int = 0  # the pacer's count of dropped video at the last round
    queue: QueueDelay = field(default_factory=QueueDelay)  # its round trips
    drain: CutDrain = field(default_factory=CutDrain)  # whether the last cut emptied it
    probes: LinkProbes = field(default_factory=LinkProbes)  # before steps up
    # What the link's counters were when it was last judged and left at rest (None:
    # not at rest): while they stay so, judging again would change nothing.
    rest_key: tuple[object, ...] | None = None

    @property
    def held(self) -> list[str]:
        """What the link's loss and what its estimate hold back, least important first."""
        fit = self.fit.held
        return [*fit, *(producer for producer in self.planner.held if producer not in fit)]

    @property
    def quality(self) -> Quality:
        judged = self.judge.quality
        return Quality.WEAK if self.held and judged is Quality.GOOD else judged


def at_rest(link: SubscriberLink, congested: bool) -> bool:
    """Whether the link's plans, just judged, would step nowhere on a sample of nothing."""
    queue = link.queue
    return (
        link.judge.at_rest
        and not congested
        and not link.planner.held
        and not link.fit.held
        and not link.fit.caps
        and not (queue.building or queue.peaked or queue.rising or queue.run)
    )
