"""What one audio producer's packets say of its loudness (RFC 6464), per interval.

Publishers send each audio packet's level in the ``ssrc-audio-level`` header
extension: ``-dBov`` in 0..127 (0 the loudest, 127 silence) and a voice-activity
bit. aiortc answers the extension when a publisher offers it (Chromium and
aiortc do) and its RTP parser reads it with the other extensions it knows, by
the id negotiated in the extmap, into ``RtpPacket.extensions.audio_level`` as
``(voice, level)``: nothing is decoded. The producer hands each value to its
meter; the active-speaker detector (sfu/active_speaker.py) takes the meter's
figures once an interval.

Durations come from RTP timestamps, not from packet counts: with Opus DTX a
silent microphone sends one packet in 400 ms, and a talker's pauses thin its
packets; what matters is how much of the interval was loud.
"""

from __future__ import annotations

from dataclasses import dataclass

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
SILENT_LEVEL = 127
# A level at or under this (-dBov) counts as loud (LiveKit's default: -35 dBov).
ACTIVE_LEVEL = 35
# What one packet may stand for: a packet after a DTX gap stands for 20 ms, not the gap.
DEFAULT_PACKET_MS = 20.0
MAX_PACKET_MS = 60.0


@dataclass(frozen=True)
class IntervalLevel:
    """One interval of a producer's levels: how long it was heard and loud, how loud."""

    heard_ms: float  # audio the packets covered
    active_ms: float  # of which at or above the active level
    voiced_ms: float  # of which the publisher's own voice-activity bit was set
    loudest: int  # the lowest level value (-dBov) among the active packets; 127 if none
    packets: int


class AudioLevelMeter:
    """Per audio producer: the levels of the packets of the current interval."""

    __slots__ = (
        "_active_level",
        "_active_ms",
        "_heard_ms",
        "_last_timestamp",
        "_loudest",
        "_packets",
        "_recent_active_ms",
        "_voiced_ms",
        "packets_with_level",
    )

    def __init__(self, active_level: int = ACTIVE_LEVEL) -> None:
        self._active_level = active_level
        self._last_timestamp: int | None = None
        self.packets_with_level = 0  # ever; a publisher that sends no levels stays at 0
        # Loud audio since the audio slots last looked (sfu/audio_slots.py): their
        # tick is shorter than an interval, so a new speaker is mapped at once.
        self._recent_active_ms = 0.0
        self._reset()

    def _reset(self) -> None:
        self._heard_ms = 0.0
        self._active_ms = 0.0
        self._voiced_ms = 0.0
        self._loudest = SILENT_LEVEL
        self._packets = 0

    def observe(self, voice: bool, level: int, timestamp: int, clock_rate: int) -> None:
        """One packet: its (voice, level) extension, RTP timestamp and clock rate."""
        last = self._last_timestamp
        self._last_timestamp = timestamp
        if last is None:
            duration = DEFAULT_PACKET_MS
        else:
            duration = ((timestamp - last) & 0xFFFFFFFF) * 1000.0 / clock_rate
            if duration <= 0.0 or duration > MAX_PACKET_MS:
                duration = DEFAULT_PACKET_MS  # a DTX gap, a reordered or repeated packet
        self.packets_with_level += 1
        self._packets += 1
        self._heard_ms += duration
        if voice:
            self._voiced_ms += duration
        if level <= self._active_level:
            self._active_ms += duration
            self._recent_active_ms += duration
            if level < self._loudest:
                self._loudest = level

    def take(self) -> IntervalLevel:
        """The interval's figures; the next interval starts empty."""
        taken = IntervalLevel(
            self._heard_ms, self._active_ms, self._voiced_ms, self._loudest, self._packets
        )
        self._reset()
        return taken

    def take_recent_active_ms(self) -> float:
        """Loud audio (ms) since the last call; independent of `take`'s intervals."""
        recent, self._recent_active_ms = self._recent_active_ms, 0.0
        return recent
