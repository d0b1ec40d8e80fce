"""A WebSocket that lands on another node than its lesson's is relayed there
(signalling/ws_relay.py): two real nodes on one real redis-server, aiortc bots over
real sockets. Whichever node a bot's WebSocket reaches, everyone is in one call on the
lesson's node: participants, chat, hands, settings and media both ways, the relayed
bot's media connections made by the owning node; a bad token costs no node-to-node
connection; a resume through another node finds its session; only a node-to-node
credential makes the owner believe a relayed client address; an owner that cannot be
reached or dies (a `urok serve` process, SIGKILL), or a relaying node that drains, sends
the page back to its retries."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.bot import Bot
from bench.media import PatternVideoTrack
from rooms.placement import NodeRecord
from signalling.config_cluster import ClusterSettings
from signalling.config_sections import LimitSettings
from signalling.drain import drain
from signalling.keys import CALLS, MEDIA, NODE, WS_COUNTS
from signalling.ratelimit import LIMITS
from signalling.relay_auth import relay_headers, relay_key
from tests.live import LiveServer, free_port, running_server, serve_process, wait_healthy
from tests.redis_server import redis_server

WAIT = 30.0  # every wait: the non-real-time half of the suite is starved on CI
# Slow beats and a long stale time: a starved test process must not make a node look dead.
BEAT, STALE = 0.5, 15.0
GREEN, BLUE = (30, 200, 30), (30, 30, 220)


def cluster(node_id: str) -> ClusterSettings:
    return ClusterSettings(node_id=node_id, heartbeat_seconds=BEAT, stale_after_seconds=STALE)


@asynccontextmanager
async def two_nodes(**owner_settings: Any) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    """Node n1 (which will own the lessons) and n2, on one redis-server."""
    async with (
        redis_server() as url,
        running_server(redis_url=url, cluster=cluster("n1"), **owner_settings) as owner,
        running_server(redis_url=url, cluster=cluster("n2")) as other,
    ):
        yield owner, other


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert time.monotonic() < deadline, f"not within {WAIT:g} s: {what}"
        await asyncio.sleep(0.05)


async def joined_bot(base_url: str, token: str) -> Bot:
    bot = Bot(base_url, token, decode=False)
    await bot.connect(timeout=WAIT)
    return bot


async def packets_grow(bot: Bot, source: str, by: int = 20) -> None:
    start = bot.packet_counts[(source, "video")]
    await eventually(
        lambda: bot.packet_counts[(source, "video")] >= start + by, f"video from {source}"
    )


def ufrags(sdp: str) -> set[str]:
    return set(re.findall(r"a=ice-ufrag:(\S+)", sdp))


def media_ufrags(server: LiveServer) -> set[str]:
    """The ICE usernames of every media transport the node runs."""
    found: set[str] = set()
    for router in server.app[MEDIA].routers.values():
        for transport in router.transports.values():
            if transport.pc.localDescription is not None:
                found |= ufrags(transport.pc.localDescription.sdp)
    return found


async def raw_join(
    server: LiveServer, message: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A join on a bare WebSocket: the first reply."""
    ws_url = server.base_url.replace("http", "ws", 1) + "/ws"
    async with server.http.ws_connect(ws_url, headers=headers or {}) as ws:
        await ws.send_json(message)
        async with asyncio.timeout(WAIT):
            reply: dict[str, Any] = await ws.receive_json()
        return reply


async def test_bots_on_two_nodes_are_in_one_call() -> None:
    async with two_nodes() as (owner, other):
        lesson = await owner.create_lesson()
        assert await owner.app[NODE].placement.claim(lesson, "n1", 60) == "n1"
        teacher = await joined_bot(
            owner.base_url, await owner.token(lesson, "t-1", "Анна Петровна", "teacher")
        )
        # The pupil's WebSocket reaches n2, which relays it to n1.
        pupil = await joined_bot(
            other.base_url, await other.token(lesson, "s-1", "Ученик", "student")
        )
        try:
            assert other.app[WS_COUNTS].relayed == 1
            assert teacher.id in pupil.participants
            await eventually(lambda: pupil.id in teacher.participants, "the pupil joined")
            assert set(owner.app[CALLS].calls) == {lesson} and not other.app[CALLS].calls
            await teacher.publish([(PatternVideoTrack(GREEN, 160, 120, 15), "camera")], WAIT)
            await pupil.publish([(PatternVideoTrack(BLUE, 160, 120, 15), "camera")], WAIT)
            await packets_grow(pupil, teacher.id)
            await packets_grow(teacher, pupil.id)
            # The relayed pupil's media connections are n1's own; n2 runs none.
            assert pupil.publisher is not None and pupil.subscriber is not None
            served = ufrags(pupil.publisher.remoteDescription.sdp)
            served |= ufrags(pupil.subscriber.remoteDescription.sdp)
            assert len(served) >= 2 and served <= media_ufrags(owner)
            assert not media_ufrags(other) and not other.app[MEDIA].routers
            await _call_events_both_ways(teacher, pupil)
            await _bad_token_costs_no_relay(owner, other, lesson)
            # The pupil closes their socket at n2: they leave the call at n1.
            left = teacher.wait_for(
                lambda m: m["type"] == "participant_left" and m["participant_id"] == pupil.id,
                WAIT,
            )
            await pupil.close()
            await left
            await eventually(lambda: other.app[WS_COUNTS].relayed == 0, "the relay closed")
            assert list(owner.app[CALLS].calls[lesson].participants) == [teacher.id]
        finally:
            await pupil.close()
            await teacher.close()


async def test_the_owner_dying_closes_the_relayed_socket(tmp_path: Path) -> None:
    """A `urok serve` process owns the lesson and is killed: the WebSocket relayed to it
    closes as "going away" (the page's resume takes it from there)."""
    config = tmp_path / "doomed.toml"
    config.write_text(
        f'[cluster]\nnode_id = "doomed"\nheartbeat_seconds = {BEAT}\n'
        f"stale_after_seconds = {STALE}\n"
    )
    port = free_port()
    async with redis_server() as url:
        args = ("--config", str(config), "--redis-url", url)
        process = await serve_process(port, *args, data_dir=tmp_path / "data")
        try:
            async with running_server(redis_url=url, cluster=cluster("n2")) as other:
                await wait_healthy(other.http, f"http://127.0.0.1:{port}", WAIT)
                lesson = await other.create_lesson()
                placement = other.app[NODE].placement
                assert await placement.claim(lesson, "doomed", STALE) == "doomed"
                teacher_token = await other.token(lesson, "t-1", "Анна Петровна", "teacher")
                teacher = await joined_bot(f"http://127.0.0.1:{port}", teacher_token)
                pupil = await joined_bot(
                    other.base_url, await other.token(lesson, "s-1", "Ученик", "student")
                )
                try:
                    assert other.app[WS_COUNTS].relayed == 1 and teacher.id in pupil.participants
                    process.send_signal(signal.SIGKILL)
                    async with asyncio.timeout(WAIT):
                        await pupil.closed_by_server.wait()
                    assert pupil.ws is not None and pupil.ws.close_code == 1001
                    await eventually(lambda: other.app[WS_COUNTS].relayed == 0, "relay gone")
                finally:
                    await pupil.close()
                    await teacher.close()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


def said(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "chat_message" and m["message"]["text"] == text


async def _call_events_both_ways(teacher: Bot, pupil: Bot) -> None:
    """Chat, hands, moderation and settings between a local and a relayed bot."""
    for sender, receiver, text in ((pupil, teacher, "вопрос"), (teacher, pupil, "ответ")):
        heard = receiver.wait_for(said(text), WAIT)
        await sender.send({"type": "chat_send", "text": text})
        await heard
    raised = teacher.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [pupil.id], WAIT)
    await pupil.send({"type": "hand", "raised": True})
    await raised
    lowered = pupil.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [], WAIT)
    await teacher.send({"type": "lower_hand", "participant_id": pupil.id})
    await lowered
    muted_chat = pupil.wait_for(
        lambda m: m["type"] == "call_settings" and m["permissions"]["chat"] is False, WAIT
    )
    await teacher.send(
        {"type": "set_permissions", "role": "student", "permissions": {"chat": False}}
    )
    await muted_chat


async def _bad_token_costs_no_relay(owner: LiveServer, other: LiveServer, lesson: str) -> None:
    relays, joins = other.app[WS_COUNTS].relays, owner.app[WS_COUNTS].messages["join"]
    for message in (
        {"type": "join", "token": "not-a-token"},
        {"type": "join", "token": "not-a-token", "lesson_id": lesson},
    ):
        reply = await raw_join(other, message)
        assert reply["type"] == "error" and reply["code"] == "token_invalid", reply
    assert other.app[WS_COUNTS].relays == relays
    assert owner.app[WS_COUNTS].messages["join"] == joins


async def test_resume_through_another_node_and_the_relay_credential() -> None:
    # n1 holds a dropped person 30 s; one refused join per address is its limit here.
    limits = LimitSettings(join_failures_per_ip=1)
    async with two_nodes(resume_grace_seconds=30, limits=limits) as (owner, other):
        await _unreachable_owner_means_try_again(other)
        lesson = await owner.create_lesson()
        assert await owner.app[NODE].placement.claim(lesson, "n1", 60) == "n1"
        teacher = await joined_bot(
            owner.base_url, await owner.token(lesson, "t-1", "Анна Петровна", "teacher")
        )
        pupil = await joined_bot(
            owner.base_url, await owner.token(lesson, "s-1", "Ученик", "student")
        )
        try:
            await pupil.drop_signalling()
            # The page comes back through the load balancer: n2 this time.
            pupil.base_url = other.base_url
            resumed = await pupil.resume(timeout=WAIT)
            assert resumed["type"] == "resumed" and resumed["state"] == "in_call", resumed
            assert other.app[WS_COUNTS].relayed == 1
            await eventually(lambda: owner.app[WS_COUNTS].resumes == 1, "n1 resumed them")
            heard = pupil.wait_for(said("с возвращением"), WAIT)
            await teacher.send({"type": "chat_send", "text": "с возвращением"})
            await heard
            # n2 drains: the relayed page is told and let go at once (to come back through
            # another node); n1 holds the pupil meanwhile.
            told = pupil.wait_for(lambda m: m["type"] == "restarting", WAIT)
            await drain(other.app, WAIT)
            await told
            async with asyncio.timeout(WAIT):
                await pupil.closed_by_server.wait()
            assert pupil.ws is not None and pupil.ws.close_code == 1001
            await eventually(lambda: other.app[WS_COUNTS].relayed == 0, "the relay closed")
            assert pupil.id in owner.app[CALLS].calls[lesson].participants
        finally:
            await pupil.close()
            await teacher.close()
        await _relayed_address_needs_the_credential(owner)


async def _unreachable_owner_means_try_again(other: LiveServer) -> None:
    """A lesson held by a node that is registered but does not answer: the page is told
    to try again (by then the node answers, or its record has run out)."""
    placement = other.app[NODE].placement
    silent = f"http://127.0.0.1:{free_port()}"
    await placement.register(NodeRecord("n0", silent, silent, "127.0.0.1", "test"), 60)
    lesson = await other.create_lesson(group_id="elsewhere")
    assert await placement.claim(lesson, "n0", 60) == "n0"
    token = await other.token(lesson, "s-1", "Ученик", "student")
    reply = await raw_join(other, {"type": "join", "token": token, "id": "j1"})
    assert reply == {"type": "error", "code": "restarting", "message": "try again", "ref": "j1"}
    await placement.deregister("n0")


async def _relayed_address_needs_the_credential(owner: LiveServer) -> None:
    """The owner counts a refused join against the address a relay vouches for with
    the cluster key, and against the TCP peer when the credential is forged."""
    limits = owner.app[LIMITS].join_ip
    bad = {"type": "join", "token": "not-a-token"}
    vouched = relay_headers(await relay_key(owner.app), "203.0.113.9", time.time())
    assert (await raw_join(owner, bad, vouched))["code"] == "token_invalid"
    assert limits.retry_after("203.0.113.9") is not None
    assert limits.retry_after("127.0.0.1") is None
    forged = relay_headers(b"not the cluster key", "198.51.100.7", time.time())
    stale = relay_headers(await relay_key(owner.app), "198.51.100.8", time.time() - 300)
    assert (await raw_join(owner, bad, forged))["code"] == "token_invalid"
    assert limits.retry_after("198.51.100.7") is None
    assert limits.retry_after("127.0.0.1") is not None  # counted as the TCP peer's
    # Signed with the key but too old: also the TCP peer's, which is over its limit now.
    assert (await raw_join(owner, bad, stale))["code"] == "rate_limited"
    assert limits.retry_after("198.51.100.8") is None


async def test_breakout_rooms_and_a_recording_run_by_a_relayed_teacher() -> None:
    """The teacher's WebSocket is on the other node: the rooms they open and the
    recording they make are the lesson's node's, and reach the pupils there."""
    async with two_nodes() as (owner, other):
        lesson = await owner.create_lesson()
        assert await owner.app[NODE].placement.claim(lesson, "n1", 60) == "n1"
        teacher = await joined_bot(
            other.base_url, await other.token(lesson, "t-1", "Анна Петровна", "teacher")
        )
        pupils = [
            await joined_bot(owner.base_url, await owner.token(lesson, u, u, "student"))
            for u in ("s-1", "s-2")
        ]
        try:
            assert other.app[WS_COUNTS].relayed == 1
            await teacher.publish([(PatternVideoTrack(GREEN, 160, 120, 15), "camera")], WAIT)
            await packets_grow(pupils[0], teacher.id)
            await teacher.request(
                {"type": "breakout_configure", "count": 2}, lambda m: m["type"] == "breakout", WAIT
            )
            assignments = {pupils[0].id: "r1", pupils[1].id: "r2"}
            await teacher.request(
                {"type": "breakout_assign", "assignments": assignments},
                lambda m: m["type"] == "breakout",
                WAIT,
            )
            moved = [
                pupil.wait_for(lambda m, r=room: m["type"] == "breakout" and m["room"] == r, WAIT)
                for pupil, room in zip(pupils, ("r1", "r2"), strict=True)
            ]
            await teacher.send({"type": "breakout_open", "minutes": 10})
            for waiter in moved:
                assert (await waiter)["state"]["opened"] is True
            back = pupils[0].wait_for(
                lambda m: m["type"] == "breakout" and not m["state"]["opened"], WAIT
            )
            await teacher.send({"type": "breakout_close", "countdown_seconds": 0})
            assert (await back)["room"] is None

            ready = pupils[1].wait_for(
                lambda m: (
                    m["type"] == "chat_message"
                    and m["message"]["data"].get("event") == "recording_ready"
                ),
                60,
            )
            started = await teacher.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording", WAIT
            )
            recording = started["recording"]
            assert recording is not None and owner.app[CALLS].calls[lesson].recorder is not None
            await asyncio.sleep(2)
            await teacher.request(
                {"type": "recording_stop"}, lambda m: m["type"] == "recording", WAIT
            )
            data = (await ready)["message"]["data"]
            assert data["recording_id"] == recording["id"] and data["complete"] is True
            # Written on the lesson's node, none on the relaying node.
            assert (owner.settings.recordings_dir / f"{recording['id']}.mp4").stat().st_size > 0
            assert not list(other.settings.recordings_dir.glob("*.mp4"))
        finally:
            for pupil in pupils:
                await pupil.close()
            await teacher.close()
