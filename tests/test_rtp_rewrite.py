"""Sequence number and timestamp rewriting (sfu/rtp_rewrite.py)."""

from __future__ import annotations

from sfu.rtp_rewrite import REORDER_WINDOW, SEQ_MOD, TS_MOD, StreamRewriter, seq_newer


def test_seq_newer_is_serial_arithmetic() -> None:
    assert seq_newer(1, 0)
    assert not seq_newer(0, 1)
    assert seq_newer(0, 65535)  # across the wrap
    assert seq_newer(10, 65530)
    assert not seq_newer(65530, 10)
    assert not seq_newer(5, 5)


def test_first_packet_maps_to_start_values() -> None:
    rw = StreamRewriter(90000, first_seq=100, first_ts=5000)
    assert rw.rewrite(40000, 123456, now=0.0) == (100, 5000)
    assert rw.rewrite(40001, 123456 + 3000, now=0.033) == (101, 8000)


def test_sequence_wraps_around_on_both_sides() -> None:
    rw = StreamRewriter(90000, first_seq=65534, first_ts=TS_MOD - 1500)
    out = [
        rw.rewrite((65533 + i) % SEQ_MOD, (TS_MOD - 3000 + i * 1500) % TS_MOD, i * 0.016)
        for i in range(5)
    ]
    assert [o[0] for o in out if o] == [65534, 65535, 0, 1, 2]
    assert [o[1] for o in out if o] == [TS_MOD - 1500, 0, 1500, 3000, 4500]


def test_switch_keeps_output_continuous() -> None:
    rw = StreamRewriter(90000, first_seq=10, first_ts=1000)
    for i in range(5):
        rw.rewrite(500 + i, 90000 + i * 3000, now=i / 30)
    last_seq, last_ts = 14, 1000 + 4 * 3000
    rw.switch()
    # New source with unrelated numbering, 0.5 s later.
    seq, ts = rw.rewrite(61000, 7, now=4 / 30 + 0.5)  # type: ignore[misc]
    assert seq == last_seq + 1
    assert ts == last_ts + int(0.5 * 90000)
    # Subsequent packets of the new source follow its own deltas.
    assert rw.rewrite(61001, 7 + 3000, now=1.0) == (seq + 1, ts + 3000)


def test_switch_across_wraparound_of_the_new_source() -> None:
    rw = StreamRewriter(48000, first_seq=0, first_ts=0)
    rw.rewrite(1, 960, now=0.0)
    rw.switch()
    a = rw.rewrite(65535, TS_MOD - 960, now=0.02)
    b = rw.rewrite(0, 0, now=0.04)
    assert a is not None and b is not None
    assert b[0] == (a[0] + 1) % SEQ_MOD
    assert b[1] == (a[1] + 960) % TS_MOD


def test_packets_from_before_the_switch_are_dropped() -> None:
    rw = StreamRewriter(90000, first_seq=0, first_ts=0)
    rw.rewrite(1000, 0, now=0.0)
    rw.switch()
    assert rw.rewrite(2000, 50, now=0.1) is not None
    assert rw.rewrite(1999, 40, now=0.1) is None  # late packet of the old segment
    assert rw.rewrite(2001, 60, now=0.1) is not None


def test_late_packet_within_segment_keeps_its_slot() -> None:
    rw = StreamRewriter(90000, first_seq=0, first_ts=0)
    rw.rewrite(100, 0, now=0.0)
    rw.rewrite(102, 6000, now=0.066)
    assert rw.rewrite(101, 3000, now=0.07) == (1, 3000)


def test_long_segment_beyond_half_the_sequence_space() -> None:
    rw = StreamRewriter(90000, first_seq=0, first_ts=0)
    seq = 0
    for i in range(70000):
        result = rw.rewrite(seq, i * 10, now=i * 0.001)
        assert result is not None, i
        assert result[0] == i % SEQ_MOD
        seq = (seq + 1) % SEQ_MOD
    # A packet far behind the reorder window is refused, a recent one is not.
    assert rw.rewrite((seq - REORDER_WINDOW - 10) % SEQ_MOD, 0, now=70.0) is None
    assert rw.rewrite((seq - 5) % SEQ_MOD, 0, now=70.0) is not None


def test_source_seq_inverts_rewrite_for_nacks() -> None:
    rw = StreamRewriter(90000, first_seq=65530, first_ts=0)
    mapped = {}
    for i in range(12):
        in_seq = (30000 + i) % SEQ_MOD
        out = rw.rewrite(in_seq, i * 3000, now=i * 0.03)
        assert out is not None
        mapped[out[0]] = in_seq
    for out_seq, in_seq in mapped.items():
        assert rw.source_seq(out_seq) == in_seq
    assert rw.source_seq((max(mapped) + 100) % SEQ_MOD) is None  # never sent
    rw.switch()
    rw.rewrite(5, 0, now=1.0)
    # Sequence numbers of the previous segment no longer map to this source.
    assert rw.source_seq(65530) is None
