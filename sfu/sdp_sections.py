"""Cutting an SDP into its m-sections as text, to parse only those that matter.

aiortc's parser (`aiortc.sdp.SessionDescription.parse`) reads every line of every
m-section; a subscriber's description has one per camera it receives, so reading
its few audio m-sections with it parses all the video ones too.
"""

from __future__ import annotations

_MEDIA = "\r\nm="


def only_media(description: str, kind: str) -> str:
    """`description` (CRLF lines) with its session part and only its m-sections of
    `kind` ("audio", "video", ...), in their order."""
    head, *sections = description.split(_MEDIA)
    kept = [section for section in sections if section.startswith(kind + " ")]
    text = _MEDIA.join([head, *kept])
    return text if text.endswith("\r\n") else text + "\r\n"
