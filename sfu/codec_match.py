"""Whether a producer's codec and a subscriber's negotiated one are the same format."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters


def same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        # Both ends must agree on packetization mode and profile.
        for key in ("packetization-mode", "profile-level-id"):
            va, vb = a.parameters.get(key), b.parameters.get(key)
            if key == "profile-level-id" and isinstance(va, str) and isinstance(vb, str):
                va, vb = va[:4].lower(), vb[:4].lower()
            if str(va or "0") != str(vb or "0"):
                return False
    return True
