"""Which simulcast layer a consumer forwards, and when it may change.

A consumer forwards exactly one layer of a simulcast producer. It has a
preferred layer (set for its subscriber: `Consumer.set_target_layer`) and
forwards the best *active* one: the highest at or below the preferred, else
the lowest above it. It changes layer only at a keyframe of the new one (asked
for while waiting, at most every KEYFRAME_RETRY), so the subscriber's decoder
never gets a delta frame of a picture it has not seen; until then the old layer
goes on. A layer that stops (sfu/layers.py) is replaced the same way.
Numbering stays continuous across the change (sfu/rtp_rewrite.py,
sfu/vp8_descriptor.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sfu.keyframes import starts_keyframe
from sfu.layers import Layer
from sfu.producer import CachedPacket
from sfu.rtp_rewrite import StreamRewriter
from sfu.temporal_layers import KEEP, LEAVE_OUT_LATE, LEAVE_OUT_PICTURE, TemporalFilter
from sfu.vp8_descriptor import Vp8Continuity

# What to do with one packet.
DROP, FORWARD, SWITCHED, ASK = 0, 1, 2, 3
KEYFRAME_RETRY = 0.5
# The best layer is worked out again at most this often: every packet of every
# layer the consumer does not forward asks (two thirds of what comes in).
RESELECT_INTERVAL = 0.1


def best_layer(layers: Sequence[Layer], preferred: int, now: float) -> int:
    """The highest active layer at or below `preferred`, else the lowest above it
    (none active: `preferred`)."""
    below = [layer.index for layer in layers if layer.index <= preferred and layer.active(now)]
    if below:
        return max(below)
    above = [layer.index for layer in layers if layer.index > preferred and layer.active(now)]
    return min(above) if above else preferred


class LayerSelector:
    __slots__ = ("_asked_at", "_asked_for", "_best", "_best_at", "_preferred", "current")

    def __init__(self, preferred: int) -> None:
        self._preferred = preferred
        self._best = preferred
        self._best_at = -RESELECT_INTERVAL
        self.current: int | None = None  # none yet: waiting for the first keyframe
        self._asked_at = -KEYFRAME_RETRY
        self._asked_for: int | None = None  # the layer whose keyframe was asked for

    def admit(
        self, layer: int, mime_type: str, payload: bytes, layers: Sequence[Layer], now: float
    ) -> int:
        """DROP, FORWARD, SWITCHED (forward: the first packet of the new layer's
        keyframe) or ASK (drop, and ask for a keyframe of `wanted()`)."""
        if layer == self.current:
            return FORWARD
        if now - self._best_at > RESELECT_INTERVAL:
            self._best, self._best_at = best_layer(layers, self._preferred, now), now
        if layer != self._best:
            return DROP
        if starts_keyframe(mime_type, payload):
            self.current = layer
            return SWITCHED
        if layer != self._asked_for or now - self._asked_at > KEYFRAME_RETRY:
            self._asked_at, self._asked_for = now, layer
            return ASK
        return DROP

    @property
    def preferred(self) -> int:
        return self._preferred

    @preferred.setter
    def preferred(self, layer: int) -> None:
        self._preferred = layer
        self._best_at = -RESELECT_INTERVAL  # work it out again at the next packet

    def wanted(self, layers: Sequence[Layer], now: float) -> int:
        """The layer the consumer forwards or is about to."""
        self._best, self._best_at = best_layer(layers, self._preferred, now), now
        return self._best


class ConsumerLayers:
    """A consumer's simulcast state: the layer wanted for its subscriber, the one it
    forwards (None: the producer has no simulcast), its temporal layers
    (sfu/temporal_layers.py) and its picture numbering."""

    __slots__ = ("preferred", "renumbers", "selector", "switches", "temporal", "vp8")

    def __init__(self) -> None:
        self.preferred: int | None = None  # None: the highest
        self.selector: LayerSelector | None = None
        self.vp8 = Vp8Continuity()
        self.temporal = TemporalFilter()
        self.switches = 0
        # Whether picture ids are rewritten: simulcast, or pictures left out.
        self.renumbers = False

    def attach(self, layer_count: int) -> None:
        """A new producer of `layer_count` layers."""
        self.selector = LayerSelector(self.target(layer_count)) if layer_count > 1 else None
        self.renumbers = self.selector is not None or self.temporal.pictures_left_out > 0
        self.vp8.switch()
        self.temporal.reset()

    def restart(self) -> None:
        """The producer resumes: a keyframe of any layer may restart the stream."""
        if self.selector is not None:
            self.selector.current = None
            self.vp8.switch()
        self.temporal.reset()

    def offered(self, layers: Sequence[Layer], now: float) -> Sequence[int]:
        """The layers the consumer must see: one once it forwards the one it wants (it
        would only drop the others), else all (it waits for a keyframe of the wanted one,
        or has no layer yet)."""
        selector = self.selector
        if selector is not None and selector.wanted(layers, now) == selector.current:
            return (selector.current,)
        return range(len(layers))

    def target(self, layer_count: int) -> int:
        wanted = self.preferred
        return layer_count - 1 if wanted is None else max(0, min(wanted, layer_count - 1))

    @property
    def layer(self) -> int:
        """The layer forwarded (or about to be); 0 without simulcast."""
        selector = self.selector
        if selector is None:
            return 0
        return selector.current if selector.current is not None else selector.preferred

    def switched(self) -> None:
        """The selector switched layer (SWITCHED): the picture numbering follows."""
        self.vp8.switch()
        self.temporal.reset()
        self.switches += 1

    def left_out(self, entry: CachedPacket, rewriter: StreamRewriter) -> bool:
        """Whether this packet's temporal layer is left out (numbering goes on without it)."""
        verdict = self.temporal.admit(entry)
        if verdict == KEEP:
            return False
        if verdict != LEAVE_OUT_LATE:
            rewriter.skip(entry.seq)
        if verdict == LEAVE_OUT_PICTURE:
            self.vp8.drop_picture(entry.payload)
            self.renumbers = True
        return True

    def forwarded_payload(self, mime_type: str, payload: bytes) -> bytes:
        if not self.renumbers or mime_type.lower() != "video/vp8":
            return payload
        return self.vp8.forward(payload)

    def resent_payload(self, mime_type: str, payload: bytes) -> bytes:
        if not self.renumbers or mime_type.lower() != "video/vp8":
            return payload
        return self.vp8.resent(payload)
