"""The inference paths of issue 31, measured whole: ``mlrn upscale`` with its defaults against the bare fp32 loop.

In one run, on this machine (its CPU model and flags printed first), each in a child process of its own:

1. **bare fp32 loop**: a 1200x800 crop of a Photos15 photo through :func:`mlrn_core.tiling.upscale_array` with
   PyTorch fp32 tiles (the interactive 192 px tile), timed around the loop only (no import, load, decode or
   encode): the reference of the issue's first "done when";
2. **mlrn upscale, default** (``--backend auto``, Auto's path measured on a first call and then read from the
   cache, as a user's second photo would): that photo as a JPEG, upscaled with no option but ``-s 2`` (and
   ``--on-exists overwrite``, so that a repeat writes again): the output is the default one, a JPEG next to
   it; whole command timed (start-up, load, decode, network, blend, encode, exit); its ratio to (1) is the
   issue's bar (<= 0.60). The same written as PNG (``-o out.png``, what this benchmark timed before
   2026-12-08) is the next row, for comparison;
3. **mlrn upscale --backend pytorch** (today's default before issue 31: bf16 on CPUs with native bf16, else
   fp32), whole command: the second bar, "no slower than today's bf16 default" where bf16 is native;
4. ``--big``: a 24 MP JPEG (6000x4000, that photo enlarged) through ``mlrn upscale`` default at x2, whole
   command (the issue's second bar: 4 minutes on a 2-core AVX2 machine);
5. ``--psnr``: Set14 PSNR (``docs/EVALUATION.md``, through :func:`mlrn_core.evaluate.benchmark`, as ``mlrn
   bench --precision P``) of every path at x2, x3 and x4 (the built-in paper models), with its difference
   to fp32.

``--isa AVX2`` sets ``ONEDNN_MAX_CPU_ISA=AVX2`` for every child (PyTorch's oneDNN and OpenVINO's CPU plugin
then use no AVX-512, AMX or VNNI kernels): an *emulation* of an AVX2-only CPU on a newer one, not the real
thing (a real AVX2 CPU differs in clock, caches and memory); the output says so.

Usage: ``python benchmarks/backends.py [--isa AVX2] [--repeat 3] [--big] [--psnr | --psnr-only] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"
PATHS = ("fp32", "bf16", "openvino", "openvino-int8")

_BARE = r"""
import sys, time, numpy as np, torch
from mlrn_core import imageio, registry, tiling
model = registry.load_model("mlrn-x2", 2).model
lr = imageio.read_image(sys.argv[1]).rgb
runner = tiling.TileRunner(model, torch.device("cpu"), precision="fp32")
tiling.upscale_array(model, lr[:64, :64], tile=192, runner=runner, dtype=np.uint8)  # warm-up
t = time.perf_counter()
tiling.upscale_array(model, lr, tile=192, runner=runner, dtype=np.uint8)
print(time.perf_counter() - t)
"""


def cpu_facts() -> dict:
    facts = {"machine": platform.machine(), "cpu": platform.processor(), "threads": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        facts["cpu"] = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
        facts["avx512_flags"] = sorted(f for f in flags if f.startswith("avx512") or f.startswith("amx"))
        facts["avx2"] = "avx2" in flags
    except (OSError, AttributeError):
        pass
    return facts


def run(cmd: list[str], env: dict) -> tuple[float, str, str]:
    """(wall seconds, stdout, stderr) of a child process; raises RuntimeError when it fails."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-1500:]}")
    return seconds, done.stdout, done.stderr


def mlrn(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlrn_core.cli", *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA for every child, e.g. AVX2 (an emulation; said so)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timing (the median is reported)")
    ap.add_argument("--big", action="store_true", help="also a 24 MP JPEG at x2 through mlrn upscale (default)")
    ap.add_argument("--psnr", action="store_true", help="also Set14 PSNR of every path at x2, x3 and x4")
    ap.add_argument("--psnr-only", action="store_true", help="only the Set14 table (no timings)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.psnr_only:
        env = dict(os.environ, MLRN_HOME=tempfile.mkdtemp(prefix="mlrn-bench-home-"))
        table = set14_table(env)
        print_set14(table)
        print(json.dumps({**cpu_facts(), "set14": table}))
        return

    from PIL import Image

    env = dict(os.environ, MLRN_HOME=tempfile.mkdtemp(prefix="mlrn-bench-home-"))  # Auto measures afresh here
    if args.isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.isa
    info = {**cpu_facts(), "isa_limit": args.isa, "emulated": bool(args.isa), "loadavg_start": os.getloadavg()}
    print(json.dumps(info), flush=True)
    work = Path(tempfile.mkdtemp(prefix="mlrn-bench-"))
    photo = Image.open(SHARED / PHOTO).convert("RGB").crop((0, 0, 1200, 800))
    png, jpg = work / "photo.png", work / "photo.jpg"
    photo.save(png)
    photo.save(jpg, quality=92)
    # default settings: model Auto (a JPEG: mlrn-x2-photo, the same network shape as the bare loop's mlrn-x2),
    # output next to the photo in its own format (photo_x2.jpg)
    base = ["upscale", str(jpg), "--on-exists", "overwrite", "-s", "2"]
    as_png = [*base, "-o", str(work / "out.png")]

    first_s, _out, first_text = run(mlrn(*base), env)  # Auto's first use: it measures the paths and keeps the answer
    chosen = re.search(r"Auto: (.*?) over PyTorch fp32", first_text)
    rows: dict[str, list[float]] = {
        "bare fp32 loop": [],
        "mlrn upscale (default)": [],
        "mlrn upscale (default) -o out.png": [],
        "mlrn upscale --backend pytorch": [],
    }
    for _ in range(args.repeat):  # interleaved, so a change in the machine's load hits every row alike
        rows["bare fp32 loop"].append(float(run([sys.executable, "-c", _BARE, str(png)], env)[1].split()[-1]))
        rows["mlrn upscale (default)"].append(run(mlrn(*base), env)[0])
        rows["mlrn upscale (default) -o out.png"].append(run(mlrn(*as_png), env)[0])
        rows["mlrn upscale --backend pytorch"].append(run(mlrn(*base, "--backend", "pytorch"), env)[0])
    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        **info,
        "auto_choice": chosen.group(1) if chosen else None,
        "first_use_s": round(first_s, 2),
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "runs_s": {k: [round(x, 2) for x in v] for k, v in rows.items()},
        "default_over_bare": round(med["mlrn upscale (default)"] / med["bare fp32 loop"], 3),
        "default_over_pytorch_default": round(med["mlrn upscale (default)"] / med["mlrn upscale --backend pytorch"], 3),
    }
    if args.big:
        big = work / "big.jpg"
        Image.open(SHARED / PHOTO).convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC).save(big, quality=92)
        big_s, _out, _err = run(mlrn("upscale", str(big), "-o", str(work / "big-x2.jpg"), "-s", "2"), env)
        result["big_24mp_x2_s"] = round(big_s, 1)
    if args.psnr:
        result["set14"] = set14_table(env)
    result["loadavg_end"] = os.getloadavg()

    where = f"{info.get('cpu')}, {os.cpu_count()} threads" + (
        f", ONEDNN_MAX_CPU_ISA={args.isa} (emulated)" if args.isa else ""
    )
    print(f"\n{where}; Auto chose: {result['auto_choice']} (first use, measuring included: {first_s:.1f} s)\n")
    print("| run (1200x800 JPEG, x2) | median s | vs bare fp32 loop |")
    print("|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {v / med['bare fp32 loop']:.2f} |")
    if args.big:
        print(f"\n24 MP JPEG (6000x4000) x2, mlrn upscale default: {result['big_24mp_x2_s']:.0f} s")
    if args.psnr:
        print_set14(result["set14"])
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def print_set14(table: dict) -> None:
    print("\n| scale | " + " | ".join(PATHS) + " |")
    print("|---|" + "---|" * len(PATHS))
    for scale, row in table.items():
        cells = [
            f"{row[p]:.4f} ({row[p] - row['fp32']:+.4f})" if isinstance(row.get(p), float) else str(row.get(p, "-"))
            for p in PATHS
        ]
        print(f"| x{scale} | " + " | ".join(cells) + " |")


def set14_table(env: dict) -> dict:
    """Set14 PSNR of every path at x2, x3, x4 (each ``mlrn bench --precision P --json`` in a child)."""
    table: dict[str, dict] = {}
    for scale in (2, 3, 4):
        row: dict = {}
        for precision in PATHS:
            cmd = mlrn("bench", str(SHARED / "bench" / "Set14"), "-s", str(scale), "--precision", precision, "--json")
            try:
                _s, out, _err = run(cmd, env)
                row[precision] = round(json.loads(out.strip().splitlines()[-1])["model"]["psnr"], 4)
            except RuntimeError as exc:
                row[precision] = f"not run: {str(exc).splitlines()[-1][:80]}"
        table[str(scale)] = row
    return table


if __name__ == "__main__":
    main()
