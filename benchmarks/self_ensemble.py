"""Quality "best" (the geometric self-ensemble) against "normal": its Set14 gain and its cost, in one run.

For each scale asked for, the shipped paper model ``mlrn-x{S}`` (or ``--model``):

- **gain**: Set14 PSNR/SSIM (Y, border = scale, ``docs/EVALUATION.md``'s protocol, the evaluator of
  ``mlrn bench``: fp32, 256 px tiles) at quality normal and at quality best, and the difference; the
  same as ``mlrn bench ../shared/data/bench/Set14 -s S --quality best``;
- **cost**: seconds to upscale the same 480x320 crop of a Photos15 photo at the precision and tile size
  the app and ``mlrn upscale`` use on this machine (``precision="auto"``, 192 px CPU tiles), normal and
  best interleaved, the median of ``--repeat`` runs each after a warm-up, and their ratio.

The machine (CPU model, bf16 support, threads) is printed first. Prints a Markdown table and one JSON line;
``--json FILE`` also writes the JSON. Usage: ``python benchmarks/self_ensemble.py [--scales 2 3 4]
[--repeat 3] [--model NAME]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import data as data_mod  # noqa: E402
from mlrn_core import registry, tiling  # noqa: E402
from mlrn_core.evaluate import benchmark  # noqa: E402

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_upscale(model: torch.nn.Module, lr: np.ndarray, ensemble: bool, tile: int) -> float:
    runner = tiling.TileRunner(model, torch.device("cpu"), precision="auto", ensemble=ensemble)
    t = time.perf_counter()
    tiling.upscale_array(model, lr, tile=tile, runner=runner, dtype=np.uint8)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=(2, 3, 4))
    ap.add_argument("--model", help="model name or file (default: the built-in mlrn-x{S} of each scale)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each quality (default 3)")
    ap.add_argument("--set", default=str(SHARED / "bench" / "Set14"), help="benchmark folder (default Set14)")
    ap.add_argument("--json", type=Path, help="also write the JSON result here")
    args = ap.parse_args()

    machine = {
        "cpu": cpu_name(),
        "bf16_native": tiling.cpu_bf16_supported(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": tiling.resolve_precision(torch.device("cpu"), "auto"),
    }
    print(json.dumps({"machine": machine}), flush=True)
    photo = data_mod.load_hr(SHARED / PHOTO)
    h, w = photo.shape[:2]
    crop = np.ascontiguousarray(photo[(h - 320) // 2 : (h + 320) // 2, (w - 480) // 2 : (w + 480) // 2])
    lr = crop.astype(np.float32) / 255
    rows = []
    for scale in args.scales:
        loaded = registry.load_model(args.model, scale)
        quality = {}
        for ensemble in (False, True):
            t = time.perf_counter()
            res = benchmark([args.set], scale, loaded.model, loaded.name, ensemble=ensemble)
            quality[ensemble] = (res.model, time.perf_counter() - t)
        time_upscale(loaded.model, lr, False, tiling.CPU_TILE)  # warm-up of both paths
        time_upscale(loaded.model, lr, True, tiling.CPU_TILE)
        normal_s, best_s = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            normal_s.append(time_upscale(loaded.model, lr, False, tiling.CPU_TILE))
            best_s.append(time_upscale(loaded.model, lr, True, tiling.CPU_TILE))
        (n, n_eval_s), (b, b_eval_s) = quality[False], quality[True]
        row = {
            "scale": scale,
            "model": loaded.name,
            "images": len(res.images),
            "normal_psnr": round(n.psnr, 4),
            "best_psnr": round(b.psnr, 4),
            "gain_db": round(b.psnr - n.psnr, 4),
            "normal_ssim": round(n.ssim, 5),
            "best_ssim": round(b.ssim, 5),
            "photo_normal_s": round(statistics.median(normal_s), 3),
            "photo_best_s": round(statistics.median(best_s), 3),
            "time_ratio": round(statistics.median(best_s) / statistics.median(normal_s), 2),
            "eval_fp32_s": [round(n_eval_s, 1), round(b_eval_s, 1)],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"Machine: {machine['cpu']}, {machine['threads']} threads, precision {machine['precision']}")
    print("| scale | model | Set14 normal | Set14 best | gain (dB) | 480x320 normal s | best s | time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| x{r['scale']} | {r['model']} | {r['normal_psnr']:.3f} / {r['normal_ssim']:.4f} | "
            f"{r['best_psnr']:.3f} / {r['best_ssim']:.4f} | {r['gain_db']:+.3f} | {r['photo_normal_s']} | "
            f"{r['photo_best_s']} | {r['time_ratio']}x |"
        )
    result = {"machine": machine, "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
