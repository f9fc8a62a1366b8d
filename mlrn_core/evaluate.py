"""The one evaluator: PSNR/SSIM of bicubic or a model on HR images, with the published protocol.

For every image: modcrop, MATLAB-bicubic LR (then, for degraded evaluations, the training degradation
drawn once per image from a fixed seed), then PSNR/SSIM on Y (border = scale) of the bicubic upscale or
of the model's tiled output (fp32, tiles of :data:`EVAL_TILE`), averaged over the set. See
``docs/EVALUATION.md``. ``mlrn bench`` (:func:`benchmark`), the trainer's validation and the wizard's
hold-out scores (:func:`evaluate_models`) all go through :func:`evaluate`, so they agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlrn_core import data as data_mod
from mlrn_core.metrics import Score, degrade, imresize, mean_score, modcrop, score
from mlrn_core.tiling import Cancelled, TileRunner, upscale_array

#: LR tile size of every evaluation: tiles blend at their overlaps, so the same tiles give the same numbers.
EVAL_TILE = 256
EVAL_SEED = data_mod.EVAL_SEED  # the degraded evaluation LR of image i is the same every time


@dataclass(frozen=True)
class EvalImage:
    """One evaluation image: the modcropped HR and the LR input the models get (uint8 RGB)."""

    path: Path
    hr: np.ndarray
    lr: np.ndarray


def eval_images(
    pairs: Sequence[data_mod.ImagePair], degradation: data_mod.Degradation | None = None, seed: int = EVAL_SEED
) -> list[EvalImage]:
    """Evaluation images from HR/LR pairs; image ``i``'s LR gets :meth:`Degradation.apply_for_eval` when given."""
    out = []
    for i, p in enumerate(pairs):
        scale = p.hr.shape[0] // p.lr.shape[0]  # a degradation that starts from the HR needs it
        lr = degradation.apply_for_eval(p.lr, i, seed, hr=p.hr, scale=scale) if degradation is not None else p.lr
        out.append(EvalImage(Path(p.path), np.ascontiguousarray(p.hr), np.ascontiguousarray(lr)))
    return out


def load_eval_images(
    files: Sequence[str | Path],
    scale: int,
    degradation: data_mod.Degradation | None = None,
    seed: int = EVAL_SEED,
) -> list[EvalImage]:
    """Read image files and make their LR inputs: MATLAB bicubic, then ``degradation`` if given.

    Every evaluation of the same list sees exactly the same LR (JPEG quality and noise included).
    """
    pairs = []
    for f in files:
        hr = modcrop(data_mod.load_hr(Path(f)), scale)
        pairs.append(data_mod.ImagePair(Path(f), hr, degrade(hr, scale)))
    return eval_images(pairs, degradation, seed)


@dataclass
class Evaluation:
    """The mean score, each image's score, and (when asked for) the first image's output as uint8."""

    mean: Score
    scores: list[Score]
    first_output: np.ndarray | None = None


def evaluate(
    model: torch.nn.Module | None,
    images: Sequence[EvalImage],
    scale: int,
    device: torch.device | None = None,
    *,
    tile: int = EVAL_TILE,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    keep_first: bool = False,
    ensemble: bool = False,
    precision: str = "fp32",
) -> Evaluation:
    """Score ``model`` (``None``: MATLAB bicubic) on ``images``; see the module docstring.

    ``progress(done, total)`` after each image; raises :class:`mlrn_core.tiling.Cancelled` when
    ``cancel()`` turns true. The model runs in fp32 on ``device`` (the CPU by default); ``ensemble`` scores
    quality "best" (the 8-way self-ensemble, :data:`mlrn_core.tiling.QUALITIES`). ``precision`` picks another
    inference path (:data:`mlrn_core.tiling.PRECISIONS`, e.g. "openvino-int8"), to measure what it costs.
    """
    if not images:
        raise ValueError("no images to evaluate on")
    cpu = torch.device("cpu")
    runner = (
        TileRunner(model, device or cpu, precision=precision, ensemble=ensemble, fallback=False)
        if model is not None
        else None
    )
    scores: list[Score] = []
    first = None
    for i, img in enumerate(images):
        if cancel is not None and cancel():
            raise Cancelled()
        if runner is None:
            sr: np.ndarray = imresize(img.lr, scale)
        else:
            sr = upscale_array(model, img.lr.astype(np.float32) / 255, tile=tile, runner=runner, cancel=cancel)
        scores.append(score(sr, img.hr, scale))
        if keep_first and i == 0:
            first = sr if sr.dtype == np.uint8 else (np.clip(sr, 0, 1) * 255 + 0.5).astype(np.uint8)
        if progress is not None:
            progress(i + 1, len(images))
    return Evaluation(mean_score(scores), scores, first)


def evaluate_models(
    models: dict[str, torch.nn.Module | None],
    images: Sequence[EvalImage],
    scale: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Score]:
    """Mean PSNR/SSIM per model label (``None`` = bicubic), with one progress count over all of them."""
    if not images:
        raise ValueError("no hold-out images to evaluate on")
    total = len(models) * len(images)
    results: dict[str, Score] = {}
    for k, (label, model) in enumerate(models.items()):
        base = k * len(images)
        step = (lambda done, _n, base=base: progress(base + done, total)) if progress is not None else None
        results[label] = evaluate(model, images, scale, device, progress=step, cancel=cancel).mean
    return results


@dataclass
class BenchResult:
    scale: int
    images: list[str]
    bicubic: Score
    model: Score | None
    model_name: str | None
    per_image: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    quality: str = "normal"  # the model's upscaling quality (mlrn_core.tiling.QUALITIES)
    precision: str = "fp32"  # the inference path scored (mlrn_core.tiling.PRECISIONS)

    def as_json(self) -> dict:
        """The one-line JSON of ``mlrn bench --json``."""
        return {
            "scale": self.scale,
            "images": len(self.images),
            "bicubic": self.bicubic.as_dict(),
            "model": dict(name=self.model_name, quality=self.quality, precision=self.precision, **self.model.as_dict())
            if self.model
            else None,
        }


def benchmark(
    folders: Sequence[str | os.PathLike],
    scale: int,
    model: torch.nn.Module | None = None,
    model_name: str | None = None,
    device: torch.device | None = None,
    tile: int | None = EVAL_TILE,
    progress: Callable[[int, int, str], None] | None = None,
    degradation: data_mod.Degradation | None = None,
    ensemble: bool = False,
    precision: str = "fp32",
) -> BenchResult:
    """PSNR/SSIM of bicubic (and ``model`` when given) on the HR images in ``folders``.

    ``ensemble`` scores the model at quality "best" (the 8-way self-ensemble) instead of "normal".

    With a ``degradation`` (``mlrn bench --degrade jpeg:85``), image i's LR input is degraded from the fixed
    seed ``default_rng([EVAL_SEED, i])`` before both bicubic and the model see it: the same inputs every run.
    """
    pairs, scan = data_mod.load_pairs(folders, scale, 2 * scale + 11, what="benchmark")
    images = eval_images(pairs, degradation)
    names = [img.path.name for img in images]

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total, names[done] if done < total else "")

    report(0, len(images))
    bicubic = evaluate(None, images, scale)
    scored = (
        evaluate(
            model,
            images,
            scale,
            device,
            tile=tile or EVAL_TILE,
            progress=report,
            ensemble=ensemble,
            precision=precision,
        )
        if model
        else None
    )
    report(len(images), len(images))
    rows = []
    for i, name in enumerate(names):
        row = {"image": name, "bicubic": bicubic.scores[i].as_dict()}
        if scored is not None:
            row["model"] = scored.scores[i].as_dict()
        rows.append(row)
    return BenchResult(
        scale=scale,
        images=names,
        bicubic=bicubic.mean,
        model=scored.mean if scored is not None else None,
        model_name=model_name,
        per_image=rows,
        skipped=[(str(s.path), s.reason) for s in scan.skipped],
        quality="best" if ensemble else "normal",
        precision=precision,
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
