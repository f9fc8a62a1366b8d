"""Pure helpers behind the interactive upscale: display conversion, bicubic previews, tile scheduling.

Nothing here imports Qt, so it can be tested and reused without a display. The worker in
:mod:`app.worker` calls these from its thread: :class:`VisibleRegion` is the one object shared with the
GUI thread (a lock-protected snapshot of the LR rectangle on screen), :func:`make_priority` turns it into
the ``priority=`` callable of :func:`mlrn_core.tiling.upscale_array`. The core itself says which parts
of a finished tile are final (every overlapping tile blended in), so the viewer never shows the
half-blended, darkened seams of a tile whose neighbours are still pending.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import cv2
import numpy as np
import torch

from mlrn_core.imageio import picture_from_array, picture_to_uint8_rgb
from mlrn_core.metrics import imresize
from mlrn_core.tiling import Tile, auto_tile_size

#: LR tile size used for interactive viewing on a CPU: small enough that the first sharp tile of the
#: default MLRN (bf16) shows up within about a second on two cores, large enough that little is spent
#: on overlaps: a 24 MP x2 image took 166 s at 192 px against 179 s at 128
#: (``python benchmarks/big_photo.py --scales 2 --threads 2 --tile 192`` / ``--tile 128``).
INTERACTIVE_CPU_TILE = 192

#: Above this many output pixels (or with sides whose dense resize matrices would be large) the bicubic
#: preview uses OpenCV's bicubic instead of the MATLAB-exact one, which builds dense matrices.
EXACT_BICUBIC_MAX_PIXELS = 1_000_000
EXACT_BICUBIC_MAX_MATRIX_BYTES = 16 * 2**20

TILE_CHOICES = (128, 192, 256, 384, 512, 768, 1024)


def to_uint8(rgb: np.ndarray, band_pixels: int = 4_000_000) -> np.ndarray:
    """float32 HxWx3 RGB in [0, 1] (or uint16) -> uint8 HxWx3, rounded exactly as :mod:`mlrn_core.imageio` writes it.

    Float pixels that are all >= 0 (every decoded picture) go through OpenCV's saturating convert in one
    pass: ``x * 255`` rounded half to even and saturated at 255, the writer's clip-scale-rint exactly,
    about 5x faster (24 MP: 0.2 s instead of 1 s, on the way to the first visible tile). Anything else
    (negative values, NaN, uint16) is converted in bands of rows so a 100-megapixel result does not need
    several float copies at once.
    """
    if rgb.dtype == np.float32 and rgb.ndim == 3 and rgb.size and float(rgb.min()) >= 0.0:
        return cv2.convertScaleAbs(rgb, alpha=255.0)
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, band_pixels // max(1, w))
    for y in range(0, h, rows):
        out[y : y + rows] = picture_to_uint8_rgb(picture_from_array(rgb[y : y + rows]))
    return out


def interactive_tile(device: torch.device, model: torch.nn.Module | None = None) -> int:
    """The "Auto" tile size: small on a CPU (visible tiles come back quickly), memory-sized on a GPU."""
    if device.type == "cpu":
        return INTERACTIVE_CPU_TILE
    hp = getattr(model, "hparams", {}) if model is not None else {}
    scale = int(getattr(model, "scale", 2)) if model is not None else 2
    return auto_tile_size(device, hp.get("features", 32), hp.get("blocks", 8), scale)


def bicubic_uint8(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale of a uint8 HxWx3 image for display: MATLAB-exact when small, OpenCV when large."""
    h, w = lr_uint8.shape[:2]
    oh, ow = h * scale, w * scale
    matrix_bytes = max(oh * h, ow * w) * 8
    if oh * ow <= EXACT_BICUBIC_MAX_PIXELS and matrix_bytes <= EXACT_BICUBIC_MAX_MATRIX_BYTES:
        return imresize(lr_uint8, scale)
    return cv2.resize(lr_uint8, (ow, oh), interpolation=cv2.INTER_CUBIC)


def nearest_uint8(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Each LR pixel repeated ``scale`` x ``scale`` times: the original pixels at output size."""
    h, w = lr_uint8.shape[:2]
    return cv2.resize(lr_uint8, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)


class VisibleRegion:
    """The LR rectangle ``(x0, y0, x1, y1)`` on screen, written by the GUI and read by the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rect: tuple[float, float, float, float] | None = None

    def set(self, rect: tuple[float, float, float, float] | None) -> None:
        with self._lock:
            self._rect = rect

    def get(self) -> tuple[float, float, float, float] | None:
        with self._lock:
            return self._rect


def make_priority(
    region: VisibleRegion, default: tuple[float, float, float, float] | None = None
) -> Callable[[Tile], float]:
    """Lowest first: tiles on screen (nearest the centre of the view first), then by distance to it.

    ``default`` stands for the screen until the GUI has said what is visible (the whole image, as a
    view fitted to the window would show it); with neither, tiles go in grid order. The values are kept
    until the rectangle changes, and ``priority.version()`` (the rectangle) tells the core when to sort
    the pending tiles again, instead of asking for every one of them (thousands for a 24 MP photo)
    before each pick.
    """
    memo: dict[tuple[int, int, int, int], float] = {}
    seen: list[tuple[float, float, float, float] | None] = [None]

    def visible() -> tuple[float, float, float, float] | None:
        return region.get() or default

    def priority(t: Tile) -> float:
        rect = visible()
        if rect is None:
            return float(t.index)
        if rect != seen[0]:
            memo.clear()
            seen[0] = rect
        where = (t.x0, t.y0, t.x1, t.y1)
        value = memo.get(where)
        if value is None:
            x0, y0, x1, y1 = rect
            dx = max(x0 - t.x1, 0.0, t.x0 - x1)
            dy = max(y0 - t.y1, 0.0, t.y0 - y1)
            centre = math.hypot((t.x0 + t.x1 - x0 - x1) / 2, (t.y0 + t.y1 - y0 - y1) / 2)
            # rounded so that rounding noise in the rectangle (199.99999 vs 200) cannot reorder equidistant tiles
            value = memo[where] = round(math.hypot(dx, dy), 1) * 1e4 + round(centre, 2)
        return value

    # the values change only with the rectangle: the core sorts the pending tiles once per rectangle
    priority.version = visible  # type: ignore[attr-defined]
    return priority


def detail_focus(levels: list[np.ndarray], window: float = 0.25, side: int = 256) -> tuple[float, float]:
    """Where the picture holds the most fine detail, as (x, y) fractions of its size: the first view opens
    there at 100%, where MLRN's difference from bicubic shows (a fitted view shrinks it away).

    ``levels`` is the picture's display pyramid (full size first, each half the last); the level nearest
    ``side`` pixels is used, so this costs a few milliseconds whatever the photo's size. Detail is the local
    mean of the gradient magnitude of its gray values over a window of ``window`` times the shorter side;
    a mild pull to the centre settles ties (flat skies, studio backdrops) on the middle of the frame.
    """
    level = next((lv for lv in levels if max(lv.shape[:2]) <= side), levels[-1])
    h, w = level.shape[:2]
    if h < 4 or w < 4:
        return 0.5, 0.5
    gray = level.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=1))[:-1] + np.abs(np.diff(gray, axis=0))[:, :-1]
    k = max(3, int(window * min(h, w)) | 1)
    local = cv2.blur(energy, (k, k), borderType=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0 : local.shape[0], 0 : local.shape[1]].astype(np.float32)
    dist = np.hypot((xx + 0.5) / local.shape[1] - 0.5, (yy + 0.5) / local.shape[0] - 0.5)
    score = (local + 1e-3) * (1.0 - 0.5 * dist)  # from 1 at the centre to about 0.65 in a corner
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return (x + 1.0) / w, (y + 1.0) / h
