"""The GPU path (issue 15, item 4): tiling in fp16/bf16 with channels_last, out-of-memory back-off on a real
CUDA allocator limit, and training steps under CUDA autocast. Skipped without a CUDA GPU; run by
``scripts/gpu_session.sh checks`` on a lent GPU (also without pytest, through its small runner).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlrn_core import registry, tiling
from mlrn_core import trainer as tr
from tests.helpers import textured_image, tiny_model, write_png_folder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_tiles_match_cpu_fp32(precision):
    model = tiny_model(2, features=32, blocks=8)
    lr = textured_image(160, 224).astype(np.float32) / 255
    ref = tiling.upscale_array(model, lr, tile=64, device="cpu", precision="fp32")
    runner = tiling.TileRunner(model, torch.device("cuda"), precision=precision)
    assert runner.channels_last and runner.precision == precision
    assert next(runner.model.parameters()).dtype == (torch.float16 if precision == "fp16" else torch.bfloat16)
    out = tiling.upscale_array(model, lr, tile=96, runner=runner, dtype=np.uint16)
    assert out.dtype == np.uint16 and out.shape == (320, 448, 3)
    assert _psnr(out.astype(np.float32) / 65535, ref) > (40 if precision == "fp16" else 33)
    assert tiling.resolve_precision(torch.device("cuda"), "auto") == "fp16"


def test_cuda_out_of_memory_halves_the_tile_and_finishes():
    """A real OOM: the allocator is capped, a 1024 px tile cannot fit, smaller tiles can."""
    model = tiny_model(2, features=32, blocks=8)
    lr = textured_image(1024, 1024).astype(np.float32) / 255
    runner = tiling.TileRunner(model, torch.device("cuda"), precision="fp16")
    tiles: list[int] = []
    real_run = runner.run

    def run(tile):
        tiles.append(tile.shape[0])
        return real_run(tile)

    runner.run = run  # type: ignore[method-assign]
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    used = total - free
    torch.cuda.set_per_process_memory_fraction(min(1.0, (used + 600 * 2**20) / total))
    try:
        out = tiling.upscale_array(model, lr, tile=1024, runner=runner, dtype=np.uint8)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert tiles[0] == 1024 and min(tiles) < 1024  # it ran out at 1024 and went on with smaller tiles
    assert out.shape == (2048, 2048, 3) and out.max() > 0


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_cuda_training_steps_with_amp(tmp_path, monkeypatch, amp):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    write_png_folder(tmp_path / "train", 4, 96, 96)
    write_png_folder(tmp_path / "val", 1, 64, 64)
    cfg = tr.TrainConfig(
        data=(str(tmp_path / "train"),),
        val=(str(tmp_path / "val"),),
        out=str(tmp_path / "run"),
        features=16,
        blocks=2,
        batch=4,
        patch=24,
        lr=1e-3,
        warmup_steps=1,
        max_steps=6,
        val_every=3,
        device="cuda",
        amp=amp,
        log_every=1,
    )
    ctx, scaler = tr.autocast_for(torch.device("cuda"), amp)
    assert isinstance(ctx, torch.autocast) and (scaler is not None) == (amp == "fp16")
    losses: list[float] = []
    fin = tr.Trainer(cfg, lambda e: losses.append(e.loss) if isinstance(e, tr.StepEvent) else None).run()
    assert fin.step == 6 and len(losses) == 6 and all(np.isfinite(losses))
    loaded = registry.load_model(tmp_path / "run" / "model.pt", 2)
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert loaded.info["metrics"]["val_psnr"] > 10
