"""Is this RTP payload the start of a keyframe? (VP8, RFC 7741; H.264, RFC 6184)

A consumer that starts, resumes or switches to another source forwards
nothing of the video until a keyframe of it arrives: a decoder fed delta
frames of a new person would keep showing the previous person's picture.
Only the first bytes of the payload are read; nothing is decoded.
"""

from __future__ import annotations

_H264_IDR, _H264_SPS, _H264_STAP_A, _H264_FU_A = 5, 7, 24, 28


def starts_keyframe(mime_type: str, payload: bytes) -> bool:
    """True for the first packet of a keyframe; True for codecs it cannot tell
    (they are not held back)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return _vp8(payload)
    if mime == "video/h264":
        return _h264(payload)
    return True


def _vp8(p: bytes) -> bool:
    if not p:
        return False
    first = p[0]
    if not first & 0x10 or first & 0x07:  # not the start of partition 0
        return False
    i = 1
    if first & 0x80:  # extended control bits
        if len(p) < 2:
            return False
        ext = p[1]
        i = 2
        if ext & 0x80:  # picture id, 7 or 15 bits
            if len(p) <= i:
                return False
            i += 2 if p[i] & 0x80 else 1
        if ext & 0x40:  # TL0PICIDX
            i += 1
        if ext & 0x30:  # TID / KEYIDX
            i += 1
    # The VP8 payload header: the P bit (0x01) is 0 for a key frame.
    return len(p) > i and not p[i] & 0x01


def _h264(p: bytes) -> bool:
    if not p:
        return False
    nal = p[0] & 0x1F
    if nal in (_H264_IDR, _H264_SPS):
        return True
    if nal == _H264_STAP_A:
        i = 1
        while i + 2 < len(p):
            if p[i + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            i += 2 + int.from_bytes(p[i : i + 2], "big")
        return False
    if nal == _H264_FU_A and len(p) > 1:
        return bool(p[1] & 0x80) and p[1] & 0x1F in (_H264_IDR, _H264_SPS)
    return False
