"""VP8 temporal layers left out for a consumer (sfu/temporal_layers.py): whole pictures,
down at once, up only at a layer-sync picture or a keyframe, and a stream the
subscriber cannot tell was thinned: sequence numbers and picture ids without gaps,
NACKs of packets sent before a skipped picture mapped back, resent with their ids."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.layer_select import ConsumerLayers
from sfu.producer import CachedPacket
from sfu.rtp_rewrite import StreamRewriter
from sfu.temporal_layers import KEEP, LEAVE_OUT, LEAVE_OUT_LATE, LEAVE_OUT_PICTURE, TemporalFilter
from sfu.vp8_descriptor import NO_TID, START, SYNC, fields, picture_id, temporal_bits

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
# Chromium 156's pattern (seen in its simulcast layers): TIDs 0 2 1 2, the first TL1 and
# TL2 pictures after every other TL0 marked layer sync.
PATTERN = (
    (0, False),
    (2, True),
    (1, True),
    (2, False),
    (0, False),
    (2, False),
    (1, False),
    (2, False),
)


def descriptor(
    pid: int, tl0: int, tid: int, sync: bool, start: bool = True, key: bool = False
) -> bytes:
    """A VP8 payload: X, S (on a picture's first packet), I L T; 15-bit picture id."""
    first = 0x90 if start else 0x80
    tid_byte = tid << 6 | (0x20 if sync else 0)
    head = bytes([first, 0xE0, 0x80 | pid >> 8, pid & 0xFF, tl0, tid_byte])
    return head + bytes([0x00 if key else 0x01]) + b"data"


class Source:
    """A publisher's VP8 stream in Chromium's temporal pattern, `per_picture` packets each."""

    def __init__(self, per_picture: int = 2) -> None:
        self.seq, self.pid, self.tl0, self.ts, self.index = 1000, 500, 10, 90000, 0
        self.per_picture = per_picture

    def picture(self, key: bool = False) -> list[CachedPacket]:
        tid, sync = PATTERN[self.index % len(PATTERN)]
        if key:
            tid, sync, self.index = 0, False, 0
        if tid == 0:
            self.tl0 = (self.tl0 + 1) % 256
        packets = []
        for i in range(self.per_picture):
            payload = descriptor(self.pid, self.tl0, tid, sync, start=i == 0, key=key)
            packets.append(CachedPacket(self.seq, self.ts, 0, payload, VP8, 0.0))
            self.seq = (self.seq + 1) % 65536
        self.pid, self.ts, self.index = (self.pid + 1) % 32768, self.ts + 3000, self.index + 1
        return packets


def tid_of(packet: CachedPacket) -> int:
    return temporal_bits(packet.payload) & 3


def test_the_descriptor_bits() -> None:
    assert temporal_bits(descriptor(1, 2, 2, True)) == 2 | SYNC | START
    assert temporal_bits(descriptor(1, 2, 1, False, start=False)) == 1
    assert temporal_bits(b"\x90\x80\x81\x00\x01") == NO_TID  # no T bit: aiortc's VP8
    assert temporal_bits(b"\x90\xe0\x81") == NO_TID  # cut short


def test_a_cap_of_one_leaves_out_the_top_layer_whole_pictures() -> None:
    source, kept = Source(), TemporalFilter()
    kept.cap = 1
    verdicts = [(tid_of(p), kept.admit(p)) for _ in range(16) for p in source.picture()]
    assert {v for tid, v in verdicts if tid <= 1} == {KEEP}
    # The first packet of a TL2 picture says so, the rest of it follows.
    assert [v for tid, v in verdicts if tid == 2][:2] == [LEAVE_OUT_PICTURE, LEAVE_OUT]
    assert kept.pictures_left_out == 8  # half the pictures


def test_going_up_waits_for_layer_sync_pictures_one_layer_at_a_time() -> None:
    source, kept = Source(per_picture=1), TemporalFilter()
    kept.cap = 0
    for _ in range(8):
        kept.admit(source.picture()[0])
    kept.cap = 2
    forwarded = []
    for _ in range(16):
        (packet,) = source.picture()
        tid, sync = tid_of(packet), bool(temporal_bits(packet.payload) & SYNC)
        if kept.admit(packet) == KEEP:
            forwarded.append((tid, sync))
    # No TL1 or TL2 picture before their first sync pictures (the pattern repeats every
    # 8: sync TL2 at 1, sync TL1 at 2): TL2's sync comes while TL1 is not back yet, so
    # TL2 waits for the next cycle's.
    first_tl1 = next(i for i, (tid, _) in enumerate(forwarded) if tid == 1)
    first_tl2 = next(i for i, (tid, _) in enumerate(forwarded) if tid == 2)
    assert forwarded[first_tl1][1] and forwarded[first_tl2][1]
    assert first_tl1 < first_tl2
    assert kept.level == 2


def test_a_keyframe_brings_every_layer_back_at_once_and_late_packets_stay_out() -> None:
    source, kept = Source(), TemporalFilter()
    kept.cap = 0
    pictures = [source.picture() for _ in range(4)]
    for picture in pictures:
        for packet in picture:
            kept.admit(packet)
    late = pictures[1][1]  # a TL2 picture's second packet, arriving again late
    assert kept.admit(late) == LEAVE_OUT_LATE
    kept.cap = None
    assert all(kept.admit(p) == KEEP for p in source.picture(key=True))
    assert all(kept.admit(p) == KEEP for _ in range(3) for p in source.picture())
    assert kept.level >= 2


def sent_numbers(payload: bytes) -> int:
    found = fields(payload)
    assert found is not None
    return picture_id(payload, found[0], found[1])


def test_the_thinned_stream_has_no_gaps_and_nacks_map_back() -> None:
    source, layers = Source(), ConsumerLayers()
    rewriter = StreamRewriter(90000, first_seq=100, first_ts=0)
    layers.temporal.cap = 1
    sent: dict[int, tuple[CachedPacket, int]] = {}  # out seq -> (source packet, out pid)
    for i in range(24):
        for packet in source.picture(key=i == 0):
            if layers.temporal.active and layers.left_out(packet, rewriter):
                continue
            out = rewriter.rewrite(packet.seq, packet.ts, i / 30)
            assert out is not None
            payload = layers.forwarded_payload("video/VP8", packet.payload)
            sent[out[0]] = (packet, sent_numbers(payload))
    seqs = sorted(sent)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap
    pids = [sent[s][1] for s in seqs[:: source.per_picture]]
    assert pids == list(range(pids[0], pids[0] + len(pids)))  # no gap in picture ids
    assert len(pids) == 24 - layers.temporal.pictures_left_out == 12
    # A NACK of any packet sent maps back to its source packet, however many pictures
    # were left out since, and goes out again with the picture id it had.
    for out_seq, (packet, pid) in sent.items():
        assert rewriter.source_seq(out_seq) == packet.seq
        assert sent_numbers(layers.resent_payload("video/VP8", packet.payload)) == pid
    assert rewriter.source_seq(seqs[-1] + 1) is None  # not sent yet


def test_a_stream_without_temporal_layers_is_forwarded_whole() -> None:
    kept = TemporalFilter()
    kept.cap = 0
    plain = CachedPacket(1, 0, 0, b"\x90\x80\x81\x00\x01data", VP8, 0.0)
    assert kept.admit(plain) == KEEP
    assert not ConsumerLayers().renumbers
