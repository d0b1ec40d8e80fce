"""The breakout bench's class: who sits where, joining and publishing, the rooms set up, leaving."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bench.bot import Bot
from bench.breakout_media import RegistryLog, RoomTrack, Switch
from bench.breakout_members import BreakoutBot, Ledger, Member
from bench.breakout_options import BenchError, Options
from bench.cli import say
from bench.preencoded import BenchMedia
from bench.server import Journal

JOIN_CONCURRENCY = 8
SOURCES = {"audio": "microphone", "video": "camera"}


def plan(options: Options) -> list[Member]:
    """The teacher, then the students room by room; publishers spread one per room first."""
    ledger = Ledger()
    teacher = Member("bench-t", None, ("audio",), ledger)
    students = [
        Member(f"bench-r{room + 1}-s{seat + 1}", f"r{room + 1}", (), ledger)
        for room in range(options.rooms)
        for seat in range(options.per_room)
    ]
    order = sorted(range(len(students)), key=lambda i: (i % options.per_room, i))
    for i in order[: options.publisher_count]:
        students[i].kinds = options.kinds
    for i in order[: options.cameras]:
        students[i].kinds = tuple(dict.fromkeys((*students[i].kinds, "video")))
        students[i].camera_on = True
    return [teacher, *students]


async def _join(member: Member, journal: Journal, lesson_id: str, base_url: str, role: str) -> None:
    token = await journal.token(lesson_id, member.user_id, role)
    member.bot = BreakoutBot(base_url, token, decode=False, on_packet=member.on_packet)
    await member.bot.connect()


async def _publish(
    member: Member, media: BenchMedia, index: int, every: int, room_every: int = 1
) -> None:
    bot = member.bot
    assert bot is not None
    member.switch = Switch()
    clips = {"audio": media.audio, "video": media.video}
    tag = index.to_bytes(2, "big")

    def sparse(kind: str) -> int:  # a camera that is on sends every frame
        return 1 if kind == "video" and member.camera_on else every

    tracks = [
        (RoomTrack(clips[k], tag, member.switch, sparse(k), room_every), SOURCES[k])
        for k in member.kinds
    ]
    await bot.publish(tracks)  # type: ignore[arg-type]
    assert bot.publisher is not None
    RegistryLog(bot.id, member.ledger.registry).install(bot.publisher)


def error_messages(members: list[Member]) -> list[str]:
    out = []
    for m in members:
        if m.bot is None:
            continue
        for message in m.bot.messages:
            if message["type"] == "error":
                text = str(message.get("message"))
                text = text if len(text) <= 100 else text[:100] + "..."
                out.append(f"{m.user_id}: {message.get('code')}: {text}")
    return out


def _missing_main_room(members: list[Member]) -> list[tuple[str, str, str]]:
    """(receiver, publisher, kind) not received yet. A bot whose offers carry audio
    slots (docs/protocol.md "Audio slots") hears the students through them, by the
    loudest, not each one: it waits for the teacher's audio (a host's is its own
    m-section) and every video only."""
    bots = [(m.user_id, m.bot, m.kinds) for m in members if m.bot is not None]
    host = bots[0][1].id if bots else None
    publishers = [(bot.id, kind) for _, bot, kinds in bots for kind in kinds]
    unslotted = [(pid, kind) for pid, kind in publishers if kind != "audio" or pid == host]
    missing = []
    for user_id, bot, _ in bots:
        slotted = any(info.get("slot") for info in bot.track_info.values())
        counts, own = bot.packet_counts, bot.id
        for pid, kind in unslotted if slotted else publishers:
            if pid != own and counts.get((pid, kind), 0) == 0:
                missing.append((user_id, pid, kind))
    return missing


def _describe_missing(missing: list[tuple[str, str, str]]) -> str:
    receivers = {r for r, _, _ in missing}
    return f"{len(missing)} (receiver, publisher, kind) missing at {len(receivers)} receivers; " + (
        ", ".join(f"{r} <- {p} {k}" for r, p, k in missing[:3])
    )


async def _until(
    check: Callable[[], bool],
    members: list[Member],
    what: str,
    interval: float = 0.1,
    progress: Callable[[], str] | None = None,
) -> None:
    said = time.monotonic()
    while not check():
        if progress is not None and time.monotonic() - said >= 10:
            said = time.monotonic()
            print(f"  still {what}: {progress()}", flush=True)
        errors = error_messages(members)
        if errors:
            raise BenchError(
                f"{len(errors)} error message(s) from the server while {what}; first: "
                + "; ".join(errors[:3])
            )
        for m in members:
            if m.bot is not None and m.bot.closed_by_server.is_set():
                raise BenchError(f"the server closed {m.user_id}'s WebSocket while {what}")
        await asyncio.sleep(interval)


async def set_up_lesson(
    members: list[Member],
    journal: Journal,
    base_url: str,
    media: BenchMedia,
    options: Options,
) -> str:
    teacher, students = members[0], members[1:]
    lesson_id = await journal.create_lesson(teacher.user_id, [s.user_id for s in students])
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(member: Member, role: str, index: int) -> None:
        async with limit:
            await _join(member, journal, lesson_id, base_url, role)
            if member.kinds:
                await _publish(member, media, index, options.main_every, options.room_every)

    await join(teacher, "teacher", 0)
    publishing = [(i, m) for i, m in enumerate(members) if m.kinds and m is not teacher]
    silent = [m for m in students if not m.kinds]
    # Publishers first (their offers coalesce), then the rest: one offer each with every track.
    await asyncio.gather(*(join(m, "student", i) for i, m in publishing))
    say(options, f"{len(publishing)} publishing students joined; the others are joining")
    await asyncio.gather(*(join(m, "student", 0) for m in silent))
    say(options, f"{len(members)} joined; waiting until everybody receives every publisher")
    try:
        await _until(
            lambda: not _missing_main_room(members),
            members,
            "setting up",
            interval=0.5,
            progress=lambda: _describe_missing(_missing_main_room(members)),
        )
    except asyncio.CancelledError:
        missing = _missing_main_room(members)
        say(options, f"still missing media for {len(missing)} (receiver, publisher, kind)")
        raise

    rooms = _assign_seats(members)
    await _configure_rooms(members, rooms, options)
    return lesson_id


def _assign_seats(members: list[Member]) -> dict[str, list[Member]]:
    """Each member's roommates and the tracks its offers should label once rooms open;
    the rooms' students."""
    students = members[1:]
    rooms: dict[str, list[Member]] = {}
    for m in students:
        assert m.room is not None
        rooms.setdefault(m.room, []).append(m)
    for m in members:
        mates = [] if m.room is None else [o for o in rooms[m.room] if o is not m]
        m.roommates = frozenset(o.id for o in mates)
        m.publishing_roommates = frozenset(o.id for o in mates if o.kinds)
        m.expected_tracks = frozenset((o.id, k) for o in mates for k in o.kinds)
    return rooms


async def _configure_rooms(
    members: list[Member], rooms: dict[str, list[Member]], options: Options
) -> None:
    """The teacher configures the rooms and assigns the students (nothing moves while closed)."""
    teacher, students = members[0], members[1:]
    assert teacher.bot is not None
    reply = await teacher.bot.request(
        {"type": "breakout_configure", "count": options.rooms},
        lambda msg: msg["type"] == "breakout",
    )
    if reply["type"] == "error":
        raise BenchError(f"breakout_configure: {reply['code']}: {reply['message']}")
    assignments = {m.id: m.room for m in students}
    reply = await teacher.bot.request(
        {"type": "breakout_assign", "assignments": assignments},
        lambda msg: msg["type"] == "breakout" and bool(msg["state"]["assignments"]),
    )
    if reply["type"] == "error":
        raise BenchError(f"breakout_assign: {reply['code']}: {reply['message']}")
    state_rooms = [r["id"] for r in reply["state"]["rooms"]]
    if sorted(rooms) != sorted(state_rooms):
        raise BenchError(f"the server made rooms {state_rooms}, expected {sorted(rooms)}")


async def leave_all(members: list[Member]) -> None:
    await asyncio.gather(*(leave_bot(m.bot) for m in members if m.bot is not None))


async def leave_bot(bot: Bot) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bot.leave(), 15)
    if bot.session is not None and not bot.session.closed:
        await bot.session.close()
