"""Composes one RGB canvas from tiles with numpy: grid or screen share, labels, placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recording.labels import LabelRenderer
from recording.layout import Rect, compute_layout, default_gap, fit_inside

BACKGROUND = (22, 24, 28)
LETTERBOX = (0, 0, 0)


@dataclass(slots=True)
class Tile:
    """One tile: a name, the latest RGB frame (h x w x 3 uint8) or None, and whether it is a
    shared screen. The first screen tile is shown large."""

    label: str
    frame: np.ndarray | None = None
    screen: bool = False


def label_height(tile_h: int) -> int:
    """Height of the name strip at the bottom of a tile."""
    return max(10, min(32, tile_h // 7)) // 2 * 2


def resize_nearest(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize in numpy (the recorder hands over frames already scaled;
    this keeps the compositor correct for any input)."""
    src_h, src_w = frame.shape[:2]
    if (src_w, src_h) == (width, height):
        return frame
    rows = (np.arange(height) * src_h // height).clip(0, src_h - 1)
    cols = (np.arange(width) * src_w // width).clip(0, src_w - 1)
    return frame[rows[:, None], cols[None, :]]


class Compositor:
    """Lays tiles out on a fixed-size canvas and paints them.

    `layout()` gives each tile's rectangle (so callers can scale frames to fit before
    composing); `compose()` paints and returns the canvas, which is reused by the next call.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        aspect: float = 16 / 9,
        screen_fraction: float = 0.75,
        labels: LabelRenderer | None = None,
    ) -> None:
        self.width = width
        self.height = height
        self.aspect = aspect
        self.screen_fraction = screen_fraction
        self.gap = default_gap(width, height)
        self.labels = labels if labels is not None else LabelRenderer()
        self._canvas = np.empty((height, width, 3), dtype=np.uint8)
        self._background = np.empty_like(self._canvas)
        self._background[:] = BACKGROUND

    def layout(self, tiles: Sequence[Tile]) -> list[Rect]:
        """The rectangle of every tile, in the order given."""
        large = next((i for i, tile in enumerate(tiles) if tile.screen), None)
        small_count = len(tiles) - (large is not None)
        layout = compute_layout(
            self.width,
            self.height,
            small_count,
            screen=large is not None,
            aspect=self.aspect,
            screen_fraction=self.screen_fraction,
            gap=self.gap,
        )
        small = iter(layout.tiles)
        rects: list[Rect] = []
        for i in range(len(tiles)):
            if i == large:
                assert layout.screen is not None
                rects.append(layout.screen)
            else:
                rects.append(next(small, Rect(0, 0, 0, 0)))
        return rects

    def frame_size(self, rect: Rect, src_w: int, src_h: int) -> tuple[int, int]:
        """The size a source frame should be scaled to for this tile (aspect kept)."""
        return fit_inside(src_w, src_h, rect.w, rect.h)

    def compose(self, tiles: Sequence[Tile], rects: Sequence[Rect] | None = None) -> np.ndarray:
        if rects is None:
            rects = self.layout(tiles)
        canvas = self._canvas
        np.copyto(canvas, self._background)  # a plain copy: much faster than broadcasting
        for tile, rect in zip(tiles, rects, strict=True):
            if rect.w < 2 or rect.h < 2:
                continue
            self._paint_tile(canvas, tile, rect)
        return canvas

    def _paint_tile(self, canvas: np.ndarray, tile: Tile, rect: Rect) -> None:
        area = canvas[rect.y : rect.bottom, rect.x : rect.right]
        frame = tile.frame
        if frame is None or frame.ndim != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
            area[:] = self.labels.placeholder(tile.label, rect.w, rect.h)
        else:
            area.fill(0)  # LETTERBOX
            src_h, src_w = frame.shape[:2]
            if src_w > rect.w or src_h > rect.h or (src_w < rect.w and src_h < rect.h):
                w, h = fit_inside(src_w, src_h, rect.w, rect.h)
                frame = resize_nearest(frame, w, h)
            h, w = frame.shape[:2]
            top = (rect.h - h) // 2
            left = (rect.w - w) // 2
            area[top : top + h, left : left + w] = frame[:, :, :3]
        self._paint_label(area, tile.label)

    def _paint_label(self, area: np.ndarray, label: str) -> None:
        if not label:
            return
        tile_h, tile_w = area.shape[:2]
        strip_h = label_height(tile_h)
        if strip_h >= tile_h:
            return
        strip = area[tile_h - strip_h :]
        np.right_shift(strip, 1, out=strip)  # darken what is under the name
        mask = self.labels.text_mask(label, tile_w, strip_h)
        alpha = mask[:, :, None].astype(np.uint16)
        strip[:] = (strip * (255 - alpha) + 245 * alpha) // 255
