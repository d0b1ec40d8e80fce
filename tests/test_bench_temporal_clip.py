"""The bench's camera clips with temporal layers (bench/preencoded.py) are what a browser
sends: each subset of TIDs decodes to exactly the pictures of the whole stream, and the
descriptors the bots write carry Chromium's TIDs and layer-sync bits
(bench/simulcast_publisher.py)."""

from __future__ import annotations

import av
import numpy as np

from bench.preencoded import TEMPORAL_PATTERN, encode_video
from bench.simulcast_publisher import LayerClip, LayerSpec, _Layer
from sfu.vp8_descriptor import START, SYNC, temporal_bits


def decoded(packets: list[bytes]) -> list[np.ndarray]:
    codec = av.CodecContext.create("libvpx", "r")
    frames = []
    for packet in packets:
        for frame in codec.decode(av.Packet(packet)):
            frames.append(frame.to_ndarray(format="yuv420p"))
    return frames


def test_each_temporal_subset_decodes_to_the_same_pictures() -> None:
    clip = encode_video(160, 90, 30, 2.0, 90_000, 1.0, fast=True, temporal_layers=3)
    assert sum(clip.keyframes) == 2 and len(clip.temporal) == len(clip.packets) == 60
    # The pattern starts again at every keyframe.
    assert clip.temporal[:6] == (*TEMPORAL_PATTERN, 0, 2)
    assert clip.temporal[30:34] == TEMPORAL_PATTERN
    whole = decoded(list(clip.packets))
    for cap in (0, 1):
        kept = [i for i, tid in enumerate(clip.temporal) if tid <= cap]
        subset = decoded([clip.packets[i] for i in kept])
        assert len(subset) == len(kept)
        for i, picture in zip(kept, subset, strict=True):
            assert np.array_equal(picture, whole[i]), (cap, i)


def test_the_bots_write_tl0picidx_tid_and_chromiums_sync_bits() -> None:
    clip = encode_video(160, 90, 30, 1.0, 90_000, 1.0, fast=True, temporal_layers=3)
    layer = _Layer(LayerClip(LayerSpec("q", 160, 90, 90_000), clip), 96, b"")
    bits = []
    for frame in range(16):
        first = layer.packets(frame, tag=False)[0]
        bits.append(temporal_bits(first[12:]))
    assert all(b & START for b in bits)
    assert [b & 3 for b in bits] == list(TEMPORAL_PATTERN) * 4
    # Layer sync on the TL2 and TL1 pictures of every other cycle, as Chromium marks them.
    synced = [i for i, b in enumerate(bits) if b & SYNC]
    assert synced == [1, 2, 9, 10]
