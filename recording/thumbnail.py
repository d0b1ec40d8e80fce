"""A still for the recording's listing: the composed frame nearest the middle.

The length is unknown until the end, so snapshots (small JPEGs) are taken at an interval
that doubles whenever more than `keep` are held, dropping every other one: memory stays
bounded and some snapshot is always within about 1/`keep` of the length from the middle.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


class ThumbnailPicker:
    def __init__(
        self, width: int, *, first_s: float = 0.5, interval_s: float = 1.0, keep: int = 16
    ):
        self.width = width
        self._interval = interval_s
        self._next = first_s
        self._keep = keep
        self._shots: list[tuple[float, bytes]] = []
        self._last: tuple[float, np.ndarray] | None = None

    def offer(self, t: float, canvas: np.ndarray) -> None:
        """A composed frame at `t` seconds into the recording (the canvas is not kept)."""
        if self.width <= 0:
            return
        if t >= self._next:
            self._shots.append((t, self._encode(canvas)))
            self._next = t + self._interval
            if len(self._shots) > self._keep:
                self._shots = self._shots[::2]
                self._interval *= 2
        elif not self._shots:
            self._last = (t, canvas.copy())  # a recording shorter than `first_s`

    def write(self, path: Path, duration_s: float) -> Path | None:
        """Writes the snapshot nearest the middle as JPEG; None when there is none."""
        if not self._shots and self._last is not None:
            self._shots.append((self._last[0], self._encode(self._last[1])))
        if not self._shots:
            return None
        middle = duration_s / 2
        _, jpeg = min(self._shots, key=lambda shot: abs(shot[0] - middle))
        path.write_bytes(jpeg)
        return path

    def _encode(self, canvas: np.ndarray) -> bytes:
        image = Image.fromarray(canvas, "RGB")
        if image.width != self.width:
            height = max(2, round(image.height * self.width / image.width))
            image = image.resize((self.width, height), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return out.getvalue()
