"""Where two upscales differ most (the wizard's before/after region) and the difference picture."""

from __future__ import annotations

import numpy as np
import pytest

from mlrn_core.difference import MAX_GAIN, difference_image, most_changed_box


def test_the_box_lands_on_the_changed_region_aligned_to_the_scale():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    b = a.copy()
    b[121:151, 203:233] = np.clip(b[121:151, 203:233].astype(int) + 6, 0, 255).astype(np.uint8)  # a 30 px patch
    b[10:12, 10:12] ^= 1  # a tiny change elsewhere must not win
    y, x, side, change = most_changed_box(a, b, 48, align=3)
    assert side == 48 and y % 3 == 0 and x % 3 == 0
    assert y <= 121 and y + side >= 151 and x <= 203 and x + side >= 233  # the whole patch is inside
    assert change == pytest.approx(6 * 30 * 30 / 48**2, rel=0.05)


def test_identical_images_and_small_images():
    a = np.full((40, 30, 3), 128, np.uint8)
    assert most_changed_box(a, a, 96) == (0, 0, 30, 0.0)  # the side shrinks to the image
    with pytest.raises(ValueError, match="differ in size"):
        most_changed_box(a, a[:20], 16)


def test_difference_image_amplifies_and_saturates():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 2
    b[1, 1] = 200
    d, gain = difference_image(a, b, gain=8)
    assert d.dtype == np.uint8 and d.shape == (2, 2, 3) and gain == 8
    assert d[0, 0, 0] == 16 and d[1, 1, 0] == 255 and d[0, 1, 0] == 0
    changed = np.zeros((20, 20, 3), np.uint8)
    changed[5:15, 5:15] = 20  # the largest change, 20 levels, becomes nearly white
    d, gain = difference_image(np.zeros_like(changed), changed)
    assert gain == 12 and d[10, 10, 0] == 240 and d[0, 0, 0] == 0
    changed[5:15, 5:15] = 1  # a 1-level change is amplified at most MAX_GAIN times
    assert difference_image(np.zeros_like(changed), changed)[1] == MAX_GAIN
