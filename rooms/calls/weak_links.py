"""Weak links: every person's downlink judged once a second, and what follows from it.

Besides the judge of loss below, the SFU's bandwidth estimate of each person's
link (sfu/bandwidth.py: their REMB, else their reports' loss) is compared with
the bitrates of the videos they get (rooms/calls/video_rates.py, per simulcast
layer): their `LayerFit` (rooms/layer_fit.py) steps the least important ones down
a layer, then holds them back, while the sum does not fit, and steps them back
up one at a time, with hold times. The layers it allows cap the ones the page's
tile sizes ask for (rooms/calls/track_views.py).

Once a second, for each person in the call, `WeakLinks` takes a sample of
their subscriber connection (rooms/calls/downlink.py: loss on their link
from their receiver reports, NACKs answered, keyframe requests, per packet
sent) and lets their `LinkJudge` (rooms/link_quality.py) decide "good" or
"weak". While
weak, their `HoldPlanner` (rooms/hold_back.py) holds back their least
important videos one at a time (pupils' cameras, then hosts' cameras, screen
shares last; audio never) and gives them back one at a time once the link is
clean. A person may also choose "audio only": no video at all is forwarded
to them until they turn it off.

Who is told (docs/protocol.md "connection_quality"): the person, with what is
held back for them and whether they chose audio only, whenever any of that
changes; the hosts, with the quality only, when it changes (and a host who
joins or becomes one, of everyone not "good"). Nobody else.

The person is "weak" while the judge says so *or* anything is held back for
them: a link that is clean only because it gets less is still weak, and the
sign does not flap while videos come back one by one.

A link left at rest is not judged again until something moved
(rooms/calls/link_rest.py): in a lesson where nothing is sent the round costs
next to nothing; what the person's page shows still applies every round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from rooms.calls.core import CallCore
from rooms.calls.link_measure import measure
from rooms.calls.link_messages import described, levels, own_message
from rooms.calls.link_rest import MediaMoves, link_moves
from rooms.calls.participant import Participant, safe_send
from rooms.calls.subscriber_link import SubscriberLink, at_rest
from rooms.calls.ticker import CallTicker
from rooms.calls.track_views import TrackViews
from rooms.calls.video_rates import VideoRates
from rooms.hold_back import HoldPlanner, HoldSettings
from rooms.layer_fit import FitSettings, FitVideo, LayerFit
from rooms.link_quality import LinkJudge, Quality, QualityThresholds
from sfu.subscriber_transport import SubscriberTransport

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
# The bandwidth estimate holds videos back only while the link's reports have been
# weak this long (rooms/link_quality.py): a receiver short of CPU sends a low REMB
# on a link that is fine (measured: Chromium, two videos held back at 50 Mbit/s on
# a saturated machine; aiortc, 24 kbit/s for a loopback stream of some 100).
CONGESTED_AFTER = 1.0
# Least important first: what a weak link stops getting first.
RANK_PUPIL_CAMERA, RANK_HOST_CAMERA, RANK_SCREEN = 0, 1, 2


class WeakLinks:
    def __init__(
        self,
        call: CallCore,
        thresholds: QualityThresholds | None = None,
        hold: HoldSettings | None = None,
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        self.call = call
        self.thresholds = thresholds or QualityThresholds()
        self.hold = hold or HoldSettings()
        self.fit = FitSettings()
        self.rates = VideoRates()  # of every video forwarded, measured each round
        self.interval = interval
        self.links: dict[str, SubscriberLink] = {}  # by participant id
        # What each page does not show, and "save data" (rooms/calls/track_views.py):
        # held back too, through the one hold set per person that this class owns.
        self.views: TrackViews | None = None
        self._media = MediaMoves()  # whether anything reached the call since a round
        self._ticker = CallTicker(call, interval, self.sample_all, "judging the links")

    # ------------------------------------------------------------------ the watch

    def watch(self) -> None:
        """Sample once a second while anybody is in the call (called on every entry)."""
        self._ticker.watch()

    async def stop(self) -> None:
        await self._ticker.stop()

    async def sample_all(self, now: float) -> None:
        """One round: judge each person's link, hold back or give back video, tell."""
        participants = self.call.participants
        for gone in set(self.links) - set(participants):
            del self.links[gone]
        producers = [p for person in participants.values() for p in person.producers.values()]
        self.rates.update(producers, now)
        self._media.update(producers)
        for participant in list(participants.values()):
            if participants.get(participant.id) is not participant:
                continue  # left while the round went on
            subscriber = participant.subscriber
            if subscriber is not None and await self._judge(participant, subscriber, now):
                # Forwarding goes on between people, not after all of them (a link
                # passed over at rest costs too little to yield for).
                await asyncio.sleep(0)

    async def _judge(
        self, participant: Participant, subscriber: SubscriberTransport, now: float
    ) -> bool:
        """Judge the person's link (False: passed over, at rest: rooms/calls/link_rest.py)."""
        link = self._link(participant)
        if link.rest_key is not None and link.rest_key == self._rest_key(subscriber):
            # Nothing moved since a judgement that left the link at rest: the same
            # sample of nothing, the same plans. What its page shows still applies.
            link.sampler.sampled_at = now
            self._apply(link, subscriber, participant)
            await self._tell(participant, link)
            return False
        sample = link.sampler.sample(subscriber, now)
        congested = False
        estimate = subscriber.bandwidth.estimate_bps(now)
        if sample is not None:
            link.judge.observe(sample, now)
            logger.debug(
                "%s %s: %s -> %s, estimate %s, held %s",
                self.call.id,
                participant.id,
                sample,
                link.judge.quality.value,
                estimate,
                (len(link.planner.held), len(link.fit.held)),
            )
        if not link.audio_only:
            # Videos withheld by choice are neither held back nor given back here.
            withheld = self._withheld(participant)
            sending = self._video_order(participant, subscriber, True, withheld)
            present = self._video_order(participant, subscriber, False, withheld)
            weak_for, clean_for = link.judge.weak_for(now), link.judge.clean_for(now)
            link.planner.step(now, weak_for, clean_for, sending, present=present)
            videos = self._fit_videos(participant, subscriber, sending, now)
            congested, carried = measure(
                link, subscriber, sample, videos, now, weak_for >= CONGESTED_AFTER
            )
            probes, fit = link.probes, link.fit
            probe_first = probes.before_step(fit, link.queue, subscriber, now)
            measured = probes.delivered_bps
            fit.step(
                now, estimate, videos, present, congested, clean_for, carried, probe_first, measured
            )
            probes.start(fit, subscriber, link.queue, now)
            # Paced by the estimate only while the link is known to be short: a
            # receiver short of CPU says far too little (see CONGESTED_AFTER).
            subscriber.pace_by_estimate(
                congested or bool(link.held) or link.judge.quality is not Quality.GOOD
            )
        self._apply(link, subscriber, participant)
        link.rest_key = self._rest_key(subscriber) if at_rest(link, congested) else None
        await self._tell(participant, link)
        return True

    def _rest_key(self, subscriber: SubscriberTransport) -> tuple[object, ...]:
        return (self._media.version, *link_moves(subscriber))

    async def refresh(self, participant: Participant, answer: bool = False) -> None:
        """The person's views or "save data" changed: hold back accordingly, tell."""
        if participant.subscriber is None:
            return
        link = self._link(participant)
        self._apply(link, participant.subscriber, participant)
        await self._tell(participant, link, answer)
        self.watch()

    def _fit_videos(
        self,
        participant: Participant,
        subscriber: SubscriberTransport,
        order: list[str],
        now: float,
    ) -> list[FitVideo]:
        """`order`'s videos with what each layer costs and the layer its tile wants."""
        producers = {c.producer.id: c.producer for c in subscriber.consumers if c.producer}
        views = self.views
        wanted = views.wanted_layers(participant) if views is not None else {}
        share = views.rate_shares(participant) if views is not None else {}
        return [
            FitVideo(
                pid,
                tuple(bps * share.get(pid, 1.0) for bps in self.rates.layer_bps(producer, now)),
                wanted.get(pid, producer.layer_count - 1),
            )
            for pid in order
            if (producer := producers.get(pid)) is not None
        ]

    def _withheld(self, participant: Participant, caps: dict[str, int] | None = None) -> set[str]:
        if self.views is None:
            return set()
        self.views.apply_layers(participant, caps)
        return self.views.hidden(participant) | self.views.saved(participant)

    def _link(self, participant: Participant) -> SubscriberLink:
        link = self.links.get(participant.id)
        if link is None:
            link = SubscriberLink(
                LinkJudge(self.thresholds), HoldPlanner(self.hold), LayerFit(self.fit)
            )
            # Nobody is told they are fine until something was otherwise.
            link.told = own_message(participant, link, [])
            self.links[participant.id] = link
        return link

    # ------------------------------------------------------------------ holding back

    def _video_order(
        self,
        participant: Participant,
        subscriber: SubscriberTransport,
        active_only: bool = False,
        leave_out: Collection[str] = (),
    ) -> list[str]:
        """The videos forwarded to this subscriber, least important first (producer ids).

        active_only: without cameras that are off (holding them back saves nothing)."""
        ranked = []
        spotlit = self.views.spotlit(participant.room) if self.views is not None else None
        for index, consumer in enumerate(subscriber.consumers):
            producer = consumer.producer
            if producer is None or consumer.kind != "video" or (active_only and producer.paused):
                continue
            if producer.id in leave_out:
                continue
            owner = self.call.participants.get(producer.app_data.get("participant_id", ""))
            if producer.app_data.get("source") == "screen":
                rank = RANK_SCREEN
            else:
                host = owner is not None and (owner.host or owner.id == spotlit)
                rank = RANK_HOST_CAMERA if host else RANK_PUPIL_CAMERA
            ranked.append((rank, index, producer.id))
        return [producer_id for _, _, producer_id in sorted(ranked)]

    def _apply(
        self, link: SubscriberLink, subscriber: SubscriberTransport, participant: Participant
    ) -> None:
        if link.audio_only:
            held = set(self._video_order(participant, subscriber))
        else:
            held = set(link.held)
        held |= self._withheld(participant, link.fit.caps)
        if held != subscriber.held:
            subscriber.hold(held)

    async def set_audio_only(self, participant: Participant, enabled: bool) -> None:
        """The person chose (or left) "audio only": no video is forwarded to them."""
        self.call.require_admitted(participant)
        subscriber = participant.subscriber
        if subscriber is None:
            return
        link = self._link(participant)
        if enabled:
            link.planner.release_all()  # while on audio only, its own plans have nothing to do
            link.fit.release_all()
        elif link.audio_only and link.judge.quality is not Quality.GOOD:
            # Back from audio only on a weak link: the videos come back one by one.
            sending = self._video_order(participant, subscriber, active_only=True)
            link.planner.hold_all(sending, time.monotonic())
        link.audio_only = enabled
        self._apply(link, subscriber, participant)
        await self._tell(participant, link, answer=True)
        self.watch()

    # ------------------------------------------------------------------ telling

    async def _tell(
        self, participant: Participant, link: SubscriberLink, answer: bool = False
    ) -> None:
        """Tell the person what changed (always, with `answer`), and the hosts a new quality."""
        subscriber = participant.subscriber
        paused = described(subscriber, self._paused(link, participant)) if subscriber else []
        message = own_message(participant, link, paused, self._save_data(participant))
        if answer or message != link.told:
            link.told = message
            await safe_send(participant, message)
        quality = link.quality
        if quality is not link.told_hosts:
            link.told_hosts = quality
            brief = {"type": "connection_quality", "participant_id": participant.id}
            hosts = [p for p in self.call.participants.values() if p.host and p is not participant]
            await asyncio.gather(*(safe_send(host, {**brief, **levels(quality)}) for host in hosts))

    def _paused(self, link: SubscriberLink, participant: Participant) -> set[str]:
        """What the person is told is held back: not the videos their page hides."""
        subscriber = participant.subscriber
        if subscriber is None:
            return set()
        if link.audio_only:
            return set(subscriber.held)
        saved = self.views.saved(participant) if self.views is not None else set()
        return (set(link.held) | saved) & subscriber.held

    def _save_data(self, participant: Participant) -> str:
        return self.views.save_data(participant) if self.views is not None else "off"

    async def tell_host(self, host: Participant) -> None:
        """A host who just joined (or became one) learns who is not "good" now."""
        for participant_id, link in self.links.items():
            if participant_id != host.id and link.told_hosts is not Quality.GOOD:
                await safe_send(
                    host,
                    {
                        "type": "connection_quality",
                        "participant_id": participant_id,
                        **levels(link.told_hosts),
                    },
                )
