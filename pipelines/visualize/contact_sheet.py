"""Pictures of clips and maps: heat-map colouring, overlays, outlines and labelled grids.

Arrays in (frames ``H, W, 3`` uint8, maps ``H, W`` float in [0, 1], masks ``H, W`` bool),
arrays or Pillow images out. Nothing here knows about FAME or the cache; ``visualize.py``
decides what goes into which row.

>>> sheet = contact_sheet([("frames", frames), ("soft map", overlays)],   # doctest: +SKIP
...                       title=["v_Circle_g01_c01"], column_labels=["t=0", "t=8"])
>>> sheet.save("sheet.png")                                               # doctest: +SKIP
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Anchor colours of the heat map (0 -> black-purple, 1 -> pale yellow), an inferno-like ramp
#: that stays readable in greyscale: brightness grows with the value.
HEAT_ANCHORS = (
    (0.00, (0, 0, 4)),
    (0.25, (87, 16, 110)),
    (0.50, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.00, (252, 255, 164)),
)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
FONT_SIZE = 13
LINE_HEIGHT = 17  # pixels per line of text
PAD = 4  # pixels around tiles and text
LABEL_WIDTH = 150  # pixels of the row-label column
LABEL_CHARS = 21  # characters per line of a row label
#: tiles are enlarged (nearest neighbour, by a whole factor) until their shorter side is at least this
MIN_TILE_SIDE = 96


@lru_cache(maxsize=1)
def heat_lut() -> np.ndarray:
    """The heat map as a 256-entry RGB lookup table: 256, 3 uint8."""
    positions = [p for p, _ in HEAT_ANCHORS]
    levels = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(levels, positions, [c[i] for _, c in HEAT_ANCHORS]) for i in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)  # 256, 3


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (..., H, W) coloured with the heat map: ..., H, W, 3 uint8."""
    levels = np.rint(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * 255).astype(np.intp)
    return heat_lut()[levels]


def blend(frame: np.ndarray, colours: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``(1 - alpha) * frame + alpha * colours``: H, W, 3 uint8."""
    mixed = (1.0 - alpha) * frame.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def dim_outside(frame: np.ndarray, mask: np.ndarray, brightness: float = 0.25) -> np.ndarray:
    """The frame with every pixel outside ``mask`` darkened to ``brightness``: H, W, 3 uint8."""
    weight = np.where(mask, 1.0, brightness).astype(np.float32)[..., None]  # H, W, 1
    return np.rint(frame.astype(np.float32) * weight).astype(np.uint8)


def dilate(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W bool) grown by one pixel towards its 4 neighbours."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    return padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]


def erode(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W bool) shrunk by one pixel from its 4 neighbours; the image border counts as inside."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1, mode="edge")
    return padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def boundary(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels of ``mask`` (H, W bool) within ``width`` steps of a pixel outside it."""
    inner = np.asarray(mask, dtype=bool)
    for _ in range(width):
        inner = erode(inner)
    return mask & ~inner


def draw_outline(
    frame: np.ndarray,
    mask: np.ndarray,
    colour: Sequence[int],
    *,
    width: int = 1,
    halo: Sequence[int] | None = (0, 0, 0),
) -> np.ndarray:
    """A copy of ``frame`` with the outline (``width`` pixels, inside) of ``mask`` in ``colour``
    and a one-pixel ``halo`` just outside it, so it shows on any background (None: no halo)."""
    out = frame.copy()
    if halo is not None:
        out[dilate(mask) & ~mask] = halo
    out[boundary(mask, width)] = colour
    return out


def upscale_factor(height: int, width: int, min_side: int = MIN_TILE_SIDE) -> int:
    """The whole factor that brings the shorter side of a tile to at least ``min_side``."""
    return max(1, math.ceil(min_side / max(1, min(height, width))))


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor (crisp pixels, no new colours)."""
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


@lru_cache(maxsize=4)
def font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    """Pillow's bundled font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def _draw_lines(draw: ImageDraw.ImageDraw, xy: tuple[int, int], lines: Sequence[str], fill=TEXT) -> None:
    x, y = xy
    for i, line in enumerate(lines):
        draw.text((x, y + i * LINE_HEIGHT), line, font=font(), fill=fill)


def _wrap(label: str, width: int) -> list[str]:
    return [piece for line in label.split("\n") for piece in (textwrap.wrap(line, width) or [""])]


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    *,
    title: Sequence[str] = (),
    column_labels: Sequence[str] = (),
) -> Image.Image:
    """A labelled grid: one row per ``(label, tiles)``, tiles H, W, 3 uint8 all of one size.

    Title lines go on top, ``column_labels`` above the columns, each row's label on its left.
    Small tiles are enlarged by a whole factor (see ``MIN_TILE_SIDE``) so the labels fit.
    """
    if not rows or not rows[0][1]:
        raise ValueError("a contact sheet needs at least one row with one tile")
    columns = max(len(tiles) for _, tiles in rows)
    height, width = rows[0][1][0].shape[:2]
    factor = upscale_factor(height, width)
    tile_h, tile_w = height * factor, width * factor
    labels = [_wrap(label, LABEL_CHARS) for label, _ in rows]
    row_h = [max(tile_h, len(lines) * LINE_HEIGHT) + PAD for lines in labels]
    top = PAD + LINE_HEIGHT * len(title) + (LINE_HEIGHT if column_labels else 0) + PAD
    sheet = Image.new("RGB", (LABEL_WIDTH + columns * (tile_w + PAD) + PAD, top + sum(row_h)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_lines(draw, (PAD, PAD), title)
    for c, text in enumerate(column_labels):
        _draw_lines(draw, (LABEL_WIDTH + c * (tile_w + PAD), top - LINE_HEIGHT - PAD // 2), [text])
    y = top
    for (_, tiles), lines, h in zip(rows, labels, row_h):
        _draw_lines(draw, (PAD, y), lines)
        for c, tile in enumerate(tiles):
            if tile.shape[:2] != (height, width):
                raise ValueError(f"tiles must all be {height}x{width}, got {tile.shape[0]}x{tile.shape[1]}")
            sheet.paste(Image.fromarray(enlarge(tile, factor)), (LABEL_WIDTH + c * (tile_w + PAD), y))
        y += h
    return sheet


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str], footer: str = "") -> np.ndarray:
    """Panels (H, W, 3 uint8, one size) in a row, a label above each and a footer line below.

    Returns H', W', 3 uint8 with even sides (what H.264 in yuv420p needs).
    """
    height, width = panels[0].shape[:2]
    factor = upscale_factor(height, width)
    tile_h, tile_w = height * factor, width * factor
    total_w = len(panels) * (tile_w + PAD) + PAD
    total_h = LINE_HEIGHT + PAD + tile_h + PAD + (LINE_HEIGHT if footer else 0)
    image = Image.new("RGB", (total_w + total_w % 2, total_h + total_h % 2), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, (panel, label) in enumerate(zip(panels, labels, strict=True)):
        x = PAD + i * (tile_w + PAD)
        draw.text((x, PAD // 2), label, font=font(), fill=TEXT)
        image.paste(Image.fromarray(enlarge(panel, factor)), (x, LINE_HEIGHT + PAD))
    if footer:
        draw.text((PAD, LINE_HEIGHT + PAD + tile_h + PAD // 2), footer, font=font(), fill=TEXT)
    return np.asarray(image)
