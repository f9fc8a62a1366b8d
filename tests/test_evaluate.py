"""One evaluator: ``mlrn bench``, the trainer's validation and the wizard's hold-out give the same numbers."""

from __future__ import annotations

import pytest
import torch

from mlrn_core import registry
from mlrn_core.data import Degradation
from mlrn_core.evaluate import benchmark, evaluate_models, load_eval_images
from mlrn_core.runs import RunFolder, read_run
from mlrn_core.trainer import TrainConfig, Trainer
from tests.helpers import write_png_folder

TINY = {"features": 8, "blocks": 1, "batch": 2, "patch": 16, "lr": 1e-3, "warmup_steps": 2, "log_every": 1}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("jpeg", [None, (30, 30)])
def test_trainer_validation_bench_and_holdout_scores_agree(tmp_path, jpeg):
    train = write_png_folder(tmp_path / "train", 3)[0].parent
    val_files = write_png_folder(tmp_path / "val", 2, 56, 64)
    out = tmp_path / "run"
    cfg = TrainConfig(
        data=(str(train),),
        val=(str(val_files[0].parent),),
        out=str(out),
        max_steps=2,
        val_every=2,
        jpeg_quality=jpeg,
        **TINY,
    )
    Trainer(cfg).run()
    metrics = registry.read_model_file(RunFolder(out).model).info["metrics"]
    model = registry.load_model(RunFolder(out).model, 2).model
    deg = Degradation(jpeg, 0.0) if jpeg else None

    holdout = evaluate_models(
        {"bicubic": None, "model": model}, load_eval_images(val_files, 2, deg), 2, torch.device("cpu")
    )
    assert metrics["val_psnr"] == pytest.approx(holdout["model"].psnr, abs=1e-4)
    assert metrics["val_bicubic_psnr"] == pytest.approx(holdout["bicubic"].psnr, abs=1e-4)
    if jpeg is None:  # mlrn bench measures clean inputs: the same numbers as clean validation
        bench = benchmark([val_files[0].parent], 2, model, "m")
        assert bench.model.psnr == pytest.approx(holdout["model"].psnr, abs=1e-9)
        assert bench.bicubic.psnr == pytest.approx(holdout["bicubic"].psnr, abs=1e-9)
        assert [row["image"] for row in bench.per_image] == [f.name for f in val_files]

    run = read_run(out)
    assert run is not None and run.step == 2 and run.finished and not run.resumable
