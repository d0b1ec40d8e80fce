"""bench/slot_video.py: one decoder per slot, as a client has, fed RTP as it comes.

Real VP8 from aiortc's own encoder, packetized as aiortc sends it.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from bench.slot_video import REORDER_WAIT, SlotVideo

RED = (220, 30, 30)
BLUE = (30, 40, 220)


class Camera:
    """A publisher's encoder: solid colour frames, RTP packets with its own numbering."""

    def __init__(self, rgb: tuple[int, int, int], seq: int) -> None:
        self.encoder = Vp8Encoder()
        self.image = np.full((120, 160, 3), rgb, dtype=np.uint8)
        self.index = 0
        self.seq = seq

    def frame(self, keyframe: bool = False) -> list[RtpPacket]:
        image = av.VideoFrame.from_ndarray(self.image, format="rgb24")
        image.pts, image.time_base = self.index * 3000, fractions.Fraction(1, 90000)
        self.index += 1
        payloads, timestamp = self.encoder.encode(image, force_keyframe=keyframe)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=96,
                    marker=int(i == len(payloads) - 1),
                    sequence_number=self.seq & 0xFFFF,
                    timestamp=timestamp,
                    payload=payload,
                )
            )
            self.seq += 1
        return packets


def close_to(rgb: object, expected: tuple[int, int, int]) -> bool:
    assert isinstance(rgb, tuple)
    return all(abs(c - e) <= 30 for c, e in zip(rgb, expected, strict=True))


def feed(video: SlotVideo, packets: list[RtpPacket], at: float, seq_from: int) -> int:
    """Hand packets to slot "0" renumbered from `seq_from`, as a consumer does; the next."""
    for packet in packets:
        packet.sequence_number = seq_from & 0xFFFF
        video.on_packet("0", packet, at)
        seq_from += 1
    return seq_from


def test_a_delta_of_another_source_shows_the_picture_the_decoder_held() -> None:
    video = SlotVideo()
    red, blue = Camera(RED, 100), Camera(BLUE, 9000)
    seq = feed(video, red.frame(keyframe=True) + red.frame(), 1.0, 500)
    blue.frame(keyframe=True)  # the new source's keyframe went to someone else
    seq = feed(video, blue.frame(), 2.0, seq)  # a delta of it, in the same slot
    seq = feed(video, blue.frame(keyframe=True), 3.0, seq)
    frames = video.frames("0")
    assert [f.keyframe for f in frames] == [True, False, False, True]
    assert [f.first_packet_at for f in frames] == [1.0, 1.0, 2.0, 3.0]
    assert all(f.intact for f in frames)
    assert close_to(frames[0].rgb, RED) and close_to(frames[1].rgb, RED)
    assert close_to(frames[2].rgb, RED)  # blue's delta on red's picture: still red
    assert close_to(frames[3].rgb, BLUE)
    assert video.frames("1") == []


def test_a_delta_with_no_picture_before_shows_nothing() -> None:
    video = SlotVideo()
    camera = Camera(BLUE, 0)
    camera.frame(keyframe=True)
    feed(video, camera.frame(), 1.0, 0)
    (frame,) = video.frames("0")
    assert frame.intact and not frame.keyframe and frame.rgb is None


def test_packets_out_of_order_wait_and_a_lost_one_breaks_only_its_frame() -> None:
    video = SlotVideo()
    camera = Camera(RED, 0)
    first = camera.frame(keyframe=True)
    second = camera.frame()
    # Retransmitted late: the second frame's packet comes after the third's.
    third = camera.frame()
    for packet, at in [*((p, 1.0) for p in first), (third[0], 1.1), (second[0], 1.2)]:
        video.on_packet("0", packet, at)
    assert [f.first_packet_at for f in video.frames("0")] == [1.0, 1.2, 1.1]
    assert all(f.rgb is not None for f in video.frames("0"))
    # A packet that never comes: its frame is given up once the wait is over.
    camera.frame()  # lost
    fifth, sixth = camera.frame(), camera.frame()
    video.on_packet("0", fifth[0], 2.0)
    assert len(video.frames("0")) == 3  # still waiting for the lost one
    video.on_packet("0", sixth[0], 2.0 + REORDER_WAIT)
    # The frames after it refer to it: not shown (a client waits for a keyframe).
    shown = video.frames("0")[3:]
    assert [(f.intact, f.rgb) for f in shown] == [(False, None), (False, None)]
    assert [f.first_packet_at for f in shown] == [2.0, 2.0 + REORDER_WAIT]
    feed(video, camera.frame(keyframe=True), 3.0, sixth[0].sequence_number + 1)
    assert video.frames("0")[-1].intact and close_to(video.frames("0")[-1].rgb, RED)
