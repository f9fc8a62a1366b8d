"""A display pyramid: an image and its successive 2x box-filtered reductions, for fast zoomed-out views.

Painting a 96-megapixel result at "fit" from the full-size array would resample every pixel on each
repaint; the viewer instead draws from the smallest level that still has at least one source pixel
per screen pixel. Levels are built once in a worker (:meth:`Pyramid.build`) or start black and are
filled tile by tile on the GUI thread (:meth:`Pyramid.zeros` + :meth:`Pyramid.paste`, which only
touches the pasted region of each level). ``unit`` is how many output pixels one level-0 pixel covers:
1 for images at output size, the scale for the LR input shown as a placeholder.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Levels stop once the longest side is at most this many pixels.
MIN_LEVEL_SIDE = 256


def _half(src: np.ndarray) -> np.ndarray:
    """2x2 box average (edge-replicated when a side is odd); output side = ceil(side / 2)."""
    h, w = src.shape[:2]
    if h % 2 or w % 2:
        src = np.pad(src, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return cv2.resize(src, (src.shape[1] // 2, src.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _level_shapes(h: int, w: int) -> list[tuple[int, int]]:
    shapes = [(h, w)]
    while max(shapes[-1]) > MIN_LEVEL_SIDE:
        ph, pw = shapes[-1]
        shapes.append(((ph + 1) // 2, (pw + 1) // 2))
    return shapes


class Pyramid:
    """uint8 HxWx3 level 0 and its reductions; see the module docstring."""

    def __init__(self, levels: list[np.ndarray], unit: int = 1) -> None:
        if not levels or levels[0].ndim != 3 or levels[0].shape[2] != 3 or levels[0].dtype != np.uint8:
            raise ValueError("a pyramid needs a uint8 HxWx3 level 0")
        self.levels = levels
        self.unit = int(unit)

    @classmethod
    def build(cls, image: np.ndarray, unit: int = 1) -> Pyramid:
        image = np.ascontiguousarray(image)
        levels = [image]
        for _ in _level_shapes(*image.shape[:2])[1:]:
            levels.append(_half(levels[-1]))
        return cls(levels, unit)

    @classmethod
    def stand_in(cls, image: np.ndarray, width: int, height: int) -> Pyramid:
        """A pyramid covering ``width`` x ``height`` output pixels drawn from a smaller ``image`` of the same
        picture (a RAW file's embedded preview): resized to a whole number of output pixels per pixel."""
        unit = max(1, round(width / max(1, image.shape[1])))
        size = (max(1, -(-width // unit)), max(1, -(-height // unit)))
        return cls.build(cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR), unit)

    @classmethod
    def zeros(cls, height: int, width: int) -> Pyramid:
        # np.zeros maps untouched pages lazily, so even a huge black canvas costs nothing up front
        return cls([np.zeros((h, w, 3), np.uint8) for h, w in _level_shapes(height, width)])

    @property
    def width(self) -> int:
        """Width in output pixels."""
        return self.levels[0].shape[1] * self.unit

    @property
    def height(self) -> int:
        return self.levels[0].shape[0] * self.unit

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels)

    def paste(self, x: int, y: int, block: np.ndarray) -> None:
        """Write ``block`` at level-0 position (x, y) and refresh the covered part of every level."""
        bh, bw = block.shape[:2]
        self.levels[0][y : y + bh, x : x + bw] = block
        self.refresh(x, y, bw, bh)

    def refresh(self, x: int, y: int, w: int, h: int) -> None:
        """Recompute the reductions over the level-0 rectangle (x, y, w, h), e.g. after writing it in place."""
        x0, y0, x1, y1 = x, y, x + w, y + h
        for k in range(1, len(self.levels)):
            src = self.levels[k - 1]
            x0, y0 = x0 // 2, y0 // 2
            x1, y1 = (x1 + 1) // 2, (y1 + 1) // 2
            part = src[2 * y0 : min(2 * y1, src.shape[0]), 2 * x0 : min(2 * x1, src.shape[1])]
            self.levels[k][y0:y1, x0:x1] = _half(part)

    def level_for(self, zoom: float) -> int:
        """The smallest level with at least one pixel per screen pixel at ``zoom`` (screen px per output px)."""
        k = 0
        while k + 1 < len(self.levels) and self.unit * 2 ** (k + 1) * zoom <= 1.0:
            k += 1
        return k
