import numpy as np
import pytest
import torch

from mlrn_core import tiling
from mlrn_core.tiling import Cancelled, TileRunner, plan_tiles, upscale_array
from tests.helpers import textured_image, tiny_model


def _psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_matches_untiled(scale):
    model = tiny_model(scale, features=16, blocks=2)
    lr = textured_image(70, 93).astype(np.float32) / 255
    full = TileRunner(model, torch.device("cpu")).run(lr)
    tiled = upscale_array(model, lr, tile=32, overlap=8, device="cpu")
    assert tiled.shape == (70 * scale, 93 * scale, 3)
    assert _psnr(tiled, full) >= 50


def test_full_size_model_tiled_matches_untiled():
    model = tiny_model(2, features=32, blocks=8)  # the real architecture, receptive field included
    lr = textured_image(96, 120).astype(np.float32) / 255
    full = TileRunner(model, torch.device("cpu")).run(lr)
    tiled = upscale_array(model, lr, tile=48, overlap=16, device="cpu")
    assert _psnr(tiled, full) >= 50


def test_tiles_cover_the_image_with_the_requested_overlap():
    tiles = plan_tiles(100, 250, 64, 16)
    covered = np.zeros((100, 250), int)
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.y1 - t.y0 <= 64 and t.x1 - t.x0 <= 64
    assert covered.min() >= 1
    xs = sorted({(t.x0, t.x1) for t in tiles})
    assert all(a[1] - b[0] >= 16 for a, b in zip(xs, xs[1:]))
    assert plan_tiles(10, 10, 64) == [tiling.Tile(0, 0, 0, 0, 10, 0, 10)]


def test_progress_priority_and_on_tile():
    model = tiny_model(2)
    lr = textured_image(64, 64).astype(np.float32) / 255
    seen, order = [], []
    target = (40, 40)  # the caller's "visible region"

    def prio(t):
        return abs((t.y0 + t.y1) / 2 - target[0]) + abs((t.x0 + t.x1) / 2 - target[1])

    out = upscale_array(model, lr, tile=32, overlap=8, device="cpu", progress=lambda d, n: seen.append((d, n)),
                        priority=prio, on_tile=lambda t, region: order.append((t, region.shape)))
    n = len(plan_tiles(64, 64, 32, 8))
    assert seen[0] == (0, n) and seen[-1] == (n, n)
    first = order[0][0]
    assert first.y0 > 0 and first.x0 > 0  # the tile nearest (40, 40) came first, not the top-left one
    assert order[0][1] == ((first.y1 - first.y0) * 2, (first.x1 - first.x0) * 2, 3)
    assert out.min() >= 0 and out.max() <= 1


def test_cancel_raises_and_stops_early():
    model = tiny_model(2)
    lr = textured_image(64, 64).astype(np.float32) / 255
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        upscale_array(model, lr, tile=32, overlap=8, device="cpu", cancel=cancel)
    assert len(calls) == 3


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    model = tiny_model(2)
    lr = textured_image(80, 80).astype(np.float32) / 255
    real_run = TileRunner.run
    sizes = []

    def fake_run(self, tile):
        sizes.append(tile.shape[0])
        if tile.shape[0] > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_run(self, tile)

    monkeypatch.setattr(TileRunner, "run", fake_run)
    out = upscale_array(model, lr, tile=80, overlap=8, device="cpu")
    assert out.shape == (160, 160, 3)
    assert max(sizes[1:]) <= 40


def test_device_choice():
    assert tiling.pick_device("cpu").type == "cpu"
    assert tiling.pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(tiling.DeviceError, match="CUDA"):
            tiling.pick_device("cuda")
    with pytest.raises(tiling.DeviceError, match="unknown device"):
        tiling.pick_device("tpu")


def test_alpha_is_upscaled_smoothly():
    alpha = np.zeros((20, 20), np.float32)
    alpha[:, 10:] = 1
    up = tiling.upscale_alpha(alpha, 3)
    assert up.shape == (60, 60) and up.min() >= 0 and up.max() <= 1
    assert 0 < up[30, 29] < 1 or 0 < up[30, 30] < 1  # a soft edge, not a jagged copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_half_precision_matches_cpu():
    model = tiny_model(2, features=32, blocks=8)
    lr = textured_image(128, 128).astype(np.float32) / 255
    cpu = upscale_array(model, lr, tile=64, device="cpu")
    gpu = upscale_array(model, lr, tile=None, device="cuda")
    assert _psnr(gpu, cpu) > 40  # fp16 rounding only
