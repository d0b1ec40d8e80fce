"""Where tiles go on the canvas: pure geometry, no pixels.

Rectangles have even coordinates and sizes, so they map onto 4:2:0 chroma exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def contains(self, other: Rect) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """The large screen-share rectangle (if any) and one rectangle per small tile."""

    screen: Rect | None
    tiles: list[Rect]


def _even_down(value: float) -> int:
    return max(0, int(value) // 2 * 2)


def default_gap(width: int, height: int) -> int:
    return max(2, _even_down(min(width, height) * 0.008))


def fit_inside(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest even size with the source's aspect that fits the box (at least 2x2)."""
    if src_w <= 0 or src_h <= 0 or box_w <= 0 or box_h <= 0:
        return (0, 0)
    scale = min(box_w / src_w, box_h / src_h)
    return (max(2, _even_down(src_w * scale)), max(2, _even_down(src_h * scale)))


def grid(area: Rect, count: int, aspect: float, gap: int) -> list[Rect]:
    """`count` equal tiles of the given aspect, as large as fit in `area`.

    Tries every column count and keeps the one giving the largest tiles (a near-square
    grid for a landscape area); the grid is centred and a short last row is centred too.
    """
    if count <= 0 or area.w <= 0 or area.h <= 0:
        return []
    best: tuple[float, int, int, int, int] | None = None  # (-area, empty, cols, w, h)
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        cell_w = (area.w - gap * (cols + 1)) / cols
        cell_h = (area.h - gap * (rows + 1)) / rows
        if cell_w < 2 or cell_h < 2:
            continue
        tile_w = min(cell_w, cell_h * aspect)
        tile_h = tile_w / aspect
        w, h = _even_down(tile_w), _even_down(tile_h)
        if w < 2 or h < 2:
            continue
        key = (-(w * h), cols * rows - count, cols, w, h)
        if best is None or key < best:
            best = key
    if best is None:
        return []
    _, _, cols, w, h = best
    rows = math.ceil(count / cols)
    grid_h = rows * h + (rows - 1) * gap
    top = area.y + _even_down((area.h - grid_h) / 2)
    rects: list[Rect] = []
    for row in range(rows):
        in_row = min(cols, count - row * cols)
        row_w = in_row * w + (in_row - 1) * gap
        left = area.x + _even_down((area.w - row_w) / 2)
        y = top + row * (h + gap)
        rects.extend(Rect(left + col * (w + gap), y, w, h) for col in range(in_row))
    return rects


def compute_layout(
    width: int,
    height: int,
    small_count: int,
    *,
    screen: bool,
    aspect: float = 16 / 9,
    screen_fraction: float = 0.75,
    gap: int | None = None,
) -> Layout:
    """The grid of `small_count` tiles, or the share large on the left and them beside it."""
    if gap is None:
        gap = default_gap(width, height)
    canvas = Rect(0, 0, width, height)
    if not screen:
        return Layout(None, grid(canvas, small_count, aspect, gap))
    if small_count == 0:
        return Layout(Rect(gap, gap, _even_down(width - 2 * gap), _even_down(height - 2 * gap)), [])
    share_w = _even_down(width * screen_fraction)
    share = Rect(gap, gap, _even_down(share_w - 2 * gap), _even_down(height - 2 * gap))
    strip = Rect(share_w, 0, width - share_w, height)
    # Beside the share, tiles stack in a column (or a small grid when there are many).
    return Layout(share, grid(strip, small_count, aspect, gap))
