"""Benchmark a model on folders of HR images with the published protocol (``mlrn bench``, model cards).

For every image: modcrop, MATLAB-bicubic LR, then PSNR/SSIM on Y (border = scale) of the bicubic
upscale and of the model's (tiled) output, averaged over the set. See ``docs/EVALUATION.md``.
With a ``degradation`` (``mlrn bench --degrade jpeg:85``), image i's LR input is degraded from the fixed
seed ``default_rng([EVAL_SEED, i])`` before both bicubic and the model see it: the same inputs every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlrn_core import data as data_mod
from mlrn_core.metrics import Score, imresize, mean_score, score
from mlrn_core.tiling import TileRunner, upscale_array


@dataclass
class BenchResult:
    scale: int
    images: list[str]
    bicubic: Score
    model: Score | None
    model_name: str | None
    per_image: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict:
        """The one-line JSON of ``mlrn bench --json``."""
        return {
            "scale": self.scale,
            "images": len(self.images),
            "bicubic": self.bicubic.as_dict(),
            "model": dict(name=self.model_name, **self.model.as_dict()) if self.model else None,
        }


def benchmark(
    folders: Sequence[str | os.PathLike],
    scale: int,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    device: torch.device | None = None,
    tile: int | None = 256,
    progress: Callable[[int, int, str], None] | None = None,
    degradation: data_mod.Degradation | None = None,
) -> BenchResult:
    """PSNR/SSIM of bicubic (and ``model`` when given) on the HR images in ``folders``."""
    pairs, scan = data_mod.load_pairs(folders, scale, 2 * scale + 11, what="benchmark")
    runner = TileRunner(model, device or torch.device("cpu"), half=False) if model is not None else None
    bic, mod, rows = [], [], []
    for i, p in enumerate(pairs):
        if progress:
            progress(i, len(pairs), p.path.name)
        lr = degradation.apply_for_eval(p.lr, i, hr=p.hr, scale=scale) if degradation is not None else p.lr
        b = score(imresize(lr, scale), p.hr, scale)
        bic.append(b)
        row = {"image": p.path.name, "bicubic": b.as_dict()}
        if runner is not None:
            sr = upscale_array(model, lr.astype(np.float32) / 255, tile=tile, runner=runner)
            m = score(sr, p.hr, scale)
            mod.append(m)
            row["model"] = m.as_dict()
        rows.append(row)
    if progress:
        progress(len(pairs), len(pairs), "")
    return BenchResult(
        scale=scale,
        images=[p.path.name for p in pairs],
        bicubic=mean_score(bic),
        model=mean_score(mod) if mod else None,
        model_name=model_name,
        per_image=rows,
        skipped=[(str(s.path), s.reason) for s in scan.skipped],
    )


def parse_degradation(text: str) -> data_mod.Degradation:
    """``none``, ``jpeg:Q`` (4:2:0 JPEG at quality Q), ``jpeg:LO-HI`` or ``camera`` (the photo models' pipeline)."""
    t = text.strip().lower()
    if t in ("", "none", "lossless", "clean"):
        return data_mod.Degradation()
    if t == "camera":
        return data_mod.CAMERA
    if t.startswith("jpeg:"):
        q = t[5:]
        try:
            lo, hi = (int(v) for v in q.split("-", 1)) if "-" in q else (int(q), int(q))
            return data_mod.Degradation(jpeg_quality=(lo, hi))
        except ValueError:
            pass
    raise ValueError(f"unknown degradation {text!r}: use none, jpeg:Q (1-100), jpeg:LO-HI or camera")
