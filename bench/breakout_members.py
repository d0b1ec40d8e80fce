"""The breakout bench's participants: each bot, its room, and what it received after the open."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from bench.bot import Bot
from bench.breakout_media import AMBIGUOUS, Switch


@dataclass
class Offer:
    started: float  # the bot began handling it (it arrived)
    answered: float  # the answer was sent
    tracks: frozenset[tuple[str, str]]  # (participant id, kind) it labels
    m_sections: int
    sdp_bytes: int


class BreakoutBot(Bot):
    """A counting bot that timestamps its offers and breakout notices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offers: list[Offer] = []
        self.rooms_told: list[tuple[float, str | None, bool]] = []  # (time, room, opened)

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "breakout":
            self.rooms_told.append(
                (time.monotonic(), message.get("room"), bool(message["state"]["opened"]))
            )
        await super()._on_message(message)

    def _make_counter(self, mid: str) -> Callable[[RtpPacket, RTCRtpCodecParameters], Any]:
        # The base counter ignores packets on an m-section the latest offer does not
        # label; the bench must see those too (as labelled by nobody).
        count = super()._make_counter(mid)

        async def observe(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if self.track_info.get(mid) is None and self.on_packet is not None:
                self.on_packet("", packet, time.monotonic())
            else:
                await count(packet, codec)

        return observe

    async def _answer(self, message: dict[str, Any]) -> None:
        started = time.monotonic()
        await super()._answer(message)
        sdp = message["sdp"]
        self.offers.append(
            Offer(
                started,
                time.monotonic(),
                # An audio slot names nobody (docs/protocol.md "Audio slots").
                frozenset(
                    (t["participant_id"], t["kind"])
                    for t in message["tracks"].values()
                    if t.get("participant_id")
                ),
                sdp.count("\nm=") + sdp.startswith("m="),
                len(sdp),
            )
        )


@dataclass
class Ledger:
    """Shared by all bots: who sent which payload when, and packets' transit times."""

    registry: dict[int, tuple[str, float]] = field(default_factory=dict)
    warm_from: float | None = None  # transit is recorded from here (the warm-up) on
    transit_warm: list[float] = field(default_factory=list)  # before the open
    transit_after: list[float] = field(default_factory=list)  # after it


@dataclass
class Member:
    """One participant: its bot, its room, and what it received after the open."""

    user_id: str
    room: str | None  # None: the host, in the main room
    kinds: tuple[str, ...]  # what it publishes
    ledger: Ledger
    bot: BreakoutBot | None = None
    roommates: frozenset[str] = frozenset()  # participant ids in its room, itself excluded
    publishing_roommates: frozenset[str] = frozenset()
    expected_tracks: frozenset[tuple[str, str]] = frozenset()
    opened_at: float | None = None  # set at the open: from then on packets are examined
    first_fresh: dict[str, float] = field(default_factory=dict)
    outsider_packets: int = 0
    outsiders: set[str] = field(default_factory=set)
    last_outsider: float | None = None
    outsider_sent: list[float] = field(default_factory=list)  # when outsiders sent them
    mislabeled: int = 0
    last_mislabel: float | None = None
    ambiguous: int = 0
    unattributed: int = 0
    received: int = 0
    switch: Switch | None = None
    told: float | None = None  # when the bot heard that the rooms were open
    observing: bool = True  # off at the end of observation (leaving is not measured)
    camera_on: bool = False  # publishes a camera at its full rate in the main room
    warm_bytes: int = 0  # RTP payload bytes received during the warm-up (main room)
    closed_at: float | None = None  # the rooms were closed (bench/breakout_close.py)
    back_fresh: dict[str, float] = field(default_factory=dict)  # sender -> first after it

    @property
    def id(self) -> str:
        assert self.bot is not None
        return self.bot.id

    def on_packet(self, label: str, packet: RtpPacket, now: float) -> None:
        if self.closed_at is not None:
            self._after_close(packet, now)
            return
        if not self.observing:
            return
        ledger, opened = self.ledger, self.opened_at
        if opened is None:
            if ledger.warm_from is not None:
                self.warm_bytes += len(packet.payload)
                info = ledger.registry.get(hash(packet.payload))
                if info is not None and info is not AMBIGUOUS:
                    ledger.transit_warm.append(now - info[1])
            return
        self.received += 1
        info = ledger.registry.get(hash(packet.payload))
        if info is None:
            self.unattributed += 1
            return
        if info is AMBIGUOUS:
            self.ambiguous += 1
            return
        sender, sent_at = info
        ledger.transit_after.append(now - sent_at)
        if sender in self.roommates:
            if sender not in self.first_fresh:
                told = self.told
                if told is None:
                    told = self.told = self.told_at(opened)
                # Sent after this bot heard of its room, so after the server moved everybody:
                # the room's router forwarded it.
                if told is not None and sent_at > told:
                    self.first_fresh[sender] = now
        else:
            self.outsider_packets += 1
            self.outsiders.add(sender)
            self.last_outsider = now
            self.outsider_sent.append(sent_at)
        # An audio slot names nobody ("slot:<mid>", bench/bot.py): whoever speaks in it
        # is no wrong label (the main room's slots play on until the room's offer).
        if label != sender and not label.startswith("slot:"):
            self.mislabeled += 1
            self.last_mislabel = now

    def _after_close(self, packet: RtpPacket, now: float) -> None:
        """After the rooms closed: the first packet of each sender sent after this bot
        heard of it (bench/breakout_close.py)."""
        info = self.ledger.registry.get(hash(packet.payload))
        if info is None or info is AMBIGUOUS:
            return
        sender, sent_at = info
        if sender in self.back_fresh:
            return
        told = self.heard_closed()
        if told is not None and sent_at > told:
            self.back_fresh[sender] = now

    def heard_closed(self) -> float | None:
        """When this bot heard that the rooms were closed (after `closed_at`)."""
        if self.bot is None or self.closed_at is None:
            return None
        since = self.closed_at
        return next((t for t, _, opened in self.bot.rooms_told if t >= since and not opened), None)

    def offers_after(self, t0: float) -> list[Offer]:
        """The offers from t0 on, until the rooms were closed (if they were)."""
        assert self.bot is not None
        end = self.closed_at if self.closed_at is not None else float("inf")
        return [o for o in self.bot.offers if t0 <= o.started < end]

    def labels_right_at(self, t0: float) -> float | None:
        """When the bot answered the first offer from which on all label its room exactly
        (t0: the offers it had already did, and none came after)."""
        assert self.bot is not None
        before = [o for o in self.bot.offers if o.started < t0]
        offers = self.offers_after(t0)
        at = t0 if before and before[-1].tracks == self.expected_tracks else None
        for offer in offers:
            if offer.tracks == self.expected_tracks:
                at = offer.answered if at is None else at
            else:
                at = None
        return at

    def told_at(self, t0: float) -> float | None:
        assert self.bot is not None
        return next((t for t, room, opened in self.bot.rooms_told if t >= t0 and opened), None)

    def isolated_at(self, t0: float) -> float | None:
        labels = self.labels_right_at(t0)
        if labels is None or not self.publishing_roommates <= self.first_fresh.keys():
            return None
        return max(
            labels,
            *self.first_fresh.values(),
            self.last_outsider or t0,
            self.last_mislabel or t0,
        )
