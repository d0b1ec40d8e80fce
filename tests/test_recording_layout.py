"""Recording layout and compositor: tile geometry, letterboxing, placeholders, labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recording.compositor import BACKGROUND, LETTERBOX, Compositor, Tile, label_height
from recording.labels import LabelRenderer, initials, tile_colour
from recording.layout import Rect, compute_layout, fit_inside, grid
from recording.options import DEFAULT_FONT

W, H = 1280, 720
CANVAS = Rect(0, 0, W, H)


def assert_disjoint_inside(rects: list[Rect], area: Rect = CANVAS) -> None:
    for rect in rects:
        assert area.contains(rect), rect
        assert rect.w > 0 and rect.h > 0
        assert rect.x % 2 == rect.y % 2 == rect.w % 2 == rect.h % 2 == 0, rect
    for a, b in itertools.combinations(rects, 2):
        assert not a.overlaps(b), (a, b)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 7, 9, 12, 16, 25, 31, 40])
def test_grid_tiles_are_equal_disjoint_and_keep_the_aspect(count: int) -> None:
    layout = compute_layout(W, H, count, screen=False)
    assert layout.screen is None
    rects = layout.tiles
    assert len(rects) == count
    assert_disjoint_inside(rects)
    assert len({(r.w, r.h) for r in rects}) == 1
    for rect in rects:
        assert abs(rect.w / rect.h - 16 / 9) < 0.05
    # Near-square: the grid uses a good part of the canvas (no long single row).
    used = sum(r.area for r in rects) / (W * H)
    assert used > {1: 0.9, 2: 0.45, 3: 0.45}.get(count, 0.5), used


def test_grid_picks_the_column_count_with_the_largest_tiles() -> None:
    rects = compute_layout(W, H, 4, screen=False).tiles
    assert sorted({r.y for r in rects}) == [rects[0].y, rects[2].y]  # 2 x 2
    rects = compute_layout(W, H, 31, screen=False).tiles
    rows = sorted({r.y for r in rects})
    cols = sorted({r.x for r in rects if r.y == rows[0]})
    assert (len(cols), len(rows)) == (6, 6)
    # Brute force: no other column count gives bigger tiles.
    best = max(r.area for r in rects)
    for c in range(1, 32):
        r = -(-31 // c)
        tile_w = min((W - 8 * (c + 1)) / c, (H - 8 * (r + 1)) / r * 16 / 9)
        assert tile_w * tile_w * 9 / 16 <= best * 1.1


def test_short_last_row_is_centred() -> None:
    rects = compute_layout(W, H, 3, screen=False).tiles
    top, bottom = rects[:2], rects[2:]
    assert bottom[0].y > top[0].y
    centre = bottom[0].x + bottom[0].w / 2
    assert abs(centre - W / 2) <= 2


@pytest.mark.parametrize("count", [0, 1, 2, 5, 12, 30])
def test_screen_share_is_large_and_people_are_small_beside_it(count: int) -> None:
    layout = compute_layout(W, H, count, screen=True, screen_fraction=0.75)
    assert layout.screen is not None
    share = layout.screen
    assert_disjoint_inside([share, *layout.tiles])
    assert len(layout.tiles) == count
    assert share.area >= 0.6 * W * H if count else share.area >= 0.9 * W * H
    for tile in layout.tiles:
        assert tile.x >= share.right  # beside it, in the strip on the right
        assert tile.area * 4 < share.area


def test_grid_in_a_narrow_strip_stacks_in_a_column() -> None:
    rects = grid(Rect(960, 0, 320, 720), 3, 16 / 9, 8)
    assert len({r.x for r in rects}) == 1
    assert len({r.y for r in rects}) == 3


def test_fit_inside_keeps_the_aspect() -> None:
    assert fit_inside(320, 240, 400, 200) == (266, 200)
    assert fit_inside(1920, 1080, 640, 640) == (640, 360)
    assert fit_inside(0, 240, 100, 100) == (0, 0)
    w, h = fit_inside(333, 111, 500, 500)
    assert w % 2 == h % 2 == 0 and abs(w / h - 3) < 0.05


def solid(colour: tuple[int, int, int], w: int, h: int) -> np.ndarray:
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = colour
    return frame


def test_compose_letterboxes_frames_and_keeps_their_colour() -> None:
    compositor = Compositor(W, H)
    tiles = [Tile("Red", solid((200, 0, 0), 320, 240)), Tile("Blue", solid((0, 0, 200), 640, 360))]
    rects = compositor.layout(tiles)
    canvas = compositor.compose(tiles, rects)
    assert canvas.shape == (H, W, 3)
    red, blue = rects
    cy = red.y + red.h // 3
    assert tuple(canvas[cy, red.x + red.w // 2]) == (200, 0, 0)
    # 4:3 in a 16:9 tile: black bars left and right.
    assert tuple(canvas[cy, red.x + 2]) == LETTERBOX
    assert tuple(canvas[cy, red.right - 3]) == LETTERBOX
    # 16:9 fills its tile (scaled down from 640x360 with the numpy fallback).
    assert tuple(canvas[blue.y + blue.h // 3, blue.x + 2]) == (0, 0, 200)
    # Outside the tiles: background.
    assert tuple(canvas[1, 1]) == BACKGROUND


def test_placeholder_tile_for_a_camera_that_is_off() -> None:
    compositor = Compositor(W, H)
    tiles = [Tile("Ольга Смирнова", None), Tile("Red", solid((200, 0, 0), 320, 180))]
    rect = compositor.layout(tiles)[0]
    canvas = compositor.compose(tiles)
    area = canvas[rect.y : rect.bottom, rect.x : rect.right]
    assert tuple(area[4, 4]) == tile_colour("Ольга Смирнова")
    centre = area[rect.h // 2 - 30 : rect.h // 2 + 10, rect.w // 2 - 40 : rect.w // 2 + 40]
    # The initials in a lighter circle: bright pixels in the middle of the tile.
    assert (centre.min(axis=2) > 200).sum() > 50
    assert initials("Ольга Смирнова") == "ОС"
    assert initials("teacher") == "T"
    assert initials("  ") == "?"


def test_label_strip_shows_the_name() -> None:
    compositor = Compositor(W, H)
    tiles = [Tile("Анна Каренина", solid((0, 120, 0), 320, 180))]
    rect = compositor.layout(tiles)[0]
    canvas = compositor.compose(tiles)
    strip_h = label_height(rect.h)
    strip = canvas[rect.bottom - strip_h : rect.bottom, rect.x : rect.right]
    above = canvas[rect.bottom - 2 * strip_h : rect.bottom - strip_h, rect.x + 8 : rect.right - 8]
    assert (above == (0, 120, 0)).all()
    text = strip.min(axis=2) > 180  # light text on the darkened strip
    assert text.sum() > 100
    assert not text[:, strip.shape[1] // 2 :].any()  # left-aligned and short
    # The strip darkens the picture under it.
    assert (strip[:, strip.shape[1] // 2 : -8] == (0, 60, 0)).all()


def test_long_names_are_cut_to_fit() -> None:
    labels = LabelRenderer()
    mask = labels.text_mask("Очень-очень длинное имя ученика " * 3, 120, 20)
    assert mask.shape == (20, 120)
    assert mask[:, -3:].max() == 0  # nothing drawn into the right padding


def test_renderer_uses_dejavu_when_present() -> None:
    labels = LabelRenderer()
    assert labels.scalable == DEFAULT_FONT.is_file()
    fallback = LabelRenderer(font_path=None)
    assert not fallback.scalable
    assert fallback.text_mask("Name", 100, 20).max() > 0


def test_screen_share_tile_is_drawn_large() -> None:
    compositor = Compositor(W, H)
    tiles = [
        Tile("Anna", solid((200, 0, 0), 320, 180)),
        Tile("Screen", solid((0, 0, 200), 1920, 1080), screen=True),
        Tile("Boris", None),
    ]
    rects = compositor.layout(tiles)
    assert rects[1].area > 4 * max(rects[0].area, rects[2].area)
    canvas = compositor.compose(tiles, rects)
    share = rects[1]
    blue = (canvas == (0, 0, 200)).all(axis=2).sum()
    assert blue > 0.5 * share.area
