"""What one subscriber is sent of each audio packet, with RED (RFC 2198) on either side.

| the publisher sends | subscriber took RED            | subscriber did not            |
| ------------------- | ------------------------------ | ----------------------------- |
| RED over Opus       | the RED payload, as it came    | its primary block, as Opus    |
| plain Opus          | RED built here: this payload   | the Opus payload (no change:  |
|                     | and the last REDUNDANCY ones   | not handled here)             |

Block payload types are renumbered to the subscriber's Opus; redundancy from
before the consumer's current segment (a mute, another producer on the slot) is
left out, so nothing the subscriber was not meant to hear reaches it. Building
RED here is what protects a pupil's downlink whatever the publisher sends: an
aiortc bot, a browser without RED. Only headers are read and written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.producer import CachedPacket
from sfu.red import encode_red, primary_block, red_primary_type, retag_red
from sfu.rtp_rewrite import SEQ_MOD, TS_MOD

# Earlier packets carried in each RED payload the SFU builds (as LiveKit does): a
# packet is lost for good only when it and the next two are all lost.
REDUNDANCY = 2


def is_red(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower() == "audio/red"


def opus_payload_type(codecs: Sequence[RTCRtpCodecParameters]) -> int | None:
    """The payload type of Opus among a subscriber's negotiated codecs."""
    return next((c.payloadType for c in codecs if c.mimeType.lower() == "audio/opus"), None)


def outgoing_audio(
    entry: CachedPacket,
    opus_pt: int,
    red_pt: int | None,
    segment_age: int,
    cached: Callable[[int], CachedPacket | None],
) -> tuple[int, bytes] | None:
    """(payload type, payload) of `entry` for a subscriber whose Opus is `opus_pt` and RED
    `red_pt` (None: no RED); None when there is nothing to send (a malformed RED payload).

    segment_age: how far `entry` is past the first packet of the consumer's segment;
    cached: the producer's packet cache, by sequence number."""
    codec = entry.codec
    if is_red(codec):
        inner = red_primary_type(codec.parameters)
        if inner is None:
            return None
        if red_pt is not None:
            payload = retag_red(entry.payload, inner, opus_pt, oldest_offset=segment_age)
            return None if payload is None else (red_pt, payload)
        primary = primary_block(entry.payload)
        if primary is None or primary[0] != inner:
            return None
        return opus_pt, primary[1]
    if red_pt is None:
        return opus_pt, entry.payload
    redundant = []
    for distance in range(REDUNDANCY, 0, -1):
        previous = cached((entry.seq - distance) % SEQ_MOD)
        if previous is None or previous.codec.payloadType != codec.payloadType:
            continue  # lost or late on the way in: carried by nothing
        offset = (entry.ts - previous.ts) % TS_MOD
        if 0 < offset <= segment_age:
            redundant.append((offset, previous.payload))
    return red_pt, encode_red(opus_pt, entry.payload, redundant)
