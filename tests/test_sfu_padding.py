"""sfu/padding.py: padding-only RTP packets as aiortc (and RFC 3550) read them."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.padding import MAX_PADDING, padding_packet
from sfu.rtp_header import ast_element, stamped

AST_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def parsed(data: bytes) -> RtpPacket:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=AST_URI)])
    )
    return RtpPacket.parse(data, extensions)


def test_a_padding_packet_is_all_padding_with_its_own_header() -> None:
    data = padding_packet(97, 65535, 123456, 0xABCDEF01, None, 200)
    assert len(data) == 200 and data[0] & 0x20  # the P bit
    packet = parsed(data)
    assert (packet.payload_type, packet.sequence_number) == (97, 65535)
    assert (packet.timestamp, packet.ssrc, packet.marker) == (123456, 0xABCDEF01, 0)
    assert packet.payload == b"" and packet.padding_size == 200 - 12


def test_with_abs_send_time_it_is_stamped_like_media() -> None:
    element = ast_element(3)
    data = stamped(padding_packet(97, 1, 2, 3, element, 275), element, 12.5)
    assert len(data) == 275
    packet = parsed(data)
    assert packet.payload == b"" and packet.padding_size == MAX_PADDING
    assert packet.extensions.abs_send_time == int(12.5 * (1 << 18)) & 0xFFFFFF


def test_the_pad_count_is_one_byte_and_at_least_one() -> None:
    assert len(padding_packet(97, 1, 2, 3, None, 10_000)) == 12 + MAX_PADDING
    tiny = padding_packet(97, 1, 2, 3, None, 5)
    assert len(tiny) == 13 and parsed(tiny).padding_size == 1
