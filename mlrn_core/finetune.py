"""Fine-tuning on a photographer's own photos: the logic behind the wizard, without Qt.

Choosing the hold-out and the regions of it that are scored, the budget arithmetic and the verdict.
The scores themselves come from :mod:`mlrn_core.evaluate` and the run folders from
:mod:`mlrn_core.runs`; the wizard (``app/wizard*.py``) and ``benchmarks/finetune_domain.py`` use these.

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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mlrn_core import data as data_mod
from mlrn_core import imageio

HOLDOUT_FRACTION = 0.1
FEW_IMAGES = 10
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
    return imageio.write_image(imageio.picture_from_array(np.ascontiguousarray(hr)), dst, fmt="png", overwrite=True)


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
        text = (
            f"The fine-tuned model is better than {ref_name}{where} ({gain:+.2f} dB PSNR) but still below "
            f"bicubic ({over_bicubic:+.2f} dB). It is not made the current model; a longer budget may help."
        )
    else:
        text = (
            f"The fine-tuned model is NOT better than {ref_name}{where} ({gain:+.2f} dB PSNR). "
            "It is not made the current model; more photos or a longer budget may help."
        )
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
