"""sfu/red.py: RFC 2198 block headers written and read, with RED's limits."""

from __future__ import annotations

import pytest

from sfu.red import (
    MAX_BLOCK_LENGTH,
    MAX_RED_PAYLOAD,
    MAX_TIMESTAMP_OFFSET,
    RedBlock,
    encode_red,
    parse_red,
    primary_block,
    red_primary_type,
)

# A RED payload as Chromium 156 sent it (distance 1, Opus pt 111): a 109-byte block
# 960 ticks back, then a 3-byte primary.
CHROMIUM_RED = bytes.fromhex(
    "ef0f006d6ff87d798e001659305843b8fb287b5cb3dd78af91ece9de645f23fa35cddef26e15ef964d"
    "00a2b8df343c61d59438085c011d69927671f25fb015d4400c431ad8afee8de82fe98c3fe5f778779d"
    "25c1e96f4cd302f362882353d18f3ecb533b0e8ef2b011329793db2c8e7d05a7f8fffe"
)


def test_a_chromium_payload_reads_and_is_written_back_byte_for_byte() -> None:
    blocks = parse_red(CHROMIUM_RED)
    assert blocks is not None
    assert [(b.payload_type, b.timestamp_offset, len(b.data)) for b in blocks] == [
        (111, 960, 109),
        (111, 0, 3),
    ]
    assert primary_block(CHROMIUM_RED) == (111, b"\xf8\xff\xfe")
    assert encode_red(111, blocks[1].data, [(960, blocks[0].data)]) == CHROMIUM_RED


@pytest.mark.parametrize("distance", [0, 1, 2])
def test_round_trip(distance: int) -> None:
    previous = [(960 * (distance - i), bytes([i]) * (10 + i)) for i in range(distance)]
    payload = encode_red(96, b"primary", previous)
    assert len(payload) == 1 + len(b"primary") + sum(4 + len(d) for _, d in previous)
    assert parse_red(payload) == [
        *(RedBlock(96, offset, data) for offset, data in previous),
        RedBlock(96, 0, b"primary"),
    ]
    assert primary_block(payload) == (96, b"primary")


def test_blocks_red_cannot_carry_are_left_out() -> None:
    longest = bytes(MAX_BLOCK_LENGTH)
    payload = encode_red(
        96,
        b"p",
        [
            (MAX_TIMESTAMP_OFFSET + 1, b"too far back"),
            (MAX_TIMESTAMP_OFFSET, b"just in reach"),
            (1920, bytes(MAX_BLOCK_LENGTH + 1)),  # its length does not fit 10 bits
            (1440, longest),
            (960, b""),  # nothing to carry
            (0, b"not before the primary"),
        ],
        max_size=4096,
    )
    assert parse_red(payload) == [
        RedBlock(96, MAX_TIMESTAMP_OFFSET, b"just in reach"),
        RedBlock(96, 1440, longest),
        RedBlock(96, 0, b"p"),
    ]


def test_oversize_drops_the_oldest_first_and_keeps_the_primary() -> None:
    old, recent = (1920, bytes(500)), (960, bytes(500))
    assert parse_red(encode_red(96, bytes(200), [old, recent])) == [
        RedBlock(96, 960, bytes(500)),
        RedBlock(96, 0, bytes(200)),
    ]
    assert len(encode_red(96, bytes(200), [old, recent])) <= MAX_RED_PAYLOAD
    huge = bytes(MAX_RED_PAYLOAD + 100)
    assert parse_red(encode_red(96, huge, [old, recent])) == [RedBlock(96, 0, huge)]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x80",  # a redundant header cut short
        b"\xef\x0f\x00",
        b"\xef\x0f\x00\x6d",  # no primary header after it
        b"\xef\x0f\x00\x6d\x6f" + bytes(108),  # the block is longer than what follows
    ],
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    assert parse_red(payload) is None
    assert primary_block(payload) is None


def test_an_empty_primary_is_allowed() -> None:
    assert parse_red(b"\x60") == [RedBlock(96, 0, b"")]
    assert primary_block(b"\x60") == (96, b"")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"111/111": None}, 111),
        ({"96/96/96": None}, 96),
        ({"111": None}, None),
        ({"111/0": None}, None),
        ({"minptime": 10}, None),
        ({}, None),
    ],
)
def test_red_primary_type_from_fmtp(parameters: dict[str, object], expected: int | None) -> None:
    assert red_primary_type(parameters) == expected
