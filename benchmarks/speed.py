"""Inference speed and memory of MLRN on this machine (issue: foundation, item 8).

Measures, and prints as a Markdown table plus one JSON line:
1. the CPU's fp32 matrix-multiply rate (the roofline the network is compared with);
2. the MLRN forward pass in GFLOP/s (FLOPs counted exactly from the convolutions' shapes) and as a
   fraction of (1);
3. end-to-end ``mlrn upscale`` (process start, model load, read, tiled inference, atomic write) against
   the same tiled inference in-process (same tile size, same runner: like with like, so the ratio is
   the overhead of everything around the network); ``--untiled`` also times one untiled forward pass
   and ``--tiles`` the tiled inference at other tile sizes;
4. the peak resident memory of a ``mlrn upscale`` job of a 1200x800 image at x4.

Usage: ``python benchmarks/speed.py [--threads N] [--repeat R] [--scales 2,4] [--tiles 128,192,256]
[--untiled]``. Everything here is fp32 (the faster default precisions are compared in
``benchmarks/precision.py``). Speed does not depend on the weights, so a random-initialised model file is
used when no built-in model exists.
Timings are the best of R runs (the peak memory the largest), to reduce the noise of a shared machine;
run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import MLRN, registry  # noqa: E402
from mlrn_core.tiling import CPU_TILE, TileRunner, upscale_array  # noqa: E402


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up (oneDNN primitive creation, allocator)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_gflops(repeat: int) -> float:
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    t = best_time(lambda: torch.mm(a, b), repeat)
    return 2 * n**3 / t / 1e9


def conv_flops(model: torch.nn.Module, h: int, w: int) -> int:
    """Exact multiply-add FLOPs (2 per MAC) of every convolution for an h x w input."""
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        kh, kw = mod.kernel_size
        total += 2 * out.numel() * (mod.in_channels // mod.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, h, w))
    for hd in handles:
        hd.remove()
    return total


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one `mlrn` process."""
    code = (
        "import sys\n"
        "from mlrn_core.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        # VmHWM, not ru_maxrss: Linux carries the forking parent's peak into the child's ru_maxrss
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"mlrn {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    rss_kb = int(next(ln for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS")).split()[1])
    return wall, rss_kb * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--untiled", action="store_true", help="also time one untiled forward pass (slow, memory-hungry)")
    ap.add_argument("--scales", default="2,4", help="comma-separated scales of the end-to-end runs (default 2,4)")
    ap.add_argument("--size", default="1200x800", help="WxH of the end-to-end test image (small to check the script)")
    ap.add_argument(
        "--tiles",
        default=str(CPU_TILE),
        help=f"comma-separated LR tile sizes for the tiled inference (the CLI runs at {CPU_TILE})",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    results: dict[str, float | int | str] = {"threads": threads, "torch": str(torch.__version__)}
    tiles = sorted({int(t) for t in args.tiles.split(",")} | {CPU_TILE})
    iw, ih = (int(v) for v in args.size.lower().split("x"))
    size = f"{iw}x{ih}"

    results["matmul_gflops"] = round(matmul_gflops(args.repeat), 1)

    model = MLRN(scale=2).eval()
    runner = TileRunner(model, torch.device("cpu"), precision="fp32")  # the fp32 roofline
    h, w = 192, 192  # the CPU tile size
    lr = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    flops = conv_flops(model, h, w)
    t = best_time(lambda: runner.run(lr), args.repeat)
    results["mlrn_x2_mflop_per_lr_px"] = round(flops / (h * w) / 1e6, 3)
    results["mlrn_x2_gflops"] = round(flops / t / 1e9, 1)
    results["mlrn_vs_matmul"] = round(results["mlrn_x2_gflops"] / results["matmul_gflops"], 3)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from PIL import Image

        rng = np.random.default_rng(1)
        img = (rng.random((ih, iw, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(tmp / "in.png")
        for scale in sorted({int(s) for s in args.scales.split(",")}):
            try:
                registry.load_model(None, scale)
                spec = f"mlrn-x{scale}"
            except registry.ModelError:
                spec = str(registry.save_model(tmp / f"random-x{scale}.pt", MLRN(scale=scale)))
            loaded = registry.load_model(spec, scale)
            if args.untiled:
                x = torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1) / 255)[None]
                with torch.inference_mode():
                    bare = best_time(lambda m=loaded.model, x=x: m(x), 1)
                results[f"x{scale}_{size}_untiled_forward_s"] = round(bare, 2)
            rgb = img.astype(np.float32) / 255
            net_runner = TileRunner(loaded.model, torch.device("cpu"), precision="fp32")  # as the CLI below
            tiled = {}
            for t in tiles:
                tiled[t] = best_time(
                    lambda t=t, m=loaded.model, x=rgb, r=net_runner: upscale_array(m, x, tile=t, runner=r),
                    args.repeat,
                )
            cli = [
                "upscale",
                str(tmp / "in.png"),
                "-s",
                str(scale),
                "--model",
                spec,
                "--tile",
                str(CPU_TILE),
                "-o",
                str(tmp / f"out{scale}.png"),
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--on-exists",
                "overwrite",
            ]
            runs = [run_cli(cli) for _ in range(args.repeat)]
            wall, rss = min(r[0] for r in runs), max(r[1] for r in runs)
            for t in tiles:
                results[f"x{scale}_{size}_tiled_{t}px_s"] = round(tiled[t], 2)
            results[f"x{scale}_{size}_mlrn_upscale_s"] = round(wall, 2)
            results[f"x{scale}_end_to_end_vs_tiled_{CPU_TILE}px"] = round(wall / tiled[CPU_TILE], 2)
            results[f"x{scale}_{size}_peak_rss_gb"] = round(rss / 1e9, 2)

    print("| measure | value |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
