"""The weak-link instrument (bench/observed_server.py) and video over a lossy link with NACK.

The live test is one bench/weak_link.py run with a decoding aiortc bot on a test
host (bench/links.py): a control window, then 3 % random loss on its link.
"""

from __future__ import annotations

import struct

from bench.observed_server import WireCount
from bench.weak_link import Options, run

VIDEO_SSRC, AUDIO_SSRC, RTX_SSRC, OTHER_SSRC = 1111, 2222, 3333, 4444
VP8, OPUS, RTX = 96, 111, 97


def _rtp(payload_type: int, seq: int, ssrc: int, payload: bytes = b"x" * 20) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, seq, 0, ssrc) + payload


def test_wire_count_counts_each_packets_copies_rtx_included() -> None:
    count = WireCount(frozenset({RTX}))
    for seq in (10, 11, 12):
        count(_rtp(VP8, seq, VIDEO_SSRC))
    count(_rtp(VP8, 11, VIDEO_SSRC))  # resent on the media SSRC
    for rtx_seq, original in enumerate((11, 11, 12)):  # RTX: original seq first in the payload
        count(_rtp(RTX, 500 + rtx_seq, RTX_SSRC, struct.pack("!H", original) + b"y" * 20))
    count(_rtp(OPUS, 7, AUDIO_SSRC))
    count(_rtp(VP8, 10, OTHER_SSRC))  # another subscriber's stream
    count(struct.pack("!BBHI", 0x80, 200, 6, VIDEO_SSRC) + bytes(20))  # RTCP: not RTP
    kinds = {VIDEO_SSRC: "video", AUDIO_SSRC: "audio"}
    by_kind = count.by_kind(kinds, {RTX_SSRC: VIDEO_SSRC})
    assert by_kind["video"] == {"packets": 7, "distinct": 3, "max_copies": 4}  # seq 11: 4 times
    assert by_kind["audio"] == {"packets": 1, "distinct": 1, "max_copies": 1}
    assert count.sent({VIDEO_SSRC, RTX_SSRC, AUDIO_SSRC}) == (8, 8 * 12 + 5 * 20 + 3 * 22)
    # Without the RTX mapping its packets are not this subscriber's media.
    assert count.by_kind(kinds, {})["video"]["packets"] == 4


async def test_video_keeps_decoding_over_three_percent_loss_with_nack() -> None:
    report = await run(
        Options(
            rate_kbit=50_000,
            loss_percent=3.0,
            subscriber="bot",
            seconds=8.0,
            warmup=2.0,
            settle=2.0,
            setup_timeout=40.0,
            quiet=True,
        )
    )
    control, shaped = report.control, report.shaped
    detail = "\n" + report.text()
    assert control.video_fps is not None and control.video_fps > 20, detail
    # It saw (nearly) all the server sent on the link (the rest: RTCP, STUN).
    assert control.rtp_packets_s is not None, detail
    assert control.rtp_packets_s > 0.9 * control.sent_packets_s, detail
    assert shaped.dropped_by_loss_rule > 0, detail
    # The lost packets were asked for and sent again ...
    assert shaped.video_packets_sent is not None and shaped.video_distinct is not None, detail
    assert shaped.video_packets_sent > shaped.video_distinct, detail
    # ... so that (nearly) none stayed lost: 3 % would without NACK.
    assert shaped.video_loss is not None and shaped.video_loss < 0.005, detail
    # And video kept decoding (a generous margin: the bot's decoders share a busy machine).
    assert shaped.video_fps is not None and shaped.video_fps > 0.6 * control.video_fps, detail
