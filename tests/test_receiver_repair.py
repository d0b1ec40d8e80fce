"""bench/receiver_repair.py: an aiortc video receiver's losses repaired as a
browser's are: missing packets asked again, a hole that stays skipped to a keyframe.

aiortc's own jitter buffer and NACK generator (the state the repair reads), in a
stand-in for the receiver that records the RTCP it would send.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from bench.receiver_repair import (
    INTERNALS,
    JITTER_BUFFER,
    NACK_GENERATOR,
    REMOTE_STREAMS,
    RTX_SSRC,
    LossRepair,
)
from tests.sfu_support import WireRecorder

SSRC = 1234
KEY = b"\x10\x00"  # VP8 descriptor: start of partition 0; payload header: key frame
DELTA = b"\x10\x01"
MIDDLE = b"\x00\x01"  # not the start of a partition


class Receiver:
    """What LossRepair reads of an aiortc RTCRtpReceiver, and what it sends."""

    def __init__(self) -> None:
        setattr(self, NACK_GENERATOR, NackGenerator())
        setattr(self, JITTER_BUFFER, JitterBuffer(capacity=128, is_video=True))
        setattr(self, REMOTE_STREAMS, {SSRC: object()})
        setattr(self, RTX_SSRC, {})
        self.nacks: list[list[int]] = []
        self.plis = 0
        self.frames = 0

    def receive(self, seq: int, ts: int, payload: bytes) -> None:
        """A packet as aiortc's receiver handles it: NACK generator, then jitter buffer."""
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, ssrc=SSRC)
        packet.payload = payload
        packet._data = payload  # type: ignore[attr-defined]  # aiortc's depayloaded bytes
        getattr(self, NACK_GENERATOR).add(packet)
        _, frame = getattr(self, JITTER_BUFFER).add(packet)
        self.frames += frame is not None

    async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:
        assert media_ssrc == SSRC
        self.nacks.append(lost)

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        assert media_ssrc == SSRC
        self.plis += 1


def frames(receiver: Receiver, first_seq: int, first_ts: int, count: int, key: bool) -> None:
    """`count` frames of two packets each."""
    for n in range(count):
        seq, ts = first_seq + 2 * n, first_ts + 3000 * n
        receiver.receive(seq, ts, KEY if key and n == 0 else DELTA)
        receiver.receive(seq + 1, ts, MIDDLE)


async def test_a_packet_still_missing_is_asked_again_until_it_comes() -> None:
    receiver = Receiver()
    repair = LossRepair(receiver, interval=0.1)  # type: ignore[arg-type]
    frames(receiver, 100, 0, 2, key=True)
    receiver.receive(105, 6000, MIDDLE)  # 104 lost
    await repair.step(0.0)
    assert receiver.nacks == []  # aiortc asked when it saw the gap; not again at once
    await repair.step(0.1)
    await repair.step(0.2)
    assert receiver.nacks == [[104], [104]]
    receiver.receive(104, 6000, DELTA)  # the retransmission came
    await repair.step(0.3)
    assert receiver.nacks == [[104], [104]] and repair.renacked == 2


async def test_it_asks_at_most_max_retries_times() -> None:
    receiver = Receiver()
    repair = LossRepair(receiver, interval=0.1, max_retries=3)  # type: ignore[arg-type]
    frames(receiver, 100, 0, 1, key=True)
    receiver.receive(103, 3000, MIDDLE)
    for n in range(10):
        await repair.step(0.1 * n)
    assert receiver.nacks == [[102]] * 3


async def test_a_hole_that_stays_is_skipped_to_the_next_keyframe() -> None:
    receiver = Receiver()
    repair = LossRepair(receiver, interval=0.1, give_up=0.4, pli_every=1.0)  # type: ignore[arg-type]
    frames(receiver, 100, 0, 3, key=True)
    decoded = receiver.frames
    receiver.receive(107, 9000, MIDDLE)  # 106 lost for good
    frames(receiver, 108, 12000, 3, key=False)  # frames behind it wait
    await repair.step(0.0)
    await repair.step(0.3)
    assert receiver.frames == decoded and receiver.plis == 0  # not given up yet
    await repair.step(0.5)
    assert receiver.plis == 1 and repair.skipped == 0  # no keyframe to skip to: ask for one
    await repair.step(0.9)
    assert receiver.plis == 1  # at most once per pli_every
    frames(receiver, 114, 21000, 2, key=True)  # the keyframe came
    await repair.step(1.0)
    assert repair.skipped == 1
    receiver.receive(118, 27000, DELTA)  # the next packet completes the keyframe's frame
    assert receiver.frames > decoded  # decoding goes on from the keyframe


async def test_no_hole_nothing_to_repair() -> None:
    receiver = Receiver()
    repair = LossRepair(receiver, interval=0.1)  # type: ignore[arg-type]
    for n in range(20):
        frames(receiver, 100 + 2 * n, 3000 * n, 1, key=n == 0)
        await repair.step(0.1 * n)
    assert receiver.nacks == [] and receiver.plis == 0 and repair.skipped == 0


async def test_the_aiortc_internals_it_reads_are_there() -> None:
    """Pinned: a real aiortc receiver has every private field the repair reads (the
    stand-in above sets them itself), and aiortc's JitterBuffer its own."""
    receiver = RTCRtpReceiver("video", WireRecorder())  # type: ignore[arg-type]
    assert [name for name in INTERNALS if not hasattr(receiver, name)] == []
    buffer = JitterBuffer(capacity=128, is_video=True)
    assert all(hasattr(buffer, name) for name in ("_origin", "_packets"))
    assert all(hasattr(receiver, name) for name in ("_send_rtcp_nack", "_send_rtcp_pli"))
