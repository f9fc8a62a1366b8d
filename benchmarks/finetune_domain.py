"""Does fine-tuning on one domain help? Hold-out PSNR of bicubic, base and fine-tuned, before and after.

The evidence behind the wizard's promise. A base model (default: the built-in ``mlrn-x{scale}``, else
``--base NAME|PATH``) is fine-tuned with :class:`mlrn_core.trainer.Trainer` (the engine of ``mlrn train``
and of the wizard) on a folder of photos (default ``../shared/data/train/Photos15``) in the
"match camera JPEGs" setting: the training LR patches get JPEG compression (quality 60-95) and mild
noise (sigma up to 3). A few photos (``--holdout``, default 3, spread evenly) are never trained on;
``--crop N`` scores (and validates on) their most detailed N px region instead of the whole photo,
as the wizard does (768 px on a GPU, 512 on a CPU: the trainer's time budget includes validation).

The trainer validates on the hold-out with the same degradation (fixed seed), and this script also scores
the hold-out itself, the same way the
wizard's Result page does (:mod:`mlrn_core.evaluate` and :mod:`mlrn_core.finetune`): HR modcropped, LR by MATLAB bicubic
(``metrics.degrade``), then the same JPEG + noise degradation with a fixed seed, upscaled with
``tiling.upscale_array`` and scored with ``metrics.score`` (PSNR/SSIM on Y, border = scale). Clean-LR
scores are reported too. "fine-tuned" is ``model.pt``, the best checkpoint by (degraded) hold-out PSNR,
which is what the wizard saves; "last step" is the final weights from ``ckpt.pt``.

Usage: ``python benchmarks/finetune_domain.py [--base NAME|PATH] [--data DIR] [--holdout 3]
[--max-minutes 10] [--max-steps N] [--crop 0] [--device auto] [--out DIR] [--json FILE]``.
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
from mlrn_core.data import Degradation, scan_folders  # noqa: E402
from mlrn_core.evaluate import EVAL_SEED, evaluate_models, load_eval_images  # noqa: E402
from mlrn_core.finetune import holdout_crop_paths, pick_holdout, write_holdout_crop  # noqa: E402
from mlrn_core.metrics import Score  # noqa: E402
from mlrn_core.runs import RunFolder  # noqa: E402
from mlrn_core.tiling import device_label, pick_device  # noqa: E402
from mlrn_core.trainer import FinishedEvent, StartedEvent, TrainConfig, Trainer, ValidationEvent  # noqa: E402

log = logging.getLogger("finetune_domain")


def parse_range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition(",")
    return int(lo), int(hi or lo)


def score_table(
    models: dict[str, torch.nn.Module | None],
    files: list[str],
    scale: int,
    device: torch.device,
    degradation: Degradation,
) -> dict[str, dict[str, Score]]:
    """{"degraded": {label: Score}, "clean": {label: Score}} on the hold-out."""
    out = {}
    for domain, deg in (("degraded", degradation), ("clean", None)):
        images = load_eval_images(files, scale, deg)
        out[domain] = evaluate_models(models, images, scale, device)
    return out


def main() -> int:
    default_data = REPO.parent / "shared" / "data" / "train" / "Photos15"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="base model name or file (default: the built-in mlrn-x{scale})")
    ap.add_argument("--data", default=str(default_data), help=f"folder of photos (default {default_data})")
    ap.add_argument("--holdout", type=int, default=3, help="photos held out (never trained on)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=10.0, help="training time budget")
    ap.add_argument("--max-steps", type=int, default=None, help="step budget (also the cosine horizon)")
    ap.add_argument("--jpeg", default="60,95", help="JPEG quality range of the LR inputs (default 60,95)")
    ap.add_argument("--noise", type=float, default=3.0, help="max Gaussian noise sigma (0-255 units)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument(
        "--crop",
        type=int,
        default=0,
        help="score (and validate on) the most detailed CROP px region of each hold-out photo, as the "
        "wizard does (768 on a GPU, 512 on a CPU); 0 = whole photos (default)",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="run folder (default: a temporary folder, deleted afterwards)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        base_name, base_path = registry.resolve_model_path(args.base, args.scale)
        base = registry.load_model(base_path, args.scale)
    except registry.ModelError as exc:
        print(f"error: {exc}\n(pass --base NAME|PATH with an x{args.scale} model)", file=sys.stderr)
        return 2
    scan, _ = scan_folders([args.data], args.patch * args.scale)
    if len(scan.usable) <= args.holdout:
        print(
            f"error: {args.data} has {len(scan.usable)} usable photos; need more than --holdout {args.holdout}",
            file=sys.stderr,
        )
        return 2
    holdout = [str(p) for p in pick_holdout(scan.usable, fraction=0.0, minimum=args.holdout)]
    degradation = Degradation(parse_range(args.jpeg), args.noise)
    device = pick_device(args.device)
    log.info(
        "base %s, %d photos for training, hold-out: %s",
        base_name,
        len(scan.usable) - len(holdout),
        ", ".join(Path(h).name for h in holdout),
    )

    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="finetune-domain-")
    run_dir = Path(args.out) if args.out else Path(tmp.name) / "run"
    scored = holdout
    if args.crop > 0:
        scored = [
            str(write_holdout_crop(src, dst, args.scale, args.crop))
            for src, dst in zip(holdout, holdout_crop_paths(run_dir, holdout))
        ]
    t0 = time.perf_counter()
    before = score_table({"bicubic": None, "base": base.model}, scored, args.scale, device, degradation)
    log.info("scored the base model in %.0f s", time.perf_counter() - t0)

    cfg = TrainConfig(
        data=(args.data,),
        out=str(run_dir),
        scale=args.scale,
        val=tuple(scored),
        exclude=tuple(holdout),
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        batch=args.batch,
        patch=args.patch,
        lr=args.lr,
        warmup_steps=min(100, (args.max_steps or 1000) // 10),
        val_every=args.val_every,
        device=args.device,
        init=str(base_path),
        seed=args.seed,
        jpeg_quality=degradation.jpeg_quality,
        noise_sigma=args.noise,
    )
    fin: list[FinishedEvent] = []

    def on_event(ev) -> None:
        if isinstance(ev, StartedEvent):
            log.info("training on %s: %d photos, %d held out", ev.device, ev.train_images, ev.val_images)
        elif isinstance(ev, ValidationEvent):
            log.info(
                "step %d: degraded hold-out %.3f dB (base %s, bicubic %.3f)",
                ev.step,
                ev.psnr,
                f"{ev.base_psnr:.3f}" if ev.base_psnr is not None else "?",
                ev.bicubic_psnr,
            )
        elif isinstance(ev, FinishedEvent):
            fin.append(ev)

    try:
        Trainer(cfg, on_event).run()
        tuned = registry.load_model(RunFolder(run_dir).model, args.scale)
        last = registry.load_model(RunFolder(run_dir).checkpoint, args.scale)
        after = score_table(
            {"fine-tuned": tuned.model, "last step": last.model}, scored, args.scale, device, degradation
        )
        steps = fin[-1].step if fin else None
        seconds = fin[-1].elapsed_s if fin else None
        best_step = tuned.info.get("provenance", {}).get("steps")
    finally:
        if tmp is not None:
            tmp.cleanup()

    rows = [
        ("bicubic", before, "bicubic"),
        (f"base ({base_name})", before, "base"),
        (f"fine-tuned (step {best_step})", after, "fine-tuned"),
        (f"last step ({steps})", after, "last step"),
    ]
    q = degradation.jpeg_quality
    region = f", the most detailed {args.crop} px of each" if args.crop > 0 else ", whole photos"
    print(f"\nhold-out: {', '.join(Path(h).name for h in holdout)}{region} (x{args.scale}, Y, border {args.scale})")
    print(f"trained {steps} steps in {(seconds or 0) / 60:.1f} min on {device_label(device)}")
    print(f"{'':28} {'JPEG q' + f'{q[0]}-{q[1]}' + f' + noise<={args.noise:g}':>26}   {'clean LR':>18}")
    for label, table, key in rows:
        d, c = table["degraded"][key], table["clean"][key]
        print(f"{label:28} {d.psnr:14.3f} dB {d.ssim:7.4f}   {c.psnr:9.3f} dB {c.ssim:7.4f}")
    gain = after["degraded"]["fine-tuned"].psnr - before["degraded"]["base"].psnr
    gain_clean = after["clean"]["fine-tuned"].psnr - before["clean"]["base"].psnr
    print(f"\nfine-tuned vs base: {gain:+.3f} dB on JPEG-degraded inputs, {gain_clean:+.3f} dB on clean inputs")

    result = {
        "base": base_name,
        "data": args.data,
        "holdout": [Path(h).name for h in holdout],
        "crop": args.crop,
        "scale": args.scale,
        "degradation": {"jpeg_quality": list(q), "noise_sigma": args.noise, "seed": EVAL_SEED},
        "device": device_label(device),
        "steps": steps,
        "best_step": best_step,
        "train_seconds": seconds,
        "config": cfg.to_json(),
        "scores": {
            domain: {
                **{k: v.as_dict() for k, v in before[domain].items()},
                **{k: v.as_dict() for k, v in after[domain].items()},
            }
            for domain in before
        },
        "gain_db": {"degraded": round(gain, 4), "clean": round(gain_clean, 4)},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["gain_db"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
