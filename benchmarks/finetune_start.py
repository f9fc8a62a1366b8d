"""Does a fine-tune hurt the hold-out at the start? Hold-out PSNR every few steps for several lr / warm-up pairs.

The wizard's short fine-tunes (a minute or two on a CPU) must not first make the base model worse. This
script fine-tunes the same base model (default: the built-in ``mlrn-x{scale}``) on a folder of photos
(default ``../shared/data/train/Photos15``) with the settings the wizard uses on a CPU (batch 8, LR
patch 32, "clean bicubic" inputs unless ``--jpeg``), once per ``--variant LR:WARMUP`` pair, with the
same seed and the same hold-out (the most detailed ``--crop`` px of ``--holdout`` photos, never trained
on, as the wizard does), and prints the hold-out PSNR (Y, border = scale) of the base model and at every
``--val-every`` steps. Each run uses :class:`mlrn_core.trainer.Trainer`, the wizard's engine.

``--soften SIGMA`` first makes a soft version of the photos (long side at most 640 px, Gaussian blur of
SIGMA px): photos without fine detail (skies, skin, out-of-focus backgrounds) upscale to a hold-out PSNR
near 50 dB, like the one the issue saw fall from 51.98 to 45.28 dB, and there the slightest disturbance
of a well-trained model shows; on detailed photos (28 dB) it hides in the noise.

Usage: ``python benchmarks/finetune_start.py [--variant 2e-4:1 --variant 1e-4:100 ...] [--steps 120]
[--val-every 10] [--holdout 2] [--crop 256] [--soften 2] [--jpeg] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import registry  # noqa: E402
from mlrn_core.data import scan_folders  # noqa: E402
from mlrn_core.finetune import holdout_crop_paths, pick_holdout, write_holdout_crop  # noqa: E402
from mlrn_core.trainer import TrainConfig, Trainer, ValidationEvent  # noqa: E402


def soften_folder(src: Path, dst: Path, sigma: float, long_side: int = 640) -> str:
    """Soft copies of the photos in ``src`` (at most ``long_side`` px, blurred by ``sigma``) in ``dst``."""
    import cv2

    from mlrn_core import data as data_mod
    from mlrn_core import imageio

    dst.mkdir(parents=True)
    for path in data_mod.iter_image_files([src]):
        hr = data_mod.load_hr(path)
        f = min(1.0, long_side / max(hr.shape[:2]))
        if f < 1:
            hr = cv2.resize(hr, (round(hr.shape[1] * f), round(hr.shape[0] * f)), interpolation=cv2.INTER_AREA)
        hr = cv2.GaussianBlur(hr, (0, 0), sigma)
        imageio.write_image(imageio.picture_from_array(hr), dst / f"{path.stem}.png", fmt="png")
    return str(dst)


def main() -> int:
    default_data = REPO.parent / "shared" / "data" / "train" / "Photos15"
    if not default_data.is_dir():
        default_data = Path("/work/shared/data/train/Photos15")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", help="LR:WARMUP_STEPS (repeatable; default: 2e-4:1, 1e-4:100)")
    ap.add_argument("--base", help="base model (default: the built-in mlrn-x{scale})")
    ap.add_argument("--data", default=str(default_data))
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--holdout", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="side of the hold-out regions (HR px)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--jpeg", action="store_true", help="'match camera JPEGs' inputs (JPEG q60-95, noise 3)")
    ap.add_argument("--soften", type=float, default=0.0, help="blur the photos by this sigma first (0: as they are)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", help="also write the curves to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [(float(a), int(b)) for a, b in (v.split(":") for v in (args.variant or ["2e-4:1", "1e-4:100"]))]
    base = args.base or registry.builtin_name(args.scale)
    results = {}
    with tempfile.TemporaryDirectory(prefix="ft-start-") as tmp:
        if args.soften > 0:
            args.data = soften_folder(Path(args.data), Path(tmp) / "soft", args.soften)
        scan, _ = scan_folders([args.data], args.patch * args.scale)
        held = [str(p) for p in pick_holdout(scan.usable, minimum=args.holdout)][: args.holdout]
        crops = [
            str(write_holdout_crop(src, dst, args.scale, args.crop))
            for src, dst in zip(held, holdout_crop_paths(Path(tmp), held))
        ]
        for lr, warmup in variants:
            curve: list[tuple[int, float]] = []
            base_psnr: list[float] = []

            def on_event(ev, curve=curve, base_psnr=base_psnr) -> None:
                if isinstance(ev, ValidationEvent):
                    curve.append((ev.step, round(ev.psnr, 3)))
                    if ev.base_psnr is not None and not base_psnr:
                        base_psnr.append(round(ev.base_psnr, 3))

            cfg = TrainConfig(
                data=(args.data,),
                out=str(Path(tmp) / f"run-{lr:g}-{warmup}"),
                scale=args.scale,
                val=tuple(crops),
                exclude=tuple(held),
                max_steps=args.steps,
                batch=args.batch,
                patch=args.patch,
                lr=lr,
                warmup_steps=warmup,
                val_every=args.val_every,
                log_every=args.val_every,
                init=base,
                device="cpu",
                seed=0,
                jpeg_quality=(60, 95) if args.jpeg else None,
                noise_sigma=3.0 if args.jpeg else 0.0,
            )
            t0 = time.perf_counter()
            Trainer(cfg, on_event).run()
            seconds = time.perf_counter() - t0
            worst = min(p for _s, p in curve)
            key = f"lr {lr:g}, warm-up {warmup}"
            results[key] = {
                "base": base_psnr[0] if base_psnr else None,
                "curve": curve,
                "worst": worst,
                "seconds": round(seconds, 1),
            }
            b = base_psnr[0] if base_psnr else float("nan")
            print(
                f"{key}: base {b:.2f} dB; worst {worst:.2f} dB ({worst - b:+.2f}); last {curve[-1][1]:.2f} dB "
                f"({curve[-1][1] - b:+.2f}); {seconds:.0f} s",
                flush=True,
            )
            print("   " + "  ".join(f"{s}:{p:.2f}" for s, p in curve), flush=True)
    print(
        f"hold-out: {', '.join(Path(h).name for h in held)} ({args.crop} px regions); base {base}; "
        f"batch {args.batch}, patch {args.patch}, {'JPEG' if args.jpeg else 'clean'} inputs, {args.steps} steps"
        + (f", photos softened (sigma {args.soften:g})" if args.soften else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
