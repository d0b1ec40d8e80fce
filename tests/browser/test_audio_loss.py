"""Audio survives random downlink loss (issue 16), live: Chromium's RED and a bot's plain
Opus reach a Chromium subscriber as RED two packets deep, and a control without RED.

Two publishers on loopback (Chromium as it is, which sends RED; an aiortc bot, plain
Opus), two Chromium subscribers on one test host behind a link with 3 %, then 10 %
random downlink loss (bench/links.py): one takes RED, the control does not. What the
listener hears filled in (concealed / played samples, bench/audio_loss.py) must stay
under the issue's targets with RED, while the control shows the loss is real.
"""

from __future__ import annotations

from collections import Counter

import pytest
from playwright.async_api import Page

from bench.audio_loss import (
    NO_RED_JS,
    PUBLISHERS,
    SUBSCRIBERS,
    Step,
    measure,
    publish_opus_bot,
    report,
)
from bench.links import Host, LinkSpec, Testbed
from sfu.producer import CachedPacket, Producer
from signalling.keys import CALLS
from tests.browser.harness import (
    CHROMIUM,
    Server,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser

# Audio loss after recovery the issue asks for, by random loss on the link (percent).
TARGETS = {3.0: 0.5, 10.0: 3.0}
# Each loss rate: 24 windows of 1 s one after the other. The steady figure (the windows
# without a stall: on this shared machine playout stops now and then for 60-450 ms at
# once, with loss or without, while a packet lost for good is 20 ms) is held to the
# target; at least half the windows must be steady, and over the whole step RED must
# leave fewer than half the control's concealment episodes (a stall is one episode, as
# long as it lasts; a packet lost for good is one too: CI once saw RED's 3 stalls of
# 350 ms outweigh the control's 67 lost packets in concealed samples).
WINDOW_S = 1.0
WINDOWS = 24
# Before measuring, the jitter buffers settle: a 5 s window at 0 % loss must conceal
# under this on every stream (a machine too busy to play audio cannot measure loss).
QUIET_CONCEALED = 1.0
CONNECTIONS_JS = """() => window.urok.pcs && Object.fromEntries(Object.entries(window.urok.pcs)
  .filter(([, pc]) => pc).map(([name, pc]) => [name, pc.connectionState]))"""


def codecs_received(server: Server, participant_id: str) -> Counter[str]:
    """Tap the participant's microphone producer for what reaches the server."""
    call = next(iter(server.app[CALLS].calls.values()))
    producer = call.participants[participant_id].producers["microphone"]
    seen: Counter[str] = Counter()

    def tap(_: Producer, entry: CachedPacket) -> None:
        seen[entry.codec.mimeType.lower()] += 1

    producer.add_tap(tap)
    return seen


def red_taken(server: Server, participant_id: str) -> list[int | None]:
    """The RED payload type of each audio consumer of a subscriber (None: plain Opus)."""
    call = next(iter(server.app[CALLS].calls.values()))
    subscriber = call.participants[participant_id].subscriber
    assert subscriber is not None
    return [c.red_payload_type for c in subscriber.consumers if c.kind == "audio"]


def media_counters(server: Server) -> dict[str, object]:
    """What the server received and sent, per participant: for a failure's message."""
    call = next(iter(server.app[CALLS].calls.values()))
    return {
        pid: {
            "in": {s: p.packets_received for s, p in person.producers.items()},
            "out": [c.packets_sent for c in person.subscriber.consumers]
            if person.subscriber
            else None,
        }
        for pid, person in call.participants.items()
    }


async def settle(server: Server, pages: list[Page], publishers: dict[str, str], host: Host) -> Step:
    """Wait (bounded) until playout is steady at 0 % loss; the last quiet window."""
    subscribers = dict(zip(SUBSCRIBERS, pages[1:], strict=True))
    windows = []
    for _ in range(8):
        (step,) = await measure(subscribers, publishers, host, [0.0], 5.0, settle=0.0)
        windows.append(step.streams)
        worst = max((w.concealed_percent for w in step.streams.values()), default=100.0)
        if len(step.streams) == 4 and worst < QUIET_CONCEALED:
            return step
    states = [await page.evaluate(CONNECTIONS_JS) for page in pages]
    raise AssertionError(
        f"audio never played steadily without loss: {windows}; connections {states}; "
        f"server {media_counters(server)}"
    )


async def test_red_keeps_audio_through_random_downlink_loss() -> None:
    with Testbed() as bed:
        host = bed.add_host(LinkSpec())
        async with running_server(host=host.gateway) as server, playwright() as pw:
            roster = [{"id": f"s-{i}", "name": f"Ученик {i}", "role": "student"} for i in (1, 2, 3)]
            lesson = await server.create_lesson(roster=roster)
            people = [("t-1", "teacher"), ("s-2", "student"), ("s-3", "student")]
            urls = [await server.join_url(lesson["id"], u, u, role) for u, role in people]
            token = await server.token(lesson["id"], "s-1", "s-1", "student")
            bot = await publish_opus_bot(server.base_url, token, 180)
            try:
                origin = server.base_url
                remote = host.executable(CHROMIUM)
                async with chromiums(
                    pw,
                    {"origin": origin},
                    {"executable": remote, "origin": origin},
                    {"executable": remote, "origin": origin},
                ) as contexts:
                    control = contexts[2]
                    await control.add_init_script(NO_RED_JS)
                    pages = [await new_page(c) for c in contexts]
                    for page, url in zip(pages, urls, strict=True):
                        await join_call(page, url, video=False)
                    ids = [await page.evaluate("window.urok.self.id") for page in pages]
                    publishers = dict(zip((ids[0], bot.id), PUBLISHERS, strict=True))
                    subscribers = dict(zip(SUBSCRIBERS, pages[1:], strict=True))

                    # What was negotiated: Chromium sends RED, the bot plain Opus; one
                    # subscriber took RED for both, the control for neither.
                    red_in, opus_in = (
                        codecs_received(server, ids[0]),
                        codecs_received(server, bot.id),
                    )
                    quiet = await settle(server, pages, publishers, host)
                    assert set(red_in) == {"audio/red"} and red_in["audio/red"] > 100
                    assert set(opus_in) == {"audio/opus"} and opus_in["audio/opus"] > 100
                    assert len(red_taken(server, ids[1])) >= 2
                    assert None not in red_taken(server, ids[1])
                    assert set(red_taken(server, ids[2])) == {None}

                    steps = await measure(
                        subscribers, publishers, host, list(TARGETS), WINDOW_S, WINDOWS
                    )
                    table = report([quiet, *steps], WINDOW_S)
                    print(table)
            finally:
                await bot.leave()
    for step in steps:
        assert step.link_loss_percent > step.loss_percent / 2, table
        for publisher in PUBLISHERS:
            with_red = step.streams["red", publisher]
            without = step.streams["control", publisher]
            # The control hears the loss; with RED, little of it is left.
            assert without.lost_percent > step.loss_percent / 2, table
            assert len(step.steady(("red", publisher))) >= WINDOWS / 2, table
            steady = step.steady_concealed(("red", publisher))
            assert steady < TARGETS[step.loss_percent], table
            assert with_red.events < without.events / 2, table
