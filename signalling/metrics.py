"""GET /metrics: the node in the Prometheus text format (prometheus-client).

Each app has its own CollectorRegistry (tests run many apps in one process).
`NodeCollector` reads the counters the media plane, the calls, the recorder,
the webhooks and the WebSockets keep anyway, at scrape time: forwarding a
packet does no Prometheus call (the latency histogram is bucket counts the media
plane fills for one packet in 16, sfu/latency.py). Names follow the field (LiveKit's
`livekit_*`, Jitsi's `jitsi_jvb_*`): `urok_` prefix, `_total` counters,
seconds and bytes; labels are bounded (role, kind, direction, message type,
error code) and never name a person or a call.

Who may read it: `[metrics]` (signalling/config_ops.py, docs/operations.md).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rooms.vocabulary import Role
from sfu.latency import SAMPLE_EVERY, LatencyBuckets
from sfu.stats import ForwardingTotals
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from signalling import gc_tuning
from signalling.keys import CALLS, HEALTH, MEDIA, RECORDINGS, SETTINGS, WEBHOOKS, WS_COUNTS

REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry", CollectorRegistry)
# Event loop lag samples (signalling/readiness.py): most are well under 10 ms.
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


class NodeCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._media()
        yield from self._signalling()
        yield from self._recordings_and_webhooks()

    def _calls(self) -> Iterator[Metric]:
        calls = list(self.app[CALLS].calls.values())
        roles = dict.fromkeys((role.value for role in Role), 0)
        waiting = held = rooms = 0
        for call in calls:
            for participant in call.participants.values():
                roles[participant.role.value] += 1
                held += participant.held_since is not None
            waiting += len(call.waiting)
            rooms += len(call.room_routers)
        yield GaugeMetricFamily("urok_calls", "Calls on this node.", len(calls))
        by_role = GaugeMetricFamily(
            "urok_participants", "Admitted participants on this node, by role.", labels=["role"]
        )
        for role, count in roles.items():
            by_role.add_metric([role], count)
        yield by_role
        yield GaugeMetricFamily(
            "urok_participants_waiting", "People in a waiting room on this node.", waiting
        )
        yield GaugeMetricFamily(
            "urok_participants_reconnecting",
            "Participants whose connection dropped, held for the resume grace.",
            held,
        )
        yield GaugeMetricFamily("urok_breakout_rooms", "Open breakout rooms on this node.", rooms)

    def _media(self) -> Iterator[Metric]:
        engine = self.app[MEDIA]
        producers = {"audio": 0, "video": 0}
        consumers = {"audio": 0, "video": 0}
        for router in list(engine.routers.values()):
            for transport in router.transports.values():
                if isinstance(transport, PublisherTransport):
                    for producer in transport.producers.values():
                        if not producer.closed and producer.kind in producers:
                            producers[producer.kind] += 1
                elif isinstance(transport, SubscriberTransport):
                    for consumer in transport.consumers:
                        if consumer.producer is not None and consumer.kind in consumers:
                            consumers[consumer.kind] += 1
        for name, counts, doc in (
            ("urok_producers", producers, "Incoming tracks (producers), by kind."),
            ("urok_consumers", consumers, "Outgoing tracks carrying a producer, by kind."),
        ):
            family = GaugeMetricFamily(name, doc, labels=["kind"])
            for kind, count in counts.items():
                family.add_metric([kind], count)
            yield family
        yield from _forwarding(engine.totals())
        exhausted = _counter(
            "urok_media_ports_exhausted",
            "Media connections refused: no free UDP port left in [media] udp_ports.",
        )
        exhausted.add_metric([], engine.media_ports.exhausted if engine.media_ports else 0)
        yield exhausted

    def _signalling(self) -> Iterator[Metric]:
        counts = self.app[WS_COUNTS]
        yield GaugeMetricFamily(
            "urok_websocket_connections", "Open call WebSockets.", counts.connections
        )
        yield GaugeMetricFamily(
            "urok_websocket_relayed",
            "Open call WebSockets relayed to their lesson's node.",
            counts.relayed,
        )
        relays = _counter("urok_websocket_relays", "Call WebSockets relayed to another node.")
        relays.add_metric([], counts.relays)
        yield relays
        messages = _counter(
            "urok_websocket_messages_received",
            "Call WebSocket messages received and parsed, by type (unknown: other).",
            ["type"],
        )
        for kind, count in counts.messages.items():
            messages.add_metric([kind], count)
        yield messages
        errors = _counter(
            "urok_websocket_errors", "Errors answered on call WebSockets, by code.", ["code"]
        )
        for code, count in sorted(counts.errors.items()):
            errors.add_metric([code], count)
        yield errors
        resumes = _counter(
            "urok_resumes", "Resume requests (a dropped connection taken over).", ["result"]
        )
        resumes.add_metric(["resumed"], counts.resumes)
        resumes.add_metric(["refused"], counts.resumes_refused)
        yield resumes
        restarts = _counter(
            "urok_ice_restarts",
            "Media connections replaced for a broken path (ice_restart), by connection.",
            ["connection"],
        )
        for connection, count in counts.ice_restarts.items():
            restarts.add_metric([connection], count)
        yield restarts
        yield GaugeMetricFamily(
            "urok_draining", "1 while the node takes no new calls.", int(self.app[HEALTH].draining)
        )
        yield GaugeMetricFamily(
            "urok_event_loop_lag_recent_max_seconds",
            "The worst event loop lag of the last few seconds (what GET /readyz judges).",
            self.app[HEALTH].loop_lag.recent_worst,
        )
        yield from _gc_pauses()

    def _recordings_and_webhooks(self) -> Iterator[Metric]:
        service, sender = self.app[RECORDINGS], self.app[WEBHOOKS]
        yield GaugeMetricFamily("urok_recordings_running", "Recordings running.", service.running)
        finished = _counter(
            "urok_recordings_finished", "Recordings finished, by outcome.", ["status"]
        )
        finished.add_metric(["ready"], service.finished)
        finished.add_metric(["failed"], service.failed)
        yield finished
        deliveries = _counter(
            "urok_webhook_deliveries", "Webhook events to journals, by outcome.", ["result"]
        )
        deliveries.add_metric(["delivered"], sender.delivered)
        deliveries.add_metric(["failed"], sender.failed)
        deliveries.add_metric(["dropped"], sender.dropped)
        yield deliveries


def _forwarding(totals: ForwardingTotals) -> Iterator[Metric]:
    """The media plane's totals (sfu/stats.py)."""

    def get(name: str) -> int:
        return int(getattr(totals, name))

    packets = _counter("urok_media_packets", "Media packets forwarded.", ["direction"])
    packets.add_metric(["incoming"], get("packets_in"))
    packets.add_metric(["outgoing"], get("packets_out"))
    yield packets
    octets = _counter("urok_media_bytes", "RTP payload bytes forwarded.", ["direction"])
    octets.add_metric(["incoming"], get("bytes_in"))
    octets.add_metric(["outgoing"], get("bytes_out"))
    yield octets
    plis = _counter(
        "urok_pli",
        "Keyframe requests: incoming from subscribers, outgoing to publishers.",
        ["direction"],
    )
    plis.add_metric(["incoming"], get("plis_received"))
    plis.add_metric(["outgoing"], get("keyframe_requests_sent"))
    yield plis
    for name, field, doc in (
        ("urok_nack", "nacks_received", "NACK messages from subscribers."),
        ("urok_nacked_packets", "nacked_packets", "Packets subscribers' NACKs asked for."),
        ("urok_retransmitted_packets", "retransmitted_packets", "Packets resent after a NACK."),
        ("urok_retransmitted_bytes", "retransmitted_bytes", "Bytes resent after a NACK."),
        (
            "urok_receiver_reported_packets_lost",
            "receiver_reported_lost",
            "Packets subscribers' receiver reports say were lost on the way to them.",
        ),
        ("urok_pacer_dropped_packets", "paced_drops", "Video packets the pacer dropped."),
    ):
        yield CounterMetricFamily(name, doc, get(field))
    yield _latency(totals.forward_latency)


def _latency(latency: LatencyBuckets) -> Metric:
    """Bucket counts the media plane kept (sfu/latency.py), read at scrape time."""
    return HistogramMetricFamily(
        "urok_forward_latency_seconds",
        "From a media packet's arrival at the SFU to its send to a subscriber (after the "
        f"pacer), one packet in {SAMPLE_EVERY} per subscriber timed.",
        buckets=[(floatToGoString(bound), count) for bound, count in latency.cumulative()],
        sum_value=latency.total_seconds,
    )


def _authorised(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given_bytes = given.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode())


def _exposition(request: web.Request, registry: CollectorRegistry) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(
        body=encoder(registry),
        headers={"Content-Type": content_type, "Cache-Control": "no-store"},
    )


def handler_for(
    main: web.Application, separate_port: bool
) -> Callable[[web.Request], Awaitable[web.Response]]:
    settings = main[SETTINGS].metrics

    async def metrics(request: web.Request) -> web.Response:
        # Off, or served on its own port: the main port does not have it.
        if not settings.enabled or (settings.port is not None and not separate_port):
            raise web.HTTPNotFound()
        if not _authorised(request, settings.token):
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "metrics need the bearer token"}},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return _exposition(request, main[REGISTRY])

    return metrics


async def _separate_listener(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].metrics
    if settings.port is None:
        yield
        return
    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", handler_for(app, separate_port=True))
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def setup(app: web.Application) -> None:
    """Needs every key NodeCollector reads; registers GET /metrics (404 unless enabled)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(app))
    lag = Histogram(
        "urok_event_loop_lag_seconds",
        "How late the event loop ran a timer (sampled every 0.25 s).",
        buckets=LOOP_LAG_BUCKETS,
        registry=registry,
    )
    app[HEALTH].loop_lag.on_sample = lag.observe
    app[REGISTRY] = registry
    app.router.add_get("/metrics", handler_for(app, separate_port=False), name="metrics")
    app.cleanup_ctx.append(_separate_listener)


def _gc_pauses() -> Iterator[Metric]:
    """The collector's pauses, once `urok serve` tuned it (signalling/gc_tuning.py)."""
    pauses = gc_tuning.PAUSES
    if not pauses.installed:
        return
    count = _counter("urok_gc_collections", "Garbage collections, by generation.", ["generation"])
    seconds = _counter(
        "urok_gc_pause_seconds", "Time the process stood still collecting.", ["generation"]
    )
    longest = GaugeMetricFamily(
        "urok_gc_pause_longest_seconds", "The longest collection so far.", labels=["generation"]
    )
    for generation in range(3):
        label = [str(generation)]
        count.add_metric(label, pauses.count[generation])
        seconds.add_metric(label, pauses.seconds[generation])
        longest.add_metric(label, pauses.longest[generation])
    yield from (count, seconds, longest)
