"""Very thin images (1-2 px in one dimension) through a convolutional network.

The network pads with zeros at the borders, which only touches a thin band of a normal photo; in an
image a few pixels high every pixel is "border", and the zeros pull the colours dark or tinted.
:func:`pad_thin` extends such an image by repeating its edge pixels up to :data:`MIN_SIDE` before the
network sees it; :func:`crop_upscaled` cuts the upscaled padding off again. :func:`mlrn_core.tiling.upscale_array`
does both, so the app, batch, ``mlrn upscale`` and the wizard all treat thin pictures alike.
"""

from __future__ import annotations

import numpy as np

#: Sides shorter than this are padded by edge replication before upscaling.
MIN_SIDE = 16


def pad_thin(rgb: np.ndarray, alpha: np.ndarray | None = None, min_side: int = MIN_SIDE):
    """-> (rgb, alpha, (top, left, height, width)); unchanged (and box None) when both sides are long enough."""
    h, w = rgb.shape[:2]
    if h >= min_side and w >= min_side:
        return rgb, alpha, None
    top = max(0, min_side - h) // 2
    bottom = max(0, min_side - h) - top
    left = max(0, min_side - w) // 2
    right = max(0, min_side - w) - left
    padded = np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode="edge")
    padded_alpha = None if alpha is None else np.pad(alpha, ((top, bottom), (left, right)), mode="edge")
    return padded, padded_alpha, (top, left, h, w)


def crop_upscaled(arr: np.ndarray, box: tuple[int, int, int, int] | None, scale: int) -> np.ndarray:
    """The part of an upscaled padded array that belongs to the original image."""
    if box is None:
        return arr
    top, left, h, w = box
    return np.ascontiguousarray(arr[top * scale : (top + h) * scale, left * scale : (left + w) * scale])
