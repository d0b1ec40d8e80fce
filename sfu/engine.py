"""MediaEngine: the media plane of one node; it makes routers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCConfiguration

from sfu.aiortc_hooks import restrict_host_addresses
from sfu.audio_slots import SlotSettings
from sfu.ice import rtc_configuration
from sfu.media_ports import MediaPorts
from sfu.pacer import PacerSettings
from sfu.producer import KEYFRAME_INTERVAL
from sfu.retransmit import RetransmitSettings
from sfu.router import Router
from sfu.stats import ForwardingTotals, node_totals
from sfu.transport import TransportOptions
from sfu.turns import Turns


class MediaEngine:
    def __init__(
        self,
        listen_addresses: Sequence[str],
        announced_address: str | None = None,
        ice_servers: Sequence[dict[str, Any]] = (),
        keyframe_interval: float = KEYFRAME_INTERVAL,
        pacing: PacerSettings | None = None,
        retransmission: RetransmitSettings | None = None,
        audio_slots: SlotSettings | None = None,
        media_ports: MediaPorts | None = None,
        video_slots: int = 0,
        ice_servers_factory: Callable[[], Sequence[dict[str, Any]]] | None = None,
    ) -> None:
        """Media on `listen_addresses` only, using exactly `ice_servers` (STUN/TURN).

        A publisher is asked for a keyframe at most once per `keyframe_interval` s.
        With `audio_slots`, every router bounds each subscriber's audio (sfu/audio_slots.py).
        With `media_ports`, every ICE host socket is bound in that UDP range.
        With `video_slots`, each subscriber has at most that many video m-sections
        for unpinned producers (sfu/video_slots.py).
        `ice_servers_factory`, when given, is asked instead for each new peer connection
        (TURN credentials that expire are minted afresh)."""
        self.audio_slots = audio_slots
        self.ice_servers = [dict(s) for s in ice_servers]
        self._ice_servers_factory = ice_servers_factory
        self.media_ports = media_ports
        restrict_host_addresses(listen_addresses)
        self._options = TransportOptions(
            configuration_factory=self._configuration,
            listen_addresses=tuple(listen_addresses),
            announced_address=announced_address,
            keyframe_interval=keyframe_interval,
            pacing=pacing or PacerSettings(),
            retransmission=retransmission or RetransmitSettings(),
            media_ports=media_ports,
            video_slots=video_slots,
        )
        self.routers: dict[str, Router] = {}
        # What closed transports forwarded (see sfu/stats.py).
        self.retired = ForwardingTotals()
        self._closing: set[Router] = set()  # still counted live until their transports retire

    @property
    def turns(self) -> Turns:
        """The node's heavy synchronous steps, one per pass of the loop (sfu/turns.py):
        SDP work, and whatever the app does for a whole class at once."""
        return self._options.sdp_turns

    def _configuration(self) -> RTCConfiguration:
        if self._ice_servers_factory is not None:
            return rtc_configuration(self._ice_servers_factory())
        return rtc_configuration(self.ice_servers)

    def create_router(self, app_data: dict[str, Any] | None = None) -> Router:
        router = Router(self._options, app_data, self.retired)
        if self.audio_slots is not None:
            router.bound_audio(self.audio_slots)
        self.routers[router.id] = router
        return router

    def totals(self) -> ForwardingTotals:
        """Everything this node forwarded since it started (read at scrape time)."""
        return node_totals(
            (
                t
                for router in (*self.routers.values(), *self._closing)
                for t in router.transports.values()
            ),
            self.retired,
        )

    async def close_router(self, router: Router) -> None:
        self._closing.add(router)
        self.routers.pop(router.id, None)
        try:
            await router.close()
        finally:
            self._closing.discard(router)

    async def close(self) -> None:
        for router in list(self.routers.values()):
            await self.close_router(router)
