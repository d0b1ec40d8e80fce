"""What one subscriber is sent of each audio packet, with RED (RFC 2198) on either side.

| the publisher sends | subscriber took RED                | subscriber did not            |
| ------------------- | ---------------------------------- | ----------------------------- |
| RED over Opus       | RED: this packet and the last      | its primary block, as Opus    |
| plain Opus          | REDUNDANCY ones (blocks renumbered) | the Opus payload, unchanged   |

RED towards a subscriber is put together here from the producer's packet cache (the
primaries of the packets before) and the publisher's own redundant blocks, which stand
in for packets that never reached the server. So every subscriber that takes RED gets
the same protection, whatever the publisher sends: Chromium's RED carries one packet
back, an aiortc bot or a browser without RED none, and RED here carries REDUNDANCY (as
LiveKit's does). Redundancy from before the consumer's current segment (a mute, another
producer on the slot) is left out, so nothing the subscriber was not meant to hear
reaches it. Only RTP payload headers are read and written, never the audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.producer import CachedPacket
from sfu.red import encode_red, parse_red, primary_block, red_primary_type
from sfu.rtp_rewrite import SEQ_MOD, TS_MOD

# Earlier packets in each RED payload sent to a subscriber: a packet is lost for good
# only when it and the next two are all lost.
REDUNDANCY = 2


def is_red(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower() == "audio/red"


def handles(codec: RTCRtpCodecParameters, red_pt: int | None) -> bool:
    """Whether `outgoing_audio` decides what a packet of `codec` becomes: RED always, Opus
    for a subscriber that took RED (any other codec is forwarded as it is)."""
    mime = codec.mimeType.lower()
    return mime == "audio/red" or (red_pt is not None and mime == "audio/opus")


def opus_payload_type(codecs: Sequence[RTCRtpCodecParameters]) -> int | None:
    """The payload type of Opus among a subscriber's negotiated codecs."""
    return next((c.payloadType for c in codecs if c.mimeType.lower() == "audio/opus"), None)


def _primary(entry: CachedPacket) -> bytes | None:
    """The Opus payload an entry carries (RED: its primary block; None: not Opus, malformed)."""
    codec = entry.codec
    mime = codec.mimeType.lower()
    if mime == "audio/opus":
        return entry.payload
    if mime != "audio/red":
        return None
    primary = primary_block(entry.payload)
    if primary is None or primary[0] != red_primary_type(codec.parameters):
        return None
    return primary[1]


def _redundancy(
    entry: CachedPacket, segment_age: int, cached: Callable[[int], CachedPacket | None]
) -> list[tuple[int, bytes]]:
    """Up to REDUNDANCY (timestamp offset, Opus payload) of the packets before `entry`,
    oldest first: from the cache, else from the publisher's own RED blocks."""
    blocks: dict[int, bytes] = {}
    if is_red(entry.codec):
        inner = red_primary_type(entry.codec.parameters)
        for block in (parse_red(entry.payload) or [])[:-1]:
            if block.payload_type == inner and block.data:
                blocks[block.timestamp_offset] = block.data
    for distance in range(1, REDUNDANCY + 1):
        previous = cached((entry.seq - distance) % SEQ_MOD)
        data = _primary(previous) if previous is not None else None
        if previous is not None and data:
            blocks[(entry.ts - previous.ts) % TS_MOD] = data
    recent = sorted(offset for offset in blocks if 0 < offset <= segment_age)[:REDUNDANCY]
    return [(offset, blocks[offset]) for offset in reversed(recent)]


def outgoing_audio(
    entry: CachedPacket,
    opus_pt: int,
    red_pt: int | None,
    segment_age: int,
    cached: Callable[[int], CachedPacket | None],
) -> tuple[int, bytes] | None:
    """(payload type, payload) of `entry` for a subscriber whose Opus is `opus_pt` and RED
    `red_pt` (None: no RED); None when there is nothing to send (not Opus, malformed RED).

    segment_age: how far `entry` is past the first packet of the consumer's segment;
    cached: the producer's packet cache, by sequence number."""
    primary = _primary(entry)
    if primary is None:
        return None
    if red_pt is None:
        return opus_pt, primary
    return red_pt, encode_red(opus_pt, primary, _redundancy(entry, segment_age, cached))


def audio_packet(
    entry: CachedPacket,
    codecs: Sequence[RTCRtpCodecParameters],
    red_pt: int | None,
    segment_age: int,
    cached: Callable[[int], CachedPacket | None],
) -> tuple[int | None, CachedPacket]:
    """outgoing_audio for a subscriber that negotiated `codecs`: its payload type
    (None: nothing to send) and the packet to send."""
    opus_pt = opus_payload_type(codecs)
    out = None if opus_pt is None else outgoing_audio(entry, opus_pt, red_pt, segment_age, cached)
    if out is None:
        return None, entry
    out_pt, payload = out
    if payload is not entry.payload:
        entry = CachedPacket(
            entry.seq, entry.ts, entry.marker, payload, entry.codec, entry.received_at
        )
    return out_pt, entry
