"""Audio in our SDP: Opus in-band FEC and DTX, RED (RFC 2198), the audio level extension.

aiortc's codec table knows Opus without parameters and nothing of ``audio/red``,
and it is shared with every aiortc peer in the process (the bots, too), so it is
left alone. Our own descriptions are amended instead, with aiortc's public SDP
module (`aiortc.sdp`):

- every Opus we negotiate carries ``minptime=10;useinbandfec=1;usedtx=1``: in an
  answer to a publisher this is what makes its encoder add FEC and stop sending
  during silence (DTX: one packet in 400 ms instead of 50 a second; RFC 7587:
  the receiver's wish), in an offer to a subscriber it states the same for our side;
- a publisher's offer of RED over its Opus (Chromium: ``red/48000/2``, fmtp
  ``111/111``) is accepted, and listed before Opus: libwebrtc sends RED only
  when the negotiated RED comes before the codec it carries;
- a subscriber is offered RED over the Opus of our offer, after it (we send; the
  order only matters to a sender). Its answer says whether it takes RED.

The ``ssrc-audio-level`` header extension (RFC 6464) needs nothing here: aiortc
answers it whenever the offer has it (`publisher_audio_level_id` reads the id),
and its RTP parser reads each packet's level for sfu/audio_level.py.

aiortc itself never learns RED: the forwarding receiver is given the codec
(`red_codecs_offered`), and consumers the payload type (`red_accepted`).
"""

from __future__ import annotations

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.audio_level import AUDIO_LEVEL_URI
from sfu.red import red_primary_type
from sfu.sdp_sections import only_media

OPUS_FEC_PARAMETERS: dict[str, int] = {"minptime": 10, "useinbandfec": 1, "usedtx": 1}
# What Chromium numbers RED in its own offers; any other free one would do.
PREFERRED_RED_PAYLOAD_TYPE = 63
_FREE_PAYLOAD_TYPES = (PREFERRED_RED_PAYLOAD_TYPE, *range(96, 128), *range(35, 63))


def _is(codec: RTCRtpCodecParameters, mime: str) -> bool:
    return codec.mimeType.lower() == mime


def _opus(media: sdp.MediaDescription) -> RTCRtpCodecParameters | None:
    return next((c for c in media.rtp.codecs if _is(c, "audio/opus")), None)


def _red_over(media: sdp.MediaDescription, opus_pt: int) -> RTCRtpCodecParameters | None:
    """The RED codec of `media` whose blocks are the Opus of payload type `opus_pt`."""
    for codec in media.rtp.codecs:
        if _is(codec, "audio/red") and red_primary_type(codec.parameters) == opus_pt:
            return codec
    return None


def _with_opus_fec(media: sdp.MediaDescription) -> RTCRtpCodecParameters | None:
    opus = _opus(media)
    if opus is not None:
        opus.parameters = {**opus.parameters, **OPUS_FEC_PARAMETERS}
    return opus


def red_codecs_offered(offer: str) -> dict[str, RTCRtpCodecParameters]:
    """A publisher's offer: the RED codec over Opus of each audio m-section that has one, by mid."""
    found = {}
    for media in sdp.SessionDescription.parse(offer).media:
        opus = _opus(media) if media.kind == "audio" else None
        if opus is None or opus.payloadType is None or media.rtp.muxId is None:
            continue
        red = _red_over(media, opus.payloadType)
        if red is not None:
            found[media.rtp.muxId] = red
    return found


def publisher_answer(answer: str, red: dict[str, RTCRtpCodecParameters]) -> str:
    """aiortc's answer to a publisher with Opus FEC asked for, and the offered `red`
    (red_codecs_offered) accepted ahead of the Opus it carries."""
    description = sdp.SessionDescription.parse(answer)
    for media in description.media:
        if media.kind != "audio":
            continue
        opus = _with_opus_fec(media)
        codec = red.get(media.rtp.muxId or "")
        if opus is None or codec is None or red_primary_type(codec.parameters) != opus.payloadType:
            continue
        media.rtp.codecs.insert(media.rtp.codecs.index(opus), codec)
        media.fmt.insert(media.fmt.index(opus.payloadType), codec.payloadType)
    return str(description)


def subscriber_offer(offer: str) -> str:
    """aiortc's offer to a subscriber with Opus FEC and, after each Opus, RED over it."""
    description = sdp.SessionDescription.parse(offer)
    amend_subscriber_offer(description)
    return str(description)


def amend_subscriber_offer(description: sdp.SessionDescription) -> None:
    """`subscriber_offer` on a parsed offer, in place (parsed once for every amendment)."""
    used = {pt for media in description.media for pt in media.fmt if isinstance(pt, int)}
    red_pt = next(pt for pt in _FREE_PAYLOAD_TYPES if pt not in used)
    for media in description.media:
        opus = _with_opus_fec(media) if media.kind == "audio" else None
        if opus is None or opus.payloadType is None or _red_over(media, opus.payloadType):
            continue
        red = RTCRtpCodecParameters(
            mimeType="audio/red",
            clockRate=opus.clockRate,
            channels=opus.channels,
            payloadType=red_pt,
            parameters={f"{opus.payloadType}/{opus.payloadType}": None},
        )
        media.rtp.codecs.insert(media.rtp.codecs.index(opus) + 1, red)
        media.fmt.insert(media.fmt.index(opus.payloadType) + 1, red_pt)


def red_accepted(answer: str) -> dict[str, int | None]:
    """A subscriber's answer: for each audio m-section by mid, the payload type of the
    RED it accepted over its Opus (None: plain Opus only)."""
    accepted: dict[str, int | None] = {}
    # Only its audio m-sections are read: a subscriber's answer has a video one per
    # camera it receives, and aiortc has just parsed all of it once.
    for media in sdp.SessionDescription.parse(only_media(answer, "audio")).media:
        if media.kind != "audio" or media.rtp.muxId is None:
            continue
        opus = _opus(media)
        red = _red_over(media, opus.payloadType) if opus and opus.payloadType is not None else None
        accepted[media.rtp.muxId] = red.payloadType if red is not None else None
    return accepted


def publisher_audio_level_id(answer: str) -> dict[str, int]:
    """Our answer to a publisher: the audio level extension's id, by mid of each audio
    m-section that negotiated it."""
    found = {}
    for media in sdp.SessionDescription.parse(answer).media:
        if media.kind != "audio" or media.rtp.muxId is None:
            continue
        for extension in media.rtp.headerExtensions:
            if extension.uri == AUDIO_LEVEL_URI:
                found[media.rtp.muxId] = extension.id
    return found
