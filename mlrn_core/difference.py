"""Where two upscales of the same photo differ most, and a picture of the difference (no Qt).

A fine-tune changes a model's output only a little, and mostly in a few places (edges, textures, JPEG
blocks): a crop picked for its detail alone can look identical before and after. The wizard shows the
region where :func:`most_changed_box` finds the largest mean absolute difference, enlarged, with
:func:`difference_image` (the difference amplified) as an alternative view.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_GAIN = 32  # the difference image amplifies |a - b| at most this much (a 1/255 change is invisible otherwise)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise ValueError(f"the two images differ in size: {a.shape} and {b.shape}")
    return (
        np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
        if a.ndim == 3
        else np.abs(a.astype(np.float32) - b.astype(np.float32))
    )


def most_changed_box(a: np.ndarray, b: np.ndarray, side: int, align: int = 1) -> tuple[int, int, int, float]:
    """(y, x, side, mean |a - b| in 0-255 units) of the ``side`` px square where ``a`` and ``b`` differ most.

    ``side`` shrinks to the image when it is smaller; ``y`` and ``x`` are multiples of ``align`` (the scale,
    so the LR pixels under the region stay whole). Ties go to the top-left.
    """
    diff = _abs_diff(a, b)
    h, w = diff.shape
    side = max(1, min(side, h, w))
    integral = cv2.integral(diff, sdepth=cv2.CV_64F)
    sums = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    if align > 1:
        sums = sums[::align, ::align]
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    y, x = int(iy) * align, int(ix) * align
    return y, x, side, float(sums[iy, ix]) / (side * side)


def difference_image(a: np.ndarray, b: np.ndarray, gain: int | None = None) -> tuple[np.ndarray, int]:
    """(|a - b| amplified as a uint8 RGB image, the whole-number gain used): black where nothing changed.

    Without ``gain`` the largest changes (the 99.5th percentile) become white, at most :data:`MAX_GAIN` times.
    """
    diff = _abs_diff(a, b)
    if gain is None:
        top = float(np.percentile(diff, 99.5)) if diff.size else 0.0
        gain = int(max(1, min(MAX_GAIN, 255 // max(1, round(top)))))
    image = np.clip(diff * gain, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2)), gain
