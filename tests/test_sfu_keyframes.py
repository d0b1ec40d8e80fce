"""sfu/keyframes.py: the first packet of a keyframe, from the payload's first bytes."""

from __future__ import annotations

import pytest

from sfu.keyframes import starts_keyframe

VP8 = "video/VP8"
H264 = "video/H264"


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"\x10\x00\x9d\x01\x2a", True),  # S, partition 0, P bit 0: a key frame
        (b"\x10\x01", False),  # P bit 1: an interframe
        (b"\x00\x00", False),  # not the start of a partition
        (b"\x11\x00", False),  # partition 1
        (b"\x90\x80\x05\x00", True),  # X, I with a 7-bit picture id
        (b"\x90\x80\x85\x05\x00", True),  # 15-bit picture id
        (b"\x90\x80\x85\x05\x01", False),
        (b"\x90\xe0\x85\x05\x07\x20\x00", True),  # picture id, TL0PICIDX, TID
        (b"\x90\xe0\x85\x05\x07\x20\x01", False),
        (b"\x90", False),  # cut short
        (b"", False),
    ],
)
def test_vp8(payload: bytes, key: bool) -> None:
    assert starts_keyframe(VP8, payload) is key


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"\x65\x88", True),  # IDR slice
        (b"\x67\x42", True),  # SPS
        (b"\x41\x9a", False),  # non-IDR slice
        (b"\x18\x00\x02\x09\x10\x00\x02\x67\x42", True),  # STAP-A: AUD, then SPS
        (b"\x18\x00\x02\x09\x10\x00\x02\x41\x9a", False),
        (b"\x7c\x85\x88", True),  # FU-A, start of an IDR
        (b"\x7c\x05\x88", False),  # FU-A, not the start
        (b"\x7c\x81\x9a", False),  # FU-A start of a non-IDR slice
        (b"", False),
    ],
)
def test_h264(payload: bytes, key: bool) -> None:
    assert starts_keyframe(H264, payload) is key


def test_codecs_it_cannot_read_are_not_held_back() -> None:
    assert starts_keyframe("video/VP9", b"\x00") is True
    assert starts_keyframe("audio/opus", b"\x00") is True
