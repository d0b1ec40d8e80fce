"""VP8 payload descriptors: picture ids and TL0PICIDX rewritten, nothing else touched."""

from __future__ import annotations

from sfu.keyframes import starts_keyframe
from sfu.vp8_descriptor import Vp8Continuity, fields, picture_id, rewritten


def vp8(
    pid: int | None = None, tl0: int | None = None, wide: bool = True, key: bool = False
) -> bytes:
    """A first packet of a frame: descriptor, then the VP8 payload header's first byte."""
    ext = (0x80 if pid is not None else 0) | (0x40 if tl0 is not None else 0)
    out = bytearray([0x90 if ext else 0x10])
    if ext:
        out.append(ext)
    if pid is not None:
        out += bytes([0x80 | (pid >> 8), pid & 0xFF]) if wide else bytes([pid & 0x7F])
    if tl0 is not None:
        out.append(tl0)
    out.append(0x00 if key else 0x01)
    return bytes(out) + b"frame data"


def read(payload: bytes) -> tuple[int | None, int | None]:
    found = fields(payload)
    assert found is not None
    pid_at, wide, tl0_at = found
    pid = picture_id(payload, pid_at, wide) if pid_at >= 0 else None
    return pid, payload[tl0_at] if tl0_at >= 0 else None


def test_fields_of_15_and_7_bit_picture_ids_and_tl0picidx() -> None:
    assert read(vp8(pid=0x1234, tl0=7)) == (0x1234, 7)
    assert read(vp8(pid=0x55, tl0=200, wide=False)) == (0x55, 200)
    assert read(vp8(pid=300)) == (300, None)
    assert read(vp8(tl0=9)) == (None, 9)
    assert fields(vp8()) is None  # no extension: nothing to rewrite
    assert fields(b"\x90\x80") is None  # cut short


def test_rewriting_changes_only_the_numbers_and_keeps_the_keyframe_bit() -> None:
    packet = vp8(pid=32767, tl0=255, key=True)
    out = rewritten(packet, 3, 2)
    assert read(out) == (2, 1)  # both wrap: 15 bits, 8 bits
    assert len(out) == len(packet) and out[0:2] == packet[0:2]
    assert out.endswith(b"frame data") and starts_keyframe("video/VP8", out)
    seven = rewritten(vp8(pid=126, tl0=1, wide=False), 5, 0)
    assert read(seven) == ((126 + 5) % 128, 1) and len(seven) == len(vp8(pid=1, tl0=1, wide=False))
    same = vp8(pid=10, tl0=1)
    assert rewritten(same, 0, 0) is same


def test_numbering_goes_on_across_a_switch() -> None:
    numbering = Vp8Continuity()
    # The first layer's own numbers go out unchanged.
    assert [read(numbering.forward(vp8(pid=p, tl0=t))) for p, t in ((100, 5), (101, 5))] == [
        (100, 5),
        (101, 5),
    ]
    numbering.switch()  # another layer, numbered on its own
    after = [
        numbering.forward(vp8(pid=p, tl0=t, key=p == 9000)) for p, t in ((9000, 77), (9001, 78))
    ]
    assert [read(p) for p in after] == [(102, 6), (103, 7)]
    numbering.switch()  # and back, with 7-bit ids this time
    assert read(numbering.forward(vp8(pid=127, tl0=0, wide=False))) == (104 % 128, 8)
    assert read(numbering.forward(vp8(pid=0, tl0=0, wide=False))) == (105 % 128, 8)  # wraps


def test_packets_without_picture_ids_pass_unchanged() -> None:
    numbering = Vp8Continuity()
    numbering.forward(vp8(pid=5, tl0=1))
    numbering.switch()
    plain = vp8()
    assert numbering.forward(plain) is plain
    # The first packet carrying numbers after the switch still continues them.
    assert read(numbering.forward(vp8(pid=700, tl0=40))) == (6, 2)
