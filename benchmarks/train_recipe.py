"""Which training recipe buys the most validation PSNR per hour (issue 12, item 3)?

Runs one short training per recipe, one after the other, from the same start and seed, on the same data
and validation split as ``scripts/train_weights.py`` (OpenPhotos, Photos15, BSD200, T91, General100; the
split ``openphotos-val10`` excluded), each for the same wall-clock budget with the cosine spanning it
(``cosine-time``), and records the validation PSNR against training minutes. Recipes:

- ``p48b16``: LR patch 48, batch 16 (the CPU default);
- ``p64b16``: LR patch 64, batch 16 (1.78x the pixels per step);
- ``p48b32``: LR patch 48, batch 32;
- ``p32b32``: LR patch 32, batch 32 (about the pixels of p48b16, more patches);
- ``...-ema``: any of the above with an EMA of the weights (decay 0.999; the EMA copy is validated).

``--init scratch`` trains a fresh network (what a new scale or a new user model does), ``--init shipped``
continues the shipped weights of the scale (what every round of ``train_weights.py`` does). The answer
depends on the machine and on the budget: a run of minutes on a 2-core CPU measures the early part of the
curve. Run it alone (it measures time): ``python benchmarks/train_recipe.py --minutes 8 --recipes p48b16
p64b16 p48b16-ema``. Prints a Markdown table and one JSON line (``--json FILE`` writes it too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core.trainer import TrainConfig, Trainer, ValidationEvent  # noqa: E402
from release import validation  # noqa: E402

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
TRAIN_SETS = validation.TRAIN_SETS  # the data train_weights.py trains on
RECIPE = re.compile(r"^p(\d+)b(\d+)(-ema)?$")


def parse_recipe(name: str) -> dict:
    m = RECIPE.match(name)
    if not m:
        raise SystemExit(f"train_recipe: unknown recipe {name!r} (expected pPATCHbBATCH or pPATCHbBATCH-ema)")
    return {"patch": int(m.group(1)), "batch": int(m.group(2)), "ema": 0.999 if m.group(3) else 0.0}


def run_recipe(name: str, args, valdir: Path, held_out: list[Path], work: Path) -> dict:
    r = parse_recipe(name)
    init = None
    if args.init == "shipped":
        init = str(REPO / "resources" / "models" / f"mlrn-x{args.scale}.pt")
    cfg = TrainConfig(
        data=tuple(str(SHARED / "train" / s) for s in TRAIN_SETS),
        val=(str(valdir),),
        exclude=tuple(str(p) for p in held_out),
        out=str(work / name),
        scale=args.scale,
        batch=r["batch"],
        patch=r["patch"],
        lr=args.lr or (2e-4 if init else 5e-4),
        warmup_steps=50,
        max_steps=None,
        schedule="cosine-time",
        max_minutes=args.minutes,
        val_every=args.val_every,
        image_skip=True,
        ema=r["ema"],
        init=init,
        device="cpu",
        seed=args.seed,
    )
    curve: list[tuple[int, float, float]] = []  # (step, training minutes, val PSNR)
    trainer: Trainer | None = None
    base: list[float | None] = []

    def on_event(ev) -> None:
        if isinstance(ev, ValidationEvent) and trainer is not None:
            curve.append((ev.step, trainer.elapsed() / 60, ev.psnr))
            base.append(ev.base_psnr)

    trainer = Trainer(cfg, on_event)
    t0 = time.perf_counter()
    fin = trainer.run()
    wall = time.perf_counter() - t0
    px = fin.step * r["batch"] * r["patch"] ** 2
    return {
        "recipe": name,
        **r,
        "steps": fin.step,
        "train_minutes": round(fin.elapsed_s / 60, 2),
        "wall_minutes": round(wall / 60, 2),
        "lr_mpx_per_s": round(px / fin.elapsed_s / 1e6, 4),
        "start_psnr": base[0] if base else None,
        "final_psnr": curve[-1][2] if curve else None,
        "best_psnr": max(c[2] for c in curve) if curve else None,
        "curve": [(s, round(m, 2), round(p, 4)) for s, m, p in curve],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["p48b16", "p64b16", "p48b16-ema"])
    ap.add_argument("--minutes", type=float, default=8.0, help="training minutes per recipe")
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--init", choices=("scratch", "shipped"), default="scratch")
    ap.add_argument("--lr", type=float, default=None, help="default 5e-4 from scratch, 2e-4 from the shipped weights")
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    for name in args.recipes:
        parse_recipe(name)  # refuse a typo before any training
    with tempfile.TemporaryDirectory(prefix="mlrn-recipe-") as tmp:
        work = Path(tmp)
        valdir, held_out = validation.validation_split(SHARED / "train" / "OpenPhotos", work / "valsplit")
        results = []
        for name in args.recipes:
            res = run_recipe(name, args, valdir, held_out, work)
            print(f"{name}: {json.dumps(res)}", flush=True)
            results.append(res)
    print(
        f"\nx{args.scale}, init {args.init}, {args.minutes:g} training minutes per recipe, validation split "
        f"{validation.SPLIT_NAME} (Y-PSNR, dB):\n"
    )
    print("| recipe | steps | LR Mpx/s | val PSNR at the end | best | start |")
    print("|---|---|---|---|---|---|")
    for r in results:
        start = f"{r['start_psnr']:.3f}" if r["start_psnr"] is not None else "n/a"
        print(
            f"| {r['recipe']} | {r['steps']} | {r['lr_mpx_per_s']:.4f} | {r['final_psnr']:.3f} | "
            f"{r['best_psnr']:.3f} | {start} |"
        )
    out = {"scale": args.scale, "init": args.init, "minutes": args.minutes, "results": results}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
