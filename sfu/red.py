"""RFC 2198 redundant audio (RED): reading and writing its block headers, never the audio.

A RED payload is a list of blocks, the oldest first and the primary (the packet's
own audio, at the RTP header's timestamp) last:

    redundant block header (4 bytes):  F=1 | block PT (7) | timestamp offset (14) | length (10)
    primary block header (1 byte):     F=0 | block PT (7)
    then the blocks' data, in the same order.

Each block is a whole Opus packet (Chromium negotiates ``red/48000/2`` with fmtp
``<opus pt>/<opus pt>``), so a receiver that lost a packet finds its audio again in
the next one. The SFU only moves these bytes around: it keeps the primary block for
a subscriber without RED, and puts RED together for one with RED out of the Opus
payloads it holds and the publisher's own blocks (sfu/red_forwarding.py). No
decoding anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_TIMESTAMP_OFFSET = (1 << 14) - 1
MAX_BLOCK_LENGTH = (1 << 10) - 1
# Redundancy is left out rather than sending a RED payload over this size: with
# SRTP and IP/UDP headers it must stay under a common path MTU (libwebrtc uses 1200).
MAX_RED_PAYLOAD = 1100


@dataclass(frozen=True, slots=True)
class RedBlock:
    payload_type: int
    timestamp_offset: int  # how far before the packet's timestamp; 0 for the primary
    data: bytes


def parse_red(payload: bytes) -> list[RedBlock] | None:
    """The blocks of a RED payload, oldest first and the primary last (None: malformed)."""
    headers: list[tuple[int, int, int]] = []
    pos = 0
    size = len(payload)
    while True:
        if pos >= size:
            return None
        first = payload[pos]
        if not first & 0x80:
            headers.append((first & 0x7F, 0, -1))  # the primary: its length is the rest
            pos += 1
            break
        if pos + 4 > size:
            return None
        word = int.from_bytes(payload[pos + 1 : pos + 4], "big")
        headers.append((first & 0x7F, word >> 10, word & 0x3FF))
        pos += 4
    blocks = []
    for payload_type, offset, length in headers:
        end = size if length < 0 else pos + length
        if end > size:
            return None
        blocks.append(RedBlock(payload_type, offset, payload[pos:end]))
        pos = end
    return blocks


def primary_block(payload: bytes) -> tuple[int, bytes] | None:
    """(payload type, data) of a RED payload's primary block, read without the others."""
    pos = 0
    skipped = 0
    size = len(payload)
    while pos < size and payload[pos] & 0x80:
        if pos + 4 > size:
            return None
        skipped += ((payload[pos + 2] & 0x03) << 8) | payload[pos + 3]
        pos += 4
    if pos >= size:
        return None
    start = pos + 1 + skipped
    if start > size:
        return None
    return payload[pos] & 0x7F, payload[start:]


def encode_red(
    payload_type: int,
    primary: bytes,
    redundant: Sequence[tuple[int, bytes]] = (),
    max_size: int = MAX_RED_PAYLOAD,
) -> bytes:
    """A RED payload: `primary` last, after the `redundant` (timestamp offset, data) blocks
    given oldest first. Blocks that RED cannot carry (an offset out of 1..2^14-1, empty or
    over 1023 bytes) are left out, and the oldest go first while the payload would exceed
    `max_size`; the primary always stays."""
    usable = [
        (offset, data)
        for offset, data in redundant
        if 0 < offset <= MAX_TIMESTAMP_OFFSET and 0 < len(data) <= MAX_BLOCK_LENGTH
    ]
    total = 1 + len(primary) + sum(4 + len(data) for _, data in usable)
    while usable and total > max_size:
        total -= 4 + len(usable[0][1])
        usable = usable[1:]
    pt = payload_type & 0x7F
    parts = []
    for offset, data in usable:
        parts.append(bytes((0x80 | pt,)) + ((offset << 10) | len(data)).to_bytes(3, "big"))
    parts.append(bytes((pt,)))
    parts.extend(data for _, data in usable)
    parts.append(primary)
    return b"".join(parts)


def red_primary_type(parameters: Mapping[str, object]) -> int | None:
    """The payload type a RED codec's fmtp (``111/111``) says its blocks carry, if one."""
    for key in parameters:
        types = key.split("/")
        if len(types) >= 2 and all(t == types[0] and t.isdigit() for t in types):
            return int(types[0])
    return None
