"""Media back after a broken path: a person's publisher or subscriber connection
replaced by a new one while the other keeps running (docs/protocol.md
"ice_restart", docs/architecture.md "ICE restart").

aiortc cannot restart ICE on a connection (see the architecture), so the
"restart" is a new transport: for the publisher, the page's new offer makes
new producers and every other subscriber's consumer switches to the new one
of the same source in place (same m-section, same SSRC, from the next
keyframe); for the subscriber, a new transport is subscribed to the room
again and the server offers it afresh.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rooms.calls.core import SOURCES_BY_KIND, CallCore
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant
from sfu.producer import Producer
from sfu.transport import SdpError

logger = logging.getLogger(__name__)

# One restart of a connection per this many seconds per person: a page that
# loops on a broken network must not make the server build connections in a loop.
MIN_INTERVAL = 2.0


class IceRestarts:
    def __init__(self, core: CallCore) -> None:
        self.core = core
        self._last: dict[tuple[str, str], float] = {}
        self.count = 0

    def _allow(self, participant: Participant, connection: str) -> None:
        key = (participant.id, connection)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < MIN_INTERVAL:
            wait = f"at most every {MIN_INTERVAL:g} s"
            raise CallError("rate_limited", f"restart the {connection} {wait}")
        self._last[key] = now
        if len(self._last) > 4 * len(self.core.participants) + 64:  # people who left
            self._last = {k: v for k, v in self._last.items() if k[0] in self.core.participants}

    async def restart_publisher(
        self, participant: Participant, sdp: str, sources: dict[str, str]
    ) -> str:
        """A new publisher connection from the page's offer; return our answer."""
        self.core.require_admitted(participant)
        old = participant.publisher
        if old is None:
            raise CallError("no_connection", "nothing to restart: publish first")
        self._allow(participant, "publisher")
        before = {p.app_data.get("source"): p for p in old.producers.values() if not p.closed}
        if "screen" in sources.values() and "screen" not in before:
            if not (await self.core.permissions_of(participant)).screen:
                raise CallError("not_permitted", "you may not share your screen in this call")
        router = self.core.router_of(participant.room)
        new = router.create_publisher_transport()
        app_data = {m: {"participant_id": participant.id, "source": s} for m, s in sources.items()}
        try:
            answer, producers = await new.handle_offer(sdp, app_data)
        except SdpError:
            await router.close_transport(new)
            raise
        logger.info(
            "%s: publisher connection replaced (was %s)", participant.id, old.connection_state
        )
        self.count += 1
        participant.publisher = new
        participant.producers = {}
        for producer in producers:
            source = _source_of(producer)
            participant.producers[source] = producer
            previous = before.get(source)
            if previous is not None:
                router.switch_producer(previous, producer)
            else:
                for other in self.core.in_room(participant.room):
                    if other is not participant:
                        self.core.forward(router, other, producer)
        await router.close_transport(old)  # whatever still forwarded the old producers stops
        await self.core.apply_media(participant)
        self.core.sync_recording()
        return answer

    async def restart_subscriber(self, participant: Participant, reply: dict[str, Any]) -> None:
        """A new subscriber connection: `reply` goes out first, then its first offer."""
        self.core.require_admitted(participant)
        old = participant.subscriber
        if old is None:
            raise CallError("no_connection", "no subscriber connection to restart")
        self._allow(participant, "subscriber")
        router = self.core.router_of(participant.room)
        logger.info(
            "%s: subscriber connection replaced (was %s)", participant.id, old.connection_state
        )
        self.count += 1
        participant.pending_offer = None
        await router.close_transport(old)
        new = router.create_subscriber_transport(
            lambda sdp, tracks: self.core.send_subscribe_offer(participant, sdp, tracks)
        )
        new.hold(old.held)
        participant.subscriber = new
        # Before any offer of the new connection: the page knows the next offer is for it.
        await participant.send(reply)
        self.core.subscribe_in_room(participant)


def _source_of(producer: Producer) -> str:
    source = producer.app_data.get("source")
    if source not in SOURCES_BY_KIND[producer.kind]:
        source = producer.app_data["source"] = SOURCES_BY_KIND[producer.kind][0]
    return str(source)
