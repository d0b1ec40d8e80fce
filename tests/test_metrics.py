"""GET /metrics of a real server with real bots in a call, parsed by prometheus_client's own
parser: the counters move with the traffic, the gauges match who is there, and nobody
without the token reads them."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.config_ops import MetricsSettings
from tests.live import LiveServer, free_port, running_server
from tests.test_call_recording import is_recording_ready
from tests.test_journal_webhooks import journal_endpoint

TOKEN = "scrape-token-0123456789abcdef"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser refuses anything malformed."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(server: LiveServer, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with server.http.get(server.base_url + "/metrics", headers=headers) as response:
        return response.status, await response.text()


async def scraped(server: LiveServer) -> Samples:
    status, text = await scrape(server)
    assert status == 200, text
    return parse(text)


async def until(
    server: LiveServer, check: Callable[[Samples], bool], timeout: float = 20.0
) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = await scraped(server)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "metrics never reached the expected values"
        await asyncio.sleep(0.2)


def latency(samples: Samples) -> tuple[list[tuple[float, float]], float, float]:
    """urok_forward_latency_seconds: its cumulative (le, count) buckets in order, count, sum."""
    name = "urok_forward_latency_seconds"
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (sample, labels), count in samples.items()
        if sample == name + "_bucket"
    )
    return buckets, value(samples, name + "_count"), value(samples, name + "_sum")


def people(samples: Samples) -> dict[str, float]:
    return {
        role: value(samples, "urok_participants", role=role)
        for role in ("teacher", "student", "parent", "guest")
    }


async def test_counters_follow_a_real_call() -> None:
    metrics = MetricsSettings(token=TOKEN)
    async with running_server(metrics=metrics, resume_grace_seconds=30) as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        pupils = [
            Bot(server.base_url, await server.token(lesson, f"s-{i}", f"Ученик {i}", "student"))
            for i in (1, 2)
        ]
        before = await scraped(server)
        assert value(before, "urok_calls") == 0
        assert value(before, "urok_media_packets_total", direction="outgoing") == 0
        try:
            await teacher.connect()
            await teacher.publish(
                [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack((200, 0, 0)), "camera")]
            )
            for pupil in pupils:
                await pupil.connect()
            await pupils[0].publish([(ToneAudioTrack(880), "microphone")])
            for pupil in pupils:
                await pupil.wait_track(teacher.id, "video")

            # Who is there: the gauges say it, by role and kind.
            samples = await until(
                server,
                lambda s: (
                    value(s, "urok_consumers", kind="audio") == 4
                    and value(s, "urok_consumers", kind="video") == 2
                ),
            )
            assert value(samples, "urok_calls") == 1
            assert people(samples) == {"teacher": 1, "student": 2, "parent": 0, "guest": 0}
            assert value(samples, "urok_producers", kind="audio") == 2
            assert value(samples, "urok_producers", kind="video") == 1
            assert value(samples, "urok_websocket_connections") == 3
            assert value(samples, "urok_breakout_rooms") == 0

            # Forwarding: packets and bytes in and out grow while media flows.
            first = samples
            later = await until(
                server,
                lambda s: (
                    value(s, "urok_media_packets_total", direction="outgoing")
                    > value(first, "urok_media_packets_total", direction="outgoing") + 100
                ),
            )
            for name in ("urok_media_packets_total", "urok_media_bytes_total"):
                for direction in ("incoming", "outgoing"):
                    assert value(later, name, direction=direction) > value(
                        first, name, direction=direction
                    ), (name, direction)
            # Each incoming packet goes out to one or two subscribers: more out than in.
            assert value(later, "urok_media_packets_total", direction="outgoing") > value(
                later, "urok_media_packets_total", direction="incoming"
            )

            # Forwarding latency (sfu/latency.py): one packet in 16 per subscriber is timed,
            # the histogram grows with what goes out, and on loopback a packet leaves the
            # SFU within milliseconds of arriving.
            counted, timed = latency(first)[1], latency(later)[1]
            assert timed > counted, "no forwarded packet was timed"
            outgoing = value(later, "urok_media_packets_total", direction="outgoing")
            # Each of the 6 consumers times exactly one in 16 of the packets it sent.
            assert outgoing / 16 - 6 <= timed <= outgoing / 16, (timed, outgoing)
            buckets, _, total = latency(later)
            print(f"forwarding latency: {timed:.0f} timed, mean {total / timed * 1e3:.2f} ms")
            assert [le for le, _ in buckets][-1] == float("inf") and buckets[-1][1] == timed
            assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
            assert total / timed < 0.05, f"mean forwarding latency {total / timed * 1000:.1f} ms"
            assert dict(buckets)[0.01] > timed / 2  # most packets within 10 ms

            # Joining video subscribers asked the publisher for a keyframe (a PLI out).
            assert value(later, "urok_pli_total", direction="outgoing") >= 1

            # WebSocket messages by type; an unknown type is "other" and an error.
            assert value(later, "urok_websocket_messages_received_total", type="join") == 3
            assert value(later, "urok_websocket_messages_received_total", type="publish") == 2
            received = "urok_websocket_messages_received_total"
            assert value(later, received, type="subscribe_answer") >= 3
            other = value(later, received, type="other")
            error = teacher.wait_for(lambda m: m["type"] == "error")
            await teacher.send_raw('{"type": "no_such_message"}')
            assert (await error)["code"] == "unknown_type"
            now = await scraped(server)
            assert value(now, received, type="other") == other + 1
            assert value(now, "urok_websocket_errors_total", code="unknown_type") == 1
            assert not any(
                name.startswith("urok_websocket_messages") and "no_such_message" in str(labels)
                for name, labels in now
            )

            # A dropped connection: held (reconnecting), then resumed.
            await pupils[1].drop_signalling()
            await until(server, lambda s: value(s, "urok_participants_reconnecting") == 1)
            assert (await pupils[1].resume())["type"] == "resumed"
            resumed = await until(server, lambda s: value(s, "urok_participants_reconnecting") == 0)
            assert value(resumed, "urok_resumes_total", result="resumed") == 1
            assert value(resumed, "urok_resumes_total", result="refused") == 0

            # A media connection replaced (ice_restart), counted by connection.
            assert value(resumed, "urok_ice_restarts_total", connection="subscriber") == 0
            await pupils[0].restart_subscriber()
            restarted = await scraped(server)
            assert value(restarted, "urok_ice_restarts_total", connection="subscriber") == 1
            assert value(restarted, "urok_ice_restarts_total", connection="publisher") == 0

            # People leave: the gauges fall, the counters keep what was forwarded.
            sent = value(resumed, "urok_media_packets_total", direction="outgoing")
            for pupil in pupils:
                await pupil.leave()
            gone = await until(server, lambda s: people(s)["student"] == 0)
            assert value(gone, "urok_consumers", kind="video") == 0
            assert value(gone, "urok_media_packets_total", direction="outgoing") >= sent
            await teacher.leave()
        finally:
            for bot in (teacher, *pupils):
                await bot.close()
        # The call is over: every transport retired, still counted.
        after = await until(server, lambda s: value(s, "urok_calls") == 0)
        assert value(after, "urok_media_packets_total", direction="outgoing") >= sent
        assert latency(after)[1] >= latency(resumed)[1] > 0  # retired pacers' samples kept
        assert value(after, "urok_producers", kind="audio") == 0


async def test_metrics_need_the_token() -> None:
    async with running_server(metrics=MetricsSettings(token=TOKEN)) as server:
        for token in (None, "wrong-token-0123456789abcdef", TOKEN[:-1]):
            status, body = await scrape(server, token)
            assert status == 401, (token, body)
            assert "urok_" not in body
        async with server.http.get(
            server.base_url + "/metrics", headers={"Authorization": f"Basic {TOKEN}"}
        ) as response:
            assert response.status == 401
        status, body = await scrape(server, TOKEN)
        assert status == 200 and "urok_calls " in body


async def test_metrics_are_off_by_default() -> None:
    async with running_server() as server:
        status, body = await scrape(server, None)
        assert status == 404 and "urok_" not in body


async def test_metrics_on_their_own_port_and_not_on_the_main_one() -> None:
    port = free_port()
    async with running_server(metrics=MetricsSettings(port=port)) as server:
        status, _ = await scrape(server, None)
        assert status == 404
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            samples = parse(await response.text())
        assert value(samples, "urok_calls") == 0
        assert ("urok_event_loop_lag_seconds_count", ()) in samples


async def test_recordings_and_webhooks_are_counted(tmp_path: Path) -> None:
    metrics = MetricsSettings(token=TOKEN)
    async with (
        journal_endpoint() as (journal, integration),
        running_server(data_dir=tmp_path, integrations=(integration,), metrics=metrics) as server,
    ):
        lesson = await server.create_lesson()  # lesson.opened goes to the journal
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        try:
            await teacher.connect()
            await teacher.publish(
                [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack((200, 0, 0)), "camera")]
            )
            started = await teacher.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording"
            )
            assert started["recording"] is not None, started
            running = await scraped(server)
            assert value(running, "urok_recordings_running") == 1
            assert value(running, "urok_recordings_finished_total", status="ready") == 0
            await asyncio.sleep(2)
            ready = teacher.wait_for(is_recording_ready, 60)
            await teacher.request({"type": "recording_stop"}, lambda m: m["type"] == "recording")
            await ready
            await journal.wait("recording.ready")
            done = await until(
                server,
                lambda s: value(s, "urok_webhook_deliveries_total", result="delivered") >= 2,
            )
            assert value(done, "urok_recordings_running") == 0
            assert value(done, "urok_recordings_finished_total", status="ready") == 1
            assert value(done, "urok_recordings_finished_total", status="failed") == 0
            assert value(done, "urok_webhook_deliveries_total", result="failed") == 0
        finally:
            await teacher.close()
