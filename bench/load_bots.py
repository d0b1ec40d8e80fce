"""The load bench's participants: bots that join, publish pre-encoded media, and leave."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bench.bot import Bot
from bench.cli import say
from bench.load_options import Options
from bench.measure import KINDS, ReceiveLog, SendLog
from bench.preencoded import BenchMedia, PreEncodedTrack
from bench.server import Journal

JOIN_CONCURRENCY = 4


class Participant:
    def __init__(self, bot: Bot, log: ReceiveLog, user_id: str, receives: bool = True) -> None:
        self.bot = bot
        self.log = log
        self.user_id = user_id
        self.receives = receives
        self.send_log: SendLog | None = None
        self.tracks: list[PreEncodedTrack] = []


class _PublishOnlyBot(Bot):
    """Never answers the server's subscribe offers: the server forwards it nothing."""

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] != "subscribe_offer":
            await super()._on_message(message)


async def join_all(
    journal: Journal,
    lesson_id: str,
    base_url: str,
    user_ids: list[str],
    media: BenchMedia,
    options: Options,
    participants: list[Participant],
) -> None:
    publishers = set(user_ids[: options.publishers])

    async def join(user_id: str, role: str) -> Participant:
        token = await journal.token(lesson_id, user_id, role)
        log = ReceiveLog()
        receives = not (options.publish_only and user_id in publishers)
        bot = (Bot if receives else _PublishOnlyBot)(
            base_url, token, decode=False, on_packet=log.on_packet
        )
        log.connection = lambda: bot.subscriber
        participant = Participant(bot, log, user_id, receives)
        participants.append(participant)  # before connecting: cleanup must see it
        await bot.connect()
        return participant

    async def publish(participant: Participant, microphone: bool = True) -> None:
        tracks = [(PreEncodedTrack(media.audio), "microphone")] if microphone else []
        tracks.append((PreEncodedTrack(media.video), "camera"))
        participant.tracks = [track for track, _ in tracks]
        await participant.bot.publish(list(tracks))
        assert participant.bot.publisher is not None
        participant.send_log = SendLog()
        participant.send_log.install(participant.bot.publisher)

    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join_limited(user_id: str, role: str) -> Participant:
        async with limit:
            return await join(user_id, role)

    roles = ["teacher"] + ["student"] * (len(user_ids) - 1)
    if options.late_join:
        # Publishers join and publish one by one, then subscribers join a few at
        # a time, each getting one offer with every track (as in a real lesson).
        for index, (user_id, role) in enumerate(
            zip(user_ids[: options.publishers], roles, strict=False)
        ):
            await publish(await join(user_id, role), index < options.microphones)
        await asyncio.gather(*(join_limited(u, "student") for u in user_ids[options.publishers :]))
        return
    # Everybody joins first, then publishers publish one at a time, each once the
    # previous one reaches everybody: every offer then adds at most one m-section
    # per kind (see the note on BUNDLE in docs/performance.md).
    joined = await asyncio.gather(
        *(join_limited(u, r) for u, r in zip(user_ids, roles, strict=True))
    )
    for index, participant in enumerate(joined[: options.publishers]):
        await publish(participant, index < options.microphones)
        await wait_for_media(participants, options, [participant.bot.id])


async def wait_for_media(
    participants: list[Participant], options: Options, publisher_ids: list[str] | None = None
) -> None:
    """Until every participant receives every (other) publisher's audio and video."""
    if publisher_ids is None:
        publisher_ids = [p.bot.id for p in participants if p.send_log is not None]
    kinds = {p.bot.id: [t.kind for t in p.tracks] for p in participants if p.tracks}
    while True:
        missing = [
            (p.user_id, pub, kind)
            for p in participants
            if p.receives
            for pub in publisher_ids
            if pub != p.bot.id
            for kind in kinds.get(pub, KINDS)
            if p.bot.packet_counts.get((pub, kind), 0) == 0
        ]
        if not missing:
            return
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            say(
                options,
                f"still missing media for {len(missing)} (receiver, publisher, kind), "
                f"e.g. {missing[:3]}",
            )
            raise


async def leave_all(participants: list[Participant]) -> None:
    async def leave(participant: Participant) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(participant.bot.leave(), 15)

    await asyncio.gather(*(leave(p) for p in participants))
