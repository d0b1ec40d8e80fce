"""A node that dies (issue 13): a `urok serve` process holds a lesson of five bots whose
WebSockets reach it through another node; it is killed with SIGKILL. Once its record
has run out (stale), the lesson is placed on the survivor at the next join, the bots
join again there by themselves (as the page does) and are back in media within 10 s;
each person has their participant id back (raised hands in order, a co-host), and the
lesson's chat, from Redis; nobody is told the call ended, and when the lesson ends the
journal hears it once, with everyone's attendance."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from bench.bot import Bot, BotError
from bench.preencoded import PreEncodedTrack, prepare_media
from signalling.config_cluster import ClusterSettings
from signalling.keys import NODE
from tests.live import free_port, running_server, serve_process, wait_healthy
from tests.redis_server import redis_server
from tests.test_journal_webhooks import journal_endpoint

WAIT = 60.0  # every set-up wait (a starved machine)
BEAT, STALE = 0.5, 3.0
BACK_IN_MEDIA_S = 10.0  # the issue: back in media within 10 s of the death being noticed
PEOPLE = [("t-1", "teacher")] + [(f"s-{i}", "student") for i in range(1, 5)]


async def join_until_joined(base_url: str, token: str, deadline: float) -> Bot:
    """Join, and again after a refusal (the page's retry): `restarting` while the dead
    node still looks alive, then a fresh join on the survivor."""
    while True:
        bot = Bot(base_url, token, decode=False)
        try:
            await bot.connect(timeout=WAIT)
            return bot
        except (BotError, OSError, TimeoutError):
            await bot.close()
            assert time.monotonic() < deadline, "no join on the survivor in time"
            await asyncio.sleep(0.25)


async def everyone_hears_everyone(bots: list[Bot], deadline: float) -> None:
    while not all(
        bot.packet_counts[(other.id, "audio")] > 10
        for bot in bots
        for other in bots
        if other is not bot
    ):
        assert time.monotonic() < deadline, "not everyone hears everyone"
        await asyncio.sleep(0.05)


async def test_a_killed_nodes_lesson_comes_back_on_the_survivor(tmp_path: Path) -> None:
    media = prepare_media(audio_seconds=2, video_seconds=0.2, width=160, height=120)
    port = free_port()
    bots: list[Bot] = []
    async with redis_server() as url, journal_endpoint() as (journal, integration):
        config = tmp_path / "doomed.toml"
        config.write_text(  # the same journal, its webhooks to the same endpoint
            f'[cluster]\nnode_id = "doomed"\nheartbeat_seconds = {BEAT}\n'
            f"stale_after_seconds = {STALE}\n\n[[integrations]]\n"
            f'key_id = "{integration.key_id}"\nsecret = "{integration.secret}"\n'
            f'name = "{integration.name}"\nwebhook_url = "{integration.webhook_url}"\n'
        )
        process = await serve_process(
            port, "--config", str(config), "--redis-url", url, data_dir=tmp_path / "data"
        )
        survivor_settings = ClusterSettings(
            node_id="survivor", heartbeat_seconds=BEAT, stale_after_seconds=STALE
        )
        try:
            async with running_server(
                redis_url=url, cluster=survivor_settings, integrations=(integration,)
            ) as survivor:
                await wait_healthy(survivor.http, f"http://127.0.0.1:{port}", WAIT)
                lesson = await survivor.create_lesson()
                placement = survivor.app[NODE].placement
                assert await placement.claim(lesson, "doomed", 60) == "doomed"
                tokens = [await survivor.token(lesson, u, f"Имя {u}", r) for u, r in PEOPLE]
                # Everyone's WebSocket reaches the survivor, relayed to the doomed node.
                set_up = time.monotonic() + WAIT
                for token in tokens:
                    bots.append(await join_until_joined(survivor.base_url, token, set_up))
                for bot in bots:
                    await bot.publish([(PreEncodedTrack(media.audio), "microphone")])
                await everyone_hears_everyone(bots, set_up)
                said = bots[0].wait_for(lambda m: m["type"] == "chat_message", WAIT)
                await bots[1].send({"type": "chat_send", "text": "до сбоя"})
                await said
                # Two hands up, in order; the teacher makes a pupil co-host.
                raised = [bots[3].id, bots[2].id]
                for count, bot in ((1, bots[3]), (2, bots[2])):
                    # One at a time: two sockets relayed apart may arrive in either order.
                    hands = bots[0].wait_for(
                        lambda m, n=count: m["type"] == "hands" and m["queue"] == raised[:n], WAIT
                    )
                    await bot.send({"type": "hand", "raised": True})
                    await hands
                await bots[0].request(
                    {"type": "set_cohost", "participant_id": bots[4].id, "cohost": True},
                    lambda m: m["type"] == "participant_updated",
                )
                ids = [bot.id for bot in bots]

                process.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                for bot in bots:
                    async with asyncio.timeout(WAIT):
                        await bot.closed_by_server.wait()
                    await bot.close()
                old, bots[:] = list(bots), []
                # The page joins again by itself: so do the bots, all at once.
                deadline = killed_at + STALE + BACK_IN_MEDIA_S
                bots.extend(
                    await asyncio.gather(
                        *(join_until_joined(survivor.base_url, t, deadline) for t in tokens)
                    )
                )
                for bot in bots:
                    await bot.publish([(PreEncodedTrack(media.audio), "microphone")])
                await everyone_hears_everyone(bots, deadline)
                back_s = time.monotonic() - killed_at
                print(f"back in media {back_s:.1f} s after the kill (stale after {STALE:g} s)")
                assert back_s < STALE + BACK_IN_MEDIA_S, back_s

                assert await placement.holder(lesson) == "survivor"
                # Each person has their participant id back: the hands are theirs, in
                # order; the co-host is one still.
                assert [bot.id for bot in bots] == ids
                for bot in bots:
                    assert bot.joined is not None
                    assert [m["text"] for m in bot.joined["chat"]] == ["до сбоя"]
                    assert bot.joined["hands"] == raised
                assert bots[4].joined is not None and bots[4].joined["self"]["cohost"] is True
                for bot in old + bots:
                    assert not [m for m in bot.messages if m["type"] == "call_ended"]
                # The lesson ends: the journal hears it once (no "ended" of the dead
                # node's call), and everyone was present.
                status, _ = await survivor.api("DELETE", f"/api/v1/lessons/{lesson}")
                assert status == 200
                (ended,) = await journal.wait("lesson.ended", timeout=WAIT)
                await asyncio.sleep(1.0)  # a second one would follow within this
                assert len([e for e in journal.events if e["event"] == "lesson.ended"]) == 1
                present = {a["user_id"]: a["joined"] for a in ended["data"]["attendance"]}
                assert all(present[user] for user, _ in PEOPLE), present
                # Gone before the survivor stops (it would wait for their sockets).
                for bot in bots:
                    await bot.close()
        finally:
            for bot in bots:
                await bot.close()
            if process.returncode is None:
                process.kill()
            await process.wait()
