"""sfu/report_clock.py: one timer for every forwarding sender's and receiver's reports
in a loop.

The clock alone with senders that count their reports, then real forwarding
senders and consumers, and real forwarding receivers (tests/sfu_support.py's wire
records what they send).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable

import pytest
from aiortc.rtp import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket

from sfu import report_clock as clock_module
from sfu.report_clock import BUCKETS, TICK_S, ReportClock, report_clock
from tests.sfu_support import WireRecorder, make_consumer, make_producer, publish, rtp

PERIOD_S = BUCKETS * TICK_S
FAST_TICK_S = 0.05  # the clock alone runs faster than in service: a shorter test
FAST_PERIOD_S = BUCKETS * FAST_TICK_S


@pytest.fixture
def fast_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "TICK_S", FAST_TICK_S)


class Counting:
    """A sender that counts its reports (and fails on demand, or has nothing to say)."""

    def __init__(self, fail: type[Exception] | None = None, quiet: bool = False) -> None:
        self.times: list[float] = []
        self.sent = 0
        self.fail = fail
        self.quiet = quiet

    def send_report(self) -> Awaitable[None] | None:
        self.times.append(asyncio.get_running_loop().time())
        return None if self.quiet else self._send()

    async def _send(self) -> None:
        if self.fail is not None:
            raise self.fail("gone")
        self.sent += 1


async def test_every_sender_reports_once_a_period_spread_over_the_ticks(fast_clock: None) -> None:
    clock = ReportClock()
    senders = [Counting() for _ in range(200)]
    for sender in senders:
        clock.add(sender)
    await asyncio.sleep(3 * FAST_PERIOD_S + FAST_TICK_S / 2)
    for sender in senders:
        assert len(sender.times) in (2, 3)  # 3, or 2 when this tick came late
        gaps = [b - a for a, b in zip(sender.times, sender.times[1:], strict=False)]
        assert all(abs(gap - FAST_PERIOD_S) < 0.5 * FAST_PERIOD_S for gap in gaps)
    # Spread: no tick carries the reports of most senders (each bucket ~20 of 200).
    ticks = Counter(round(sender.times[0] / FAST_TICK_S) for sender in senders)
    assert len(ticks) >= BUCKETS // 2 and max(ticks.values()) < 60
    for sender in senders:
        clock.remove(sender)
    assert not clock.running and len(clock) == 0


async def test_a_removed_sender_stops_and_an_empty_clock_has_no_timer(fast_clock: None) -> None:
    clock = ReportClock()
    kept, removed = Counting(), Counting()
    clock.add(kept)
    clock.add(removed)
    clock.add(kept)  # twice is once
    assert len(clock) == 2 and clock.running
    clock.remove(removed)
    clock.remove(removed)
    await asyncio.sleep(2 * FAST_PERIOD_S + FAST_TICK_S)
    assert removed.times == [] and len(kept.times) in (1, 2)
    clock.remove(kept)
    assert not clock.running
    clock.add(kept)  # a new sender starts it again
    assert clock.running
    clock.remove(kept)


async def test_a_failing_sender_does_not_stop_the_others(fast_clock: None) -> None:
    clock = ReportClock()
    closing, broken, fine = Counting(ConnectionError), Counting(ValueError), Counting()
    for sender in (closing, broken, fine):
        clock.add(sender)
    await asyncio.sleep(3 * FAST_PERIOD_S + FAST_TICK_S)
    # Each reported again after the failures of the round before (3, or 2 if late).
    assert all(len(s.times) >= 2 for s in (closing, broken, fine))
    for sender in (closing, broken, fine):
        clock.remove(sender)


async def test_a_member_with_nothing_to_report_is_asked_and_passed_over(
    fast_clock: None, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ReportClock()
    quiet, talking = Counting(quiet=True), Counting()
    clock.add(quiet)
    clock.add(talking)
    with caplog.at_level(logging.ERROR, logger="sfu.report_clock"):
        await asyncio.sleep(2 * FAST_PERIOD_S + FAST_TICK_S)
    # Asked every period like the others; nothing awaited for it, nothing failed.
    assert len(quiet.times) >= 2 and quiet.sent == 0
    assert talking.sent == len(talking.times) >= 2
    assert not [r for r in caplog.records if r.name == "sfu.report_clock"]
    clock.remove(quiet)
    clock.remove(talking)


async def test_forwarding_senders_report_through_one_clock_and_stop_with_their_sender() -> None:
    wires = [WireRecorder() for _ in range(3)]
    producer, receiver = await make_producer(WireRecorder())
    consumers = [await make_consumer(wire) for wire in wires]
    silent = await make_consumer(WireRecorder())  # nothing sent: nothing to report
    assert silent.sender.send_report() is None  # asked without a coroutine
    for consumer in consumers:
        consumer.attach(producer)
    clock = report_clock()
    assert len(clock) == 0 and not clock.running  # nothing sent or received: no member
    assert clock is clock_module.report_clock()  # one per loop
    await publish(receiver, rtp(1, 90000))
    # The 3 senders that sent and the producer's receiver; the silent sender stays out.
    assert len(clock) == 4 and clock.running
    await asyncio.sleep(PERIOD_S + TICK_S)
    for wire, consumer in zip(wires, consumers, strict=True):
        reports = [p for p in wire.rtcp() if isinstance(p, RtcpSrPacket)]
        assert reports and {r.ssrc for r in reports} == {consumer.ssrc}
        assert reports[0].sender_info.packet_count == 1
    assert silent.sender.transport.sent == []  # type: ignore[attr-defined]
    await consumers[0].sender.stop()
    stopped, going_on = len(wires[0].sent), len(wires[1].rtcp())
    await asyncio.sleep(PERIOD_S + TICK_S)
    assert len(wires[0].sent) == stopped  # stopped: no more reports
    assert len(wires[1].rtcp()) > going_on  # the others go on
    for consumer in [*consumers[1:], silent]:
        await consumer.sender.stop()
    await receiver.stop()
    assert not clock.running


async def test_forwarding_receivers_report_what_they_received_once_a_period(
    fast_clock: None,
) -> None:
    wire, quiet_wire = WireRecorder(), WireRecorder()
    _, receiver = await make_producer(wire)
    _, quiet = await make_producer(quiet_wire, producer_id="pr_quiet")  # receives nothing
    clock = report_clock()
    assert len(clock) == 0  # aiortc's RTCP tasks are not started; nothing received yet
    assert quiet.send_report() is None  # nothing to report: asked without a coroutine
    await publish(receiver, rtp(1, 0), rtp(2, 3000), rtp(4, 9000))  # 3 never came
    assert len(clock) == 1 and clock.running  # joined with its first packet
    ntp = 0x1234_5678_9ABC_DEF0
    info = RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=0, packet_count=4, octet_count=40)
    await receiver._handle_rtcp_packet(RtcpSrPacket(ssrc=4242, sender_info=info))
    await asyncio.sleep(3 * FAST_PERIOD_S + FAST_TICK_S / 2)
    reports = [p for p in wire.rtcp() if isinstance(p, RtcpRrPacket)]
    assert len(reports) in (2, 3)  # one a period (2: the first tick of its bucket came late)
    assert {p.ssrc for p in reports} == {1111}  # the receiver's RTCP SSRC
    (block,) = reports[-1].reports
    assert (block.ssrc, block.highest_sequence, block.packets_lost) == (4242, 4, 1)
    assert block.lsr == (ntp >> 16) & 0xFFFFFFFF and block.dlsr > 0  # the SR echoed
    assert quiet_wire.sent == []  # nothing received: nothing to report
    await receiver.stop()
    count = len(wire.sent)
    assert len(clock) == 0 and not clock.running
    await publish(receiver, rtp(5, 12000, ssrc=4343))  # a late new stream: not back on
    await asyncio.sleep(FAST_PERIOD_S + FAST_TICK_S)
    assert len(wire.sent) == count  # stopped: no more reports
    assert len(clock) == 0
    await quiet.stop()
