"""sfu/bandwidth.py: the subscriber's estimate from REMB (through a real
ForwardingSender's RTCP handling) and, without REMB, the loss-based bound; the
pacer following it; abs-send-time stamped on what a consumer sends."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from sfu.bandwidth import ABS_SEND_TIME_URI, BandwidthEstimator, EstimatorSettings
from sfu.pacer import VIDEO, Pacer, PacerSettings
from sfu.rtp_header import rtp_header
from tests.sfu_support import VP8_OUT, WireRecorder, make_consumer, make_producer, publish, rtp


def remb(bitrate: int, *ssrcs: int) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=9, media_ssrc=0, fci=pack_remb_fci(bitrate, list(ssrcs))
    )


def block(ssrc: int, fraction_lost: float, highest: int) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=round(fraction_lost * 256),
        packets_lost=0,
        highest_sequence=highest,
        jitter=0,
        lsr=0,
        dlsr=0,
    )


class Sent:
    """What the pacer says the subscriber's video is being sent (bps)."""

    def __init__(self, bps: float) -> None:
        self.bps = bps

    def __call__(self) -> float:
        return self.bps


# --------------------------------------------------------------------------- REMB


async def test_a_remb_reaching_a_sender_becomes_the_estimate() -> None:
    consumer = await make_consumer(WireRecorder())
    estimator = BandwidthEstimator(Sent(0))
    consumer.sender.feedback = estimator
    assert estimator.estimate_bps(0.0) is None  # nothing known: not limited
    await consumer.sender._handle_rtcp_packet(remb(750_000, consumer.ssrc))
    assert estimator.remb_bps == 750_000 and estimator.rembs_received == 1
    assert estimator.remb_at is not None
    assert estimator.estimate_bps(estimator.remb_at + 1.0) == 750_000
    # Application-layer feedback that is not REMB is left alone.
    other = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=9, media_ssrc=0, fci=b"ABCD" + bytes(8))
    await consumer.sender._handle_rtcp_packet(other)
    assert estimator.rembs_received == 1


def test_a_remb_goes_stale() -> None:
    estimator = BandwidthEstimator(Sent(0), EstimatorSettings(remb_fresh_for=3.0))
    estimator.on_remb(1_200_000, 10.0)
    assert estimator.estimate_bps(12.9) == 1_200_000
    assert estimator.estimate_bps(13.5) is None


async def test_receiver_reports_reach_the_estimator_for_video_only() -> None:
    video = await make_consumer(WireRecorder())
    audio = await make_consumer(WireRecorder(), kind="audio")
    estimator = BandwidthEstimator(Sent(1_000_000), EstimatorSettings(loss_window=1.0))
    video.sender.feedback = audio.sender.feedback = estimator
    for second in range(3):
        highest = 1000 + 100 * second
        rr = RtcpRrPacket(
            ssrc=9, reports=[block(video.ssrc, 0.25, highest), block(audio.ssrc, 0.5, highest)]
        )
        await video.sender._handle_rtcp_packet(rr)
        await audio.sender._handle_rtcp_packet(rr)
        estimator._window_start = -10.0  # close the window with the next report
    # Only the video block counted: 25 % loss, not 50 %.
    assert estimator.loss == pytest.approx(0.25, abs=0.01)
    assert estimator.loss_bound_bps is not None


# --------------------------------------------------------------------------- loss bound


def feed(estimator: BandwidthEstimator, loss: float, seconds: int, start: float) -> float:
    """Reports of two video streams, 100 packets each a second, with `loss`, every
    0.5 s from `start` (the next second's first report closes each 1 s window)."""
    highest = estimator._streams and {s: v.highest_sequence for s, v in estimator._streams.items()}
    highest = highest or {1: 5000, 2: 7000}
    now = start
    for step in range(seconds * 2):
        now = start + step * 0.5
        for ssrc in highest:
            highest[ssrc] += 50
            estimator.on_report(ssrc, round(loss * 256), highest[ssrc], now)
    return now


def test_heavy_loss_bounds_it_at_what_was_delivered_and_no_loss_raises_it() -> None:
    sent = Sent(2_000_000)
    estimator = BandwidthEstimator(sent)
    now = feed(estimator, 0.01, 3, 0.0)
    assert estimator.loss_bound_bps is None  # no heavy loss yet: no bound
    now = feed(estimator, 0.20, 1, now + 0.5)
    assert estimator.loss_bound_bps is None  # its window is not closed yet
    now = feed(estimator, 0.20, 1, now + 0.5)
    first = estimator.loss_bound_bps
    assert first == pytest.approx(2_000_000 * 0.8, rel=0.02)  # what arrived: sent x (1 - loss)
    assert first is not None
    now = feed(estimator, 0.05, 1, now + 0.5)  # closes the second window of 20 %
    # What was delivered, again: a link that keeps losing is not taken for ever smaller.
    assert estimator.loss_bound_bps == pytest.approx(first, rel=0.02)
    sent.bps = 1_000_000  # the next window of 20 % sent half as much (cut, reports lag)
    now = feed(estimator, 0.20, 1, now + 0.5)
    now = feed(estimator, 0.05, 1, now + 0.5)
    # The median of the last windows with heavy loss: one lagging window does not sink it.
    assert estimator.loss_bound_bps == pytest.approx(first, rel=0.02)
    held = estimator.loss_bound_bps
    now = feed(estimator, 0.05, 3, now + 0.5)  # between 2 and 10 %: holds
    assert estimator.loss_bound_bps == held
    assert estimator.estimate_bps(now) == held
    now = feed(estimator, 0.0, 5, now + 0.5)
    # +8 % a second, about five seconds of it.
    assert held * 1.3 <= estimator.loss_bound_bps <= held * 1.6
    feed(estimator, 0.0, 60, now + 0.5)
    assert estimator.loss_bound_bps == pytest.approx(2 * 1_000_000 + 500_000, rel=0.01)


def test_sent_without_loss_raises_the_bound_to_more_than_that_at_once() -> None:
    sent = Sent(2_000_000)
    estimator = BandwidthEstimator(sent)
    now = feed(estimator, 0.5, 2, 0.0)
    assert estimator.loss_bound_bps == pytest.approx(1_000_000, rel=0.02)
    sent.bps = 1_500_000  # carried without loss: the link has at least that
    feed(estimator, 0.0, 2, now + 0.5)
    assert estimator.loss_bound_bps == pytest.approx(1.2 * 1_500_000, rel=0.02)


def test_the_pacer_is_held_to_what_was_delivered_whatever_the_remb() -> None:
    estimator = BandwidthEstimator(Sent(2_000_000))
    now = feed(estimator, 0.5, 2, 0.0)
    bound = estimator.loss_bound_bps
    assert bound is not None
    estimator.on_remb(10_000_000, now)  # a REMB that jumps (an aiortc receiver's can)
    assert estimator.estimate_bps(now) == 10_000_000
    assert estimator.delivered_bps(now) == bound
    pacer = Pacer(PacerSettings())
    pacer.follow(estimator.estimate_bps, estimator.delivered_bps)
    pacer.admit(100, VIDEO, now)
    assert pacer.pacing_bps == pytest.approx(bound)  # not twice the REMB


def test_a_growing_queue_holds_the_bound_to_what_is_sent() -> None:
    sent = Sent(800_000)
    estimator = BandwidthEstimator(sent)
    estimator.on_queue_growing()
    assert estimator.loss_bound_bps == 800_000
    sent.bps = 900_000
    estimator.on_queue_growing()  # never raises it
    assert estimator.loss_bound_bps == 800_000
    sent.bps = 100_000  # a quiet half second: 15 % off at most, each time
    estimator.on_queue_growing()
    assert estimator.loss_bound_bps == pytest.approx(680_000)


def test_with_remb_the_loss_bound_does_not_count() -> None:
    estimator = BandwidthEstimator(Sent(2_000_000))
    now = feed(estimator, 0.3, 3, 0.0)
    assert estimator.loss_bound_bps is not None and estimator.loss_bound_bps < 2_000_000
    estimator.on_remb(2_500_000, now)
    assert estimator.estimate_bps(now) == 2_500_000
    assert estimator.estimate_bps(now + 10) == estimator.loss_bound_bps  # REMB stopped


def test_the_bound_never_falls_below_the_minimum() -> None:
    estimator = BandwidthEstimator(Sent(300_000), EstimatorSettings(min_bps=64_000))
    feed(estimator, 0.9, 30, 0.0)
    assert estimator.loss_bound_bps == 64_000


# --------------------------------------------------------------------------- the pacer


def test_the_pacer_follows_the_estimate_without_the_fixed_floor() -> None:
    estimate: list[float | None] = [None]
    pacer = Pacer(PacerSettings(floor_bps=2_000_000, estimate_headroom=1.5, estimate_floor_bps=8e5))
    pacer.follow(lambda now: estimate[0])
    pacer.admit(1000, VIDEO, 0.0)
    assert pacer.pacing_bps == 2_000_000  # nothing known: the floor
    estimate[0] = 1_000_000
    pacer.admit(1000, VIDEO, 1.0)
    assert pacer.pacing_bps == pytest.approx(1_500_000)
    estimate[0] = 200_000  # a collapsed estimate still lets a keyframe through
    pacer.admit(1000, VIDEO, 2.0)
    assert pacer.pacing_bps == pytest.approx(800_000)
    estimate[0] = None
    pacer.admit(1000, VIDEO, 3.0)
    assert pacer.pacing_bps >= 2_000_000
    estimate[0] = 200_000
    pacer.follow(None)  # no longer following: by what was sent, with the floor
    pacer.admit(1000, VIDEO, 4.0)
    assert pacer.estimate_bps is None and pacer.pacing_bps >= 2_000_000


def test_with_an_estimate_audio_is_never_held_and_uses_no_video_budget() -> None:
    pacer = Pacer(PacerSettings())
    pacer.follow(lambda now: 1_000_000)
    pacer.admit(100, VIDEO, 0.0)  # the first window: the estimate is read
    for i in range(200):  # 2 Mbit/s of audio in a 100 ms burst: all of it goes
        assert pacer.admit(1250, 0, 0.01 + i * 0.0005)
    assert pacer.admit(1200, VIDEO, 0.12)  # and video still has its budget


# --------------------------------------------------------------------------- abs-send-time


async def test_what_a_consumer_sends_carries_abs_send_time_when_negotiated() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire, start=False)
    extension = RTCRtpHeaderExtensionParameters(id=5, uri=ABS_SEND_TIME_URI)
    await consumer.sender.send(
        RTCRtpSendParameters(codecs=[VP8_OUT], headerExtensions=[extension], muxId="0")
    )
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x00key"), rtp(2, 0, b"\x00\x00more"))
    assert len(wire.sent) == 2
    for data in wire.sent:
        assert data[0] == 0x90 and data[12:16] == b"\xbe\xde\x00\x01"
        assert data[16] == (5 << 4) | 2  # id 5, three bytes
    stamps = [int.from_bytes(d[17:20], "big") for d in wire.sent]
    assert all(0 < s < 1 << 24 for s in stamps)
    # The payload is untouched behind the extension.
    assert [p.payload for p in wire.rtp()] == [b"\x10\x00key", b"\x00\x00more"]
    assert consumer.link.bytes_sent == len(b"\x10\x00key") + len(b"\x00\x00more")


async def test_a_queued_packet_is_stamped_when_it_goes() -> None:
    extension = RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI)
    wire = WireRecorder()
    consumer = await make_consumer(wire, start=False)
    await consumer.sender.send(
        RTCRtpSendParameters(codecs=[VP8_OUT], headerExtensions=[extension], muxId="0")
    )
    header = rtp_header(VIDEO_PT := 97, 1, 0, consumer.ssrc, consumer._ast_element)
    assert len(header) == 20 and VIDEO_PT == 97
    pending = consumer.transmit(header + b"payload", VIDEO)
    if pending is not None:
        await pending
    sent = wire.sent[-1]
    stamp = int.from_bytes(sent[17:20], "big")
    assert stamp != 0  # the header was built with 0; transmit stamped the time of sending


async def test_without_the_extension_the_header_stays_twelve_bytes() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x00key"))
    assert wire.sent[0][0] == 0x80 and wire.sent[0][12:] == b"\x10\x00key"


def test_a_link_a_probe_proved_is_no_longer_bounded_by_what_it_delivered() -> None:
    sent = Sent(2_000_000)
    estimator = BandwidthEstimator(sent)
    estimator.on_link_proven(4_000_000)
    assert estimator.loss_bound_bps is None  # nothing bounded it: nothing to lift
    now = feed(estimator, 0.5, 3, 0.0)
    assert estimator.loss_bound_bps == pytest.approx(1_000_000, rel=0.01)
    sent.bps = 600_000  # cut to fit; then a probe passed
    estimator.on_link_proven(4_000_000)
    assert estimator.delivered_bps(now) == 4_600_000
    pacer = Pacer(PacerSettings())
    pacer.follow(estimator.estimate_bps, estimator.delivered_bps)
    pacer.admit(100, VIDEO, now)
    assert pacer.pacing_bps == pytest.approx(4_600_000)  # a climb is not queued away
    # Heavy loss again: what the link delivers now, not the median with the old windows.
    sent.bps = 3_000_000
    feed(estimator, 0.5, 2, now + 0.5)
    assert estimator.loss_bound_bps == pytest.approx(1_500_000, rel=0.01)


def test_a_stream_given_back_reports_the_loss_from_before_its_pause_for_nothing() -> None:
    """The last packets before a cut were lost on the full link; the receiver reports
    them only once the stream is given back (a whole keyframe: 30-40 % of that report's
    packets), on a link that may have been lifted meanwhile."""
    estimator = BandwidthEstimator(Sent(1_000_000))
    now = feed(estimator, 0.0, 2, 0.0)
    stream = estimator._streams[1]
    held_at = (stream.highest_sequence + 11) & 0xFFFF  # 11 sent before the pause, lost
    estimator.on_resumed(1, held_at)
    estimator.on_resumed(99, 5)  # a stream never reported: nothing to do
    before, highest = stream.covered, stream.highest_sequence
    estimator.on_report(1, round(0.4 * 256), highest + 30, now + 0.1)
    assert stream.covered == before and stream.rebase_until is None
    estimator.on_report(1, round(0.02 * 256), highest + 50, now + 0.2)
    assert stream.covered == before + 50 - 30
    # The next windows close without heavy loss: no bound from the old loss.
    feed(estimator, 0.0, 2, now + 1.0)
    assert estimator.loss < 0.1 and estimator.loss_bound_bps is None
