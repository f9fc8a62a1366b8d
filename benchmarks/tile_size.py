"""Whether OpenVINO on the CPU runs faster with tiles larger than the CLI's 192 px (``tiling.CPU_TILE``).

A larger tile repeats less of the 16 px overlaps between tiles, but a tile that no longer fits the caches
costs more per pixel. For each path and tile size this times the whole tile loop
(:func:`mlrn_core.tiling.upscale_array`, the plan the CLI uses) on a 1200x800 crop of a Photos15 photo at x2
and, in the same run, one tile of that size alone, sizes interleaved round by round (medians), and prints:
the loop's seconds, the pixels the network computed over the photo's (what the overlaps cost), and the
network's microseconds per computed pixel. The CPU (model and flags) is printed first; ``--isa AVX2`` sets
``ONEDNN_MAX_CPU_ISA`` (an *emulation* of an AVX2-only CPU, said so), before anything loads.

Usage: ``python benchmarks/tile_size.py [--paths openvino-int8 openvino fp32] [--sizes 192 256 320 384]
[--rounds 2] [--isa AVX2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", nargs="+", default=["openvino-int8", "openvino", "fp32"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[192, 256, 320, 384])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA, e.g. AVX2 (an emulation; said so)")
    args = ap.parse_args()
    if args.isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.isa  # before torch or OpenVINO load oneDNN

    import numpy as np
    import torch
    from PIL import Image

    from benchmarks.backends import cpu_facts
    from mlrn_core import registry, tiling

    print(json.dumps({**cpu_facts(), "isa_limit": args.isa, "emulated": bool(args.isa)}), flush=True)
    model = registry.load_model("mlrn-x2", 2).model
    lr = np.asarray(Image.open(SHARED / PHOTO).convert("RGB").crop((0, 0, 1200, 800)), dtype=np.float32) / 255
    h, w = lr.shape[:2]
    runners = {p: tiling.TileRunner(model, torch.device("cpu"), precision=p, fallback=False) for p in args.paths}
    loops: dict[tuple[str, int], list[float]] = {}
    singles: dict[tuple[str, int], list[float]] = {}
    for runner in runners.values():  # warm-up: every size once
        for size in args.sizes:
            runner.run(lr[:size, :size])
    for _round in range(args.rounds):
        for p, runner in runners.items():
            for size in args.sizes:
                t = time.perf_counter()
                runner.run(lr[:size, :size])
                singles.setdefault((p, size), []).append(time.perf_counter() - t)
                t = time.perf_counter()
                tiling.upscale_array(model, lr, tile=size, runner=runner, dtype=np.uint8)
                loops.setdefault((p, size), []).append(time.perf_counter() - t)
    print(f"{'path':<15}{'tile':>6}{'loop s':>9}{'computed/photo':>16}{'us per px (1 tile)':>20}")
    rows = []
    for p in args.paths:
        for size in args.sizes:
            plan = tiling.plan_tiles(h, w, size)
            computed = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in plan)
            loop = statistics.median(loops[(p, size)])
            per_px = statistics.median(singles[(p, size)]) / (size * size) * 1e6
            rows.append(
                {
                    "path": p,
                    "tile": size,
                    "loop_s": round(loop, 2),
                    "computed": round(computed / (h * w), 3),
                    "us_per_px": round(per_px, 2),
                }
            )
            print(f"{p:<15}{size:>6}{loop:>9.2f}{computed / (h * w):>16.3f}{per_px:>20.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
