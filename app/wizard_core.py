"""The Qt-free logic behind the fine-tuning wizard, shared with ``benchmarks/finetune_domain.py``.

Choosing the hold-out, evaluating bicubic / base / fine-tuned models on it with the project's metrics
(optionally on degraded LR inputs, reproducibly), the budget arithmetic, the verdict, and the run
folders under :func:`mlrn_core.paths.user_runs_dir` (which runs are unfinished and can be resumed).
Nothing here imports Qt, so the benchmark script and tests can use it without a display.

Rough speed estimate (used until the wizard measures real steps): a training step costs about
``6 * parameters * batch * patch**2`` floating-point operations (every convolution runs at LR
resolution, so multiply-adds per LR pixel ~ parameter count; forward + backward ~ 3x forward, 2 FLOPs
per multiply-add). Effective throughputs for this small-convolution workload are taken as
:data:`EFFECTIVE_GFLOPS`, plus a fixed :data:`STEP_OVERHEAD_S` per step; they are rough guesses, not
measurements, and the wizard says so until the user measures a few real steps. The CPU figure was
checked on a 2-core machine (default network, batch 8, patch 32: 0.18 steps/s predicted, 0.10 measured
while another job shared the cores); the CUDA and MPS figures are unmeasured guesses.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mlrn_core import data as data_mod
from mlrn_core import imageio, paths
from mlrn_core.metrics import Score, degrade, imresize, mean_score, modcrop, score
from mlrn_core.tiling import Cancelled, TileRunner, upscale_array

log = logging.getLogger(__name__)

WIZARD_FILE = "wizard.json"  # the wizard's own choices, next to the trainer's config.json
HOLDOUT_FRACTION = 0.1
FEW_IMAGES = 10
EVAL_SEED = data_mod.EVAL_SEED  # the degraded hold-out LR is the same every time (and the trainer's own)
# The hold-out is scored on the most detailed square region of each photo: a full 24 MP photo takes
# minutes per check on a CPU, and a run checks about a dozen times (the time budget includes the checks).
HOLDOUT_CROP = {"cuda": 768, "mps": 768, "cpu": 512}
HOLDOUT_DIR = "holdout"
# effective GFLOP/s of training small convolutions (see the module docstring); CPU is per thread
EFFECTIVE_GFLOPS = {"cuda": 8000.0, "mps": 1500.0, "cpu": 4.0}
STEP_OVERHEAD_S = {"cuda": 0.005, "mps": 0.01, "cpu": 0.01}  # batch making, optimiser, Python: tiny nets


# --- hold-out -----------------------------------------------------------------------------------------


def pick_holdout(files: Sequence[Path], fraction: float = HOLDOUT_FRACTION, minimum: int = 1) -> list[Path]:
    """About ``fraction`` of ``files`` (at least ``minimum``, always leaving one to train on), spread evenly.

    Deterministic: the same list gives the same pick, so a reopened wizard proposes the same hold-out.
    """
    n = len(files)
    if n < 2:
        return []
    k = max(minimum, round(n * fraction))
    k = min(k, n - 1)
    picked = sorted({min(n - 1, int((i + 0.5) * n / k)) for i in range(k)})
    return [files[i] for i in picked]


def detail_box(hr: np.ndarray, side: int, scale: int) -> tuple[int, int, int]:
    """(y, x, side) of a square crop of ``hr`` with the most detail (Laplacian energy), aligned to ``scale``."""
    h, w = hr.shape[:2]
    side = max(scale, min(side, h, w) // scale * scale)
    gray = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    integral = cv2.integral(np.abs(cv2.Laplacian(gray, cv2.CV_32F)))
    best, best_yx = -1.0, (0, 0)
    stride = max(scale, side // 4 // scale * scale)
    ys = sorted({*range(0, h - side + 1, stride), h - side})
    xs = sorted({*range(0, w - side + 1, stride), w - side})
    for y in ys:
        for x in xs:
            total = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
            if total > best:
                best, best_yx = float(total), (y // scale * scale, x // scale * scale)
    return best_yx[0], best_yx[1], side


def holdout_crop_paths(run_dir: Path, holdout: Sequence[str | Path]) -> list[Path]:
    """Where a run keeps the crops of its hold-out photos (its validation set)."""
    return [run_dir / HOLDOUT_DIR / f"{i:02d}_{Path(src).stem}.png" for i, src in enumerate(holdout)]


def holdout_crop_side(device_type: str) -> int:
    """The side of the hold-out regions for a device type (smaller on the CPU, where checks are slow)."""
    return HOLDOUT_CROP.get(device_type, HOLDOUT_CROP["cpu"])


def write_holdout_crop(src: str | Path, dst: Path, scale: int, side: int) -> Path:
    """Save the most detailed ``side`` px region of a photo (whole when smaller) as a PNG (atomic)."""
    hr = data_mod.load_hr(Path(src))
    if min(hr.shape[:2]) > side:
        y, x, s = detail_box(hr, side, scale)
        hr = hr[y : y + s, x : x + s]
    dst.parent.mkdir(parents=True, exist_ok=True)
    return imageio.write_image(imageio.picture_from_array(np.ascontiguousarray(hr)), dst, fmt="png")


# --- evaluation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalImage:
    """One hold-out image: the modcropped HR and the LR input the models get (uint8 RGB)."""

    path: Path
    hr: np.ndarray
    lr: np.ndarray


def load_eval_images(
    files: Sequence[str | Path],
    scale: int,
    degradation: data_mod.Degradation | None = None,
    seed: int = EVAL_SEED,
) -> list[EvalImage]:
    """Read hold-out files and make their LR inputs: MATLAB bicubic, then ``degradation`` if given.

    The degradation of image ``i`` is :meth:`Degradation.apply_for_eval` (``default_rng([seed, i])``), the
    trainer's validation rule, so every evaluation of the same list sees exactly the same JPEG quality and noise.
    """
    images = []
    for i, f in enumerate(files):
        hr = modcrop(data_mod.load_hr(Path(f)), scale)
        lr = degrade(hr, scale)
        if degradation is not None:
            lr = degradation.apply_for_eval(lr, i, seed)
        images.append(EvalImage(Path(f), np.ascontiguousarray(hr), np.ascontiguousarray(lr)))
    return images


def evaluate_models(
    models: dict[str, torch.nn.Module | None],
    images: Sequence[EvalImage],
    scale: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Score]:
    """Mean PSNR/SSIM (Y, border = scale) per model label; a ``None`` model means MATLAB bicubic.

    Raises :class:`mlrn_core.tiling.Cancelled` when ``cancel()`` turns true between images.
    """
    if not images:
        raise ValueError("no hold-out images to evaluate on")
    total, done = len(models) * len(images), 0
    results: dict[str, Score] = {}
    for label, model in models.items():
        runner = TileRunner(model, device, half=False) if model is not None else None
        scores = []
        for img in images:
            if cancel is not None and cancel():
                raise Cancelled()
            if model is None:
                sr: np.ndarray = imresize(img.lr, scale)
            else:
                sr = upscale_array(model, img.lr.astype(np.float32) / 255, runner=runner, cancel=cancel)
            scores.append(score(sr, img.hr, scale))
            done += 1
            if progress is not None:
                progress(done, total)
        results[label] = mean_score(scores)
    return results


@dataclass(frozen=True)
class Verdict:
    """Whether the fine-tuned model beats what it started from (and bicubic), in words."""

    better: bool  # beats the reference (the base model, or bicubic when trained from scratch)
    recommended: bool  # better, and better than bicubic too: may become the current model
    gain_db: float
    reference: str  # "the base model" or "bicubic"
    text: str


def verdict(tuned: float, base: float | None, bicubic: float, domain: str = "") -> Verdict:
    """Compare hold-out PSNRs; with no base model (trained from scratch) bicubic is the bar to beat."""
    ref_name, ref = ("the base model", base) if base is not None else ("bicubic", bicubic)
    gain, over_bicubic = tuned - ref, tuned - bicubic
    where = f" on your hold-out photos{domain}"
    if gain > 0 and over_bicubic > 0:
        extra = f" ({over_bicubic:+.2f} dB over bicubic)" if base is not None else ""
        text = f"The fine-tuned model is better than {ref_name}{where}: {gain:+.2f} dB PSNR{extra}."
    elif gain > 0:
        text = (f"The fine-tuned model is better than {ref_name}{where} ({gain:+.2f} dB PSNR) but still below "
                f"bicubic ({over_bicubic:+.2f} dB). It is not made the current model; a longer budget may help.")
    else:
        text = (f"The fine-tuned model is NOT better than {ref_name}{where} ({gain:+.2f} dB PSNR). "
                "It is not made the current model; more photos or a longer budget may help.")
    return Verdict(gain > 0, gain > 0 and over_bicubic > 0, gain, ref_name, text)


# --- budget -------------------------------------------------------------------------------------------


def rough_steps_per_s(device_type: str, parameters: int, batch: int, patch: int, threads: int = 1) -> float:
    """The documented per-device guess (module docstring) of training steps per second."""
    gflops = EFFECTIVE_GFLOPS.get(device_type, EFFECTIVE_GFLOPS["cpu"])
    if device_type == "cpu":
        gflops *= max(1, threads)
    flops = 6.0 * parameters * batch * patch * patch
    return 1.0 / (flops / (gflops * 1e9) + STEP_OVERHEAD_S.get(device_type, STEP_OVERHEAD_S["cpu"]))


def passes_over_data(steps: int, batch: int, patch: int, scale: int, hr_pixels: int) -> float:
    """How many times the training photos' HR pixels are seen in ``steps`` steps (patches of patch*scale)."""
    if hr_pixels <= 0:
        return 0.0
    return steps * batch * (patch * scale) ** 2 / hr_pixels


def auto_val_every(total_steps: int) -> int:
    """About a dozen hold-out checks per run (each also writes the resumable checkpoint)."""
    return int(max(10, min(1000, total_steps // 12)))


# --- run folders --------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """What a run folder says about itself (from config.json, wizard.json and events.jsonl)."""

    path: Path
    config: dict[str, Any]
    wizard: dict[str, Any] = field(default_factory=dict)
    step: int = 0  # the step of the last checkpoint (where a resume continues)
    finished: bool = False  # reached its budget (a stopped or crashed run is not finished)
    has_checkpoint: bool = False
    best_psnr: float | None = None

    @property
    def name(self) -> str:
        return str(self.wizard.get("name") or self.path.name)

    @property
    def resumable(self) -> bool:
        return self.has_checkpoint and not self.finished

    def describe(self) -> str:
        budget = self.config.get("max_steps")
        minutes = self.config.get("max_minutes")
        limit = f"{fmt_steps(budget)} steps" if budget else f"{minutes:g} min" if minutes else "?"
        best = f", best hold-out {self.best_psnr:.2f} dB" if self.best_psnr is not None else ""
        when = ""
        with contextlib.suppress(OSError):
            saved = _dt.datetime.fromtimestamp((self.path / "ckpt.pt").stat().st_mtime)
            when = saved.strftime(" (saved %Y-%m-%d %H:%M)")
        return f"{self.name}: step {fmt_steps(self.step)} of {limit}{best}{when}"


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's events.jsonl as dicts (a half-written last line, e.g. after a crash, is ignored)."""
    events = []
    try:
        text = (run_dir / "events.jsonl").read_text(encoding="utf-8")
    except OSError:
        return events
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def read_run(run_dir: Path) -> RunInfo | None:
    """A run folder's state, or None when it is not a training run (no readable config.json)."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wizard: dict[str, Any] = {}
    try:
        wizard = json.loads((run_dir / WIZARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    info = RunInfo(run_dir, config, wizard, has_checkpoint=(run_dir / "ckpt.pt").exists())
    for ev in read_events(run_dir):
        kind = ev.get("event")
        if kind == "checkpoint":
            info.step = int(ev.get("step", 0))
        elif kind == "validation":
            info.best_psnr = ev.get("best_psnr", info.best_psnr)
        elif kind == "finished":
            info.finished = not ev.get("stopped", False)
        elif kind == "started":
            info.finished = False  # a later start (a resume) reopens the run
    return info


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every training run in the runs folder, newest first."""
    folder = runs_dir or paths.user_runs_dir()
    runs = [r for d in folder.iterdir() if d.is_dir() and (r := read_run(d)) is not None] if folder.is_dir() else []
    runs.sort(key=lambda r: (r.path / "config.json").stat().st_mtime, reverse=True)
    return runs


def unfinished_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Runs that were stopped or interrupted (a checkpoint exists, the budget was not reached)."""
    return [r for r in list_runs(runs_dir) if r.resumable]


def free_run_dir(name: str, runs_dir: Path | None = None) -> Path:
    """``runs/<name>``, or ``runs/<name> (2)`` ... when that folder is taken."""
    folder = runs_dir or paths.user_runs_dir()
    safe = "".join(c if c.isalnum() or c in " ._+-" else "_" for c in name).strip() or "run"
    candidate, i = folder / safe, 2
    while candidate.exists():
        candidate = folder / f"{safe} ({i})"
        i += 1
    return candidate


def write_wizard_file(run_dir: Path, choices: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / WIZARD_FILE).write_text(json.dumps(choices, indent=2), encoding="utf-8")


def discard_run(run: RunInfo) -> None:
    """Delete a run folder (only one the runs folder holds, never anything outside it)."""
    runs_root = paths.user_runs_dir().resolve()
    target = run.path.resolve()
    if target.parent != runs_root:
        raise ValueError(f"refusing to delete '{target}': it is not a run in {runs_root}")
    shutil.rmtree(target)


def fmt_steps(n: float) -> str:
    return f"{int(n):,}" if n < 1e6 else f"{n / 1e6:.1f} M"

