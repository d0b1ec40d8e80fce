"""Text for the recording: name strips and camera-off placeholders, rendered with Pillow.

Everything is rendered once per (text, size) and cached as numpy arrays, so composing a
frame never touches Pillow.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from recording.options import DEFAULT_FONT

# Muted tile colours for placeholders; a name always gets the same one.
_PALETTE = (
    (52, 73, 94),
    (88, 61, 114),
    (35, 94, 96),
    (110, 66, 56),
    (52, 92, 58),
    (96, 84, 40),
    (70, 70, 110),
    (104, 56, 84),
)
# Rendered masks and placeholders kept (layouts change when people come and go).
_CACHE_BYTES = 64 * 1024 * 1024
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def initials(name: str) -> str:
    """Up to two capital letters from a name: "Иван Петров" -> "ИП"."""
    words = [w for w in name.replace("_", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][0].upper()
    return (words[0][0] + words[-1][0]).upper()


def tile_colour(name: str) -> tuple[int, int, int]:
    digest = hashlib.blake2s(name.encode("utf-8"), digest_size=2).digest()
    return _PALETTE[int.from_bytes(digest, "big") % len(_PALETTE)]


class _Cache:
    """Least recently used arrays, bounded by their total size."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
            return value
        value = make()
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self._max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return value


class LabelRenderer:
    """Renders names with a TrueType font (DejaVu Sans covers Latin and Cyrillic)."""

    def __init__(self, font_path: Path | None = DEFAULT_FONT) -> None:
        self._font_path = font_path if font_path is not None and font_path.is_file() else None
        self._fonts: dict[int, Font] = {}
        self._cache = _Cache(_CACHE_BYTES)

    @property
    def scalable(self) -> bool:
        """False when the font file is missing and Pillow's fallback font is used."""
        return self._font_path is not None

    def font(self, size: int) -> Font:
        size = max(6, size)
        font = self._fonts.get(size)
        if font is None:
            if self._font_path is not None:
                font = ImageFont.truetype(str(self._font_path), size)
            else:
                try:
                    font = ImageFont.load_default(size)
                except TypeError:  # Pillow < 10.1: fixed-size bitmap font
                    font = ImageFont.load_default()
            self._fonts[size] = font
        return font

    def text_mask(self, text: str, width: int, height: int) -> np.ndarray:
        """An 8-bit coverage mask (height x width) with `text` left-aligned, cut with "…"."""
        return self._cache.get(
            ("mask", text, width, height), lambda: self._text_mask(text, width, height)
        )

    def placeholder(self, name: str, width: int, height: int) -> np.ndarray:
        """An RGB tile for a person without video: their colour and initials in a circle."""
        return self._cache.get(
            ("placeholder", name, width, height), lambda: self._placeholder(name, width, height)
        )

    def _text_mask(self, text: str, width: int, height: int) -> np.ndarray:
        image = Image.new("L", (max(1, width), max(1, height)), 0)
        if width > 8 and height > 4 and text:
            font = self.font(int(height * 0.68))
            pad = max(2, height // 4)
            shown = self._ellipsize(text, font, width - 2 * pad)
            _draw_centred(ImageDraw.Draw(image), shown, font, 255, left=pad, cy=height / 2)
        return np.asarray(image, dtype=np.uint8).copy()

    def _ellipsize(self, text: str, font: Font, max_width: int) -> str:
        if font.getlength(text) <= max_width:
            return text
        for end in range(len(text) - 1, 0, -1):
            candidate = text[:end].rstrip() + "…"
            if font.getlength(candidate) <= max_width:
                return candidate
        return ""

    def _placeholder(self, name: str, width: int, height: int) -> np.ndarray:
        colour = tile_colour(name)
        image = Image.new("RGB", (max(1, width), max(1, height)), colour)
        diameter = int(min(width, height) * 0.5)
        if diameter >= 8:
            draw = ImageDraw.Draw(image)
            cx, cy = width / 2, height / 2 - height * 0.05
            r = diameter / 2
            circle = tuple(min(255, c + 45) for c in colour)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=circle)
            font = self.font(int(diameter * 0.42))
            _draw_centred(draw, initials(name), font, (240, 240, 240), cx=cx, cy=cy)
        return np.asarray(image, dtype=np.uint8).copy()


def _draw_centred(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: Font,
    fill: int | tuple[int, int, int],
    *,
    cy: float,
    cx: float | None = None,
    left: float | None = None,
) -> None:
    """Draw text centred vertically on `cy`, and on `cx` or starting at `left`.

    Positions come from the text's bounding box, which works for the fallback bitmap
    font too (it has no anchors).
    """
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    x = (left - x0) if left is not None else (cx or 0) - (x0 + x1) / 2
    draw.text((x, cy - (y0 + y1) / 2), text, font=font, fill=fill)
