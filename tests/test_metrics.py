import numpy as np
import pytest
from PIL import Image

from mlrn_core.metrics import degrade, imresize, mean_score, modcrop, psnr_y, rgb_to_y, score, ssim_y
from tests.helpers import SHARED_DATA, needs_shared_data


def test_imresize_keeps_range_and_constants():
    a = np.array([[0, 64, 128, 255], [10, 20, 30, 40], [200, 100, 50, 0], [5, 5, 5, 5]], np.uint8)
    out = imresize(a, 0.5)
    assert out.shape == (2, 2) and out.dtype == np.uint8
    # antialiased shrink: each output is a normalised weighted mean, so within the input's range
    assert out.min() >= 0 and out.max() <= 255
    # a constant image stays constant (weights normalised, mirror padding)
    const = np.full((9, 7, 3), 77, np.uint8)
    assert (imresize(const, 1 / 3) == 77).all() and (imresize(const, 3) == 77).all()


def test_imresize_upscale_interpolates_exactly_at_integer_positions_for_linear_ramps():
    ramp = np.tile(np.arange(10, dtype=np.float64), (10, 1))
    up = imresize(ramp, 2)
    # interior samples of a linear ramp are reproduced exactly by a cubic kernel with a = -0.5
    assert np.allclose(up[5, 4:16], (np.arange(4, 16) + 0.5) / 2 - 0.5 + 0, atol=1e-9)


def test_imresize_is_vectorised_and_fast():
    import time

    img = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    t = time.perf_counter()
    lr = imresize(img, 0.5)
    assert lr.shape == (600, 800, 3)
    assert time.perf_counter() - t < 10  # a per-pixel loop would take minutes


def test_psnr_and_ssim_basic_properties():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr_y(hr, hr, 2) == float("inf")
    assert ssim_y(hr, hr, 2) == pytest.approx(1.0)
    noisy = np.clip(hr.astype(int) + rng.integers(-8, 9, hr.shape), 0, 255).astype(np.uint8)
    p = psnr_y(noisy, hr, 2)
    assert 25 < p < 45
    assert ssim_y(noisy, hr, 2) < 1.0
    # float input in [0,1] is rounded to uint8 first: the same numbers
    assert psnr_y(noisy / 255.0, hr, 2) == pytest.approx(p)


def test_y_channel_uses_bt601_without_rounding():
    white = np.ones((1, 1, 3))
    assert rgb_to_y(white)[0, 0] == pytest.approx(16 + 65.481 + 128.553 + 24.966)
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16)


def test_modcrop():
    assert modcrop(np.zeros((11, 13, 3)), 4).shape == (8, 12, 3)


@needs_shared_data
@pytest.mark.parametrize(("scale", "expected"), [(2, 33.68), (3, 30.40), (4, 28.43)])
def test_bicubic_baseline_on_set5(scale, expected):
    scores = []
    for path in sorted((SHARED_DATA / "bench" / "Set5").glob("*.png")):
        hr = modcrop(np.asarray(Image.open(path).convert("RGB")), scale)
        lr = degrade(hr, scale)
        scores.append(score(imresize(lr, scale), hr, scale))
    m = mean_score(scores)
    assert round(m.psnr, 2) == expected
    if scale == 2:
        assert round(m.ssim, 4) == 0.9305
