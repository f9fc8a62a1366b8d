"""Peak memory of ``mlrn upscale`` on big photos (issue 14, item 5): 6, 24 and 48 megapixels at x2 and x4.

For each input size a camera-like JPEG (a Photos15 photo enlarged, quality 92) is made, then one
``mlrn upscale`` process per scale reads it, upscales it tile by tile into a uint8 result and writes it
(``--format``, JPEG by default); its peak resident memory (VmHWM) is read at exit. The table gives the
peak next to the output's own bytes (H x W x 3 for uint8) and the input's float32 pixels (the decoded
picture, 12 bytes per input pixel), and what is left over: working memory that does not grow with the
output (tiles, the strip of overlaps, the network, torch and the libraries, the encoder's buffers).

The network's activations are per tile, so the memory does not depend on its weights: by default a
small random MLRN (``--features 8 --blocks 1``) keeps a 48 MP x4 run to minutes on a laptop CPU;
``--real`` uses the shipped model instead (same memory, much slower).

Usage: ``python benchmarks/memory.py [--megapixels 6 24 48] [--scales 2 4] [--format jpg] [--real]``;
``--gray-side 20000`` measures one 20000 x 20000 gray PNG instead (issue 33). Each row also gives what
:func:`mlrn_core.memory.upscale_bytes` predicts, the figure the batch compares with the free memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/picosdeeuropa_by_Aitzol_Berasategi.png"

_CHILD = (
    "import sys\n"
    "from mlrn_core.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    # VmHWM, not ru_maxrss: Linux carries the forking parent's peak into the child's ru_maxrss
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('VMHWM', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def make_jpeg(path: Path, megapixels: float) -> tuple[int, int]:
    src = cv2.imread(str(SHARED / PHOTO), cv2.IMREAD_COLOR)
    h0, w0 = src.shape[:2]
    f = math.sqrt(megapixels * 1e6 / (h0 * w0))
    w, h = round(w0 * f), round(h0 * f)
    cv2.imwrite(str(path), cv2.resize(src, (w, h), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return w, h


def make_gray_png(path: Path, side: int) -> tuple[int, int]:
    """A side x side 8-bit gray PNG that compresses to almost nothing (a 20000^2 one is a few hundred KB):
    a flat field with a grid of lines, the issue's 'valid 20000x20000 gray PNG under the pixel limit'."""
    import numpy as np

    img = np.full((side, side), 96, np.uint8)
    img[::64, :] = 200
    img[:, ::64] = 40
    cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return side, side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, nargs="+", default=[6, 24, 48])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--format", default="jpg", choices=("jpg", "png", "tiff", "webp"))
    ap.add_argument("--real", action="store_true", help="the shipped model instead of a small random one")
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tile", type=int, default=0, help="tile size in input pixels (default: the CLI's automatic)")
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--gray-side", type=int, help="instead of camera JPEGs: one SIDE x SIDE gray PNG (e.g. 20000, 400 MP)"
    )
    args = ap.parse_args()

    from mlrn_core import memory, registry
    from mlrn_core.model import MLRN

    rows = []
    print(json.dumps({"loadavg_start": os.getloadavg(), "real_model": args.real, "format": args.format}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = [args.gray_side * args.gray_side / 1e6] if args.gray_side else args.megapixels
        for mp in inputs:
            if args.gray_side:
                src = tmp / f"gray{args.gray_side}.png"
                w, h = make_gray_png(src, args.gray_side)
                print(json.dumps({"input": src.name, "bytes": src.stat().st_size}), flush=True)
            else:
                src = tmp / f"in{mp:g}.jpg"
                w, h = make_jpeg(src, mp)
            for scale in args.scales:
                if args.real:
                    model = f"mlrn-x{scale}"
                else:
                    net = MLRN(scale=scale, features=args.features, blocks=args.blocks)
                    model = str(registry.save_model(tmp / f"small-x{scale}.pt", net))
                out = tmp / f"out.{args.format}"
                cmd = [
                    sys.executable,
                    "-c",
                    _CHILD,
                    "upscale",
                    str(src),
                    "-s",
                    str(scale),
                    "--model",
                    model,
                    "-o",
                    str(out),
                    "--device",
                    "cpu",
                    "--on-exists",
                    "overwrite",
                ]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                if args.tile:
                    cmd += ["--tile", str(args.tile)]
                t = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                wall = time.perf_counter() - t
                if proc.returncode != 0:
                    print(f"{mp} MP x{scale} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
                    continue
                hwm = int(next(ln for ln in proc.stderr.splitlines() if ln.startswith("VMHWM")).split()[1]) * 1024
                out_bytes = w * h * scale * scale * 3
                in_float = w * h * 3 * 4
                row = {
                    "megapixels": mp,
                    "size": f"{w}x{h}",
                    "scale": scale,
                    "seconds": round(wall, 1),
                    "peak_gb": round(hwm / 2**30, 2),
                    "output_gb": round(out_bytes / 2**30, 2),
                    "input_float_gb": round(in_float / 2**30, 2),
                    "rest_gb": round((hwm - out_bytes - in_float) / 2**30, 2),
                    "float32_output_would_be_gb": round(out_bytes * 4 / 2**30, 2),
                    # what mlrn_core.memory tells the batch it will add, to compare with the peak
                    "predicted_gb": round(memory.upscale_bytes(w, h, scale) / 2**30, 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                out.unlink(missing_ok=True)
            src.unlink()
    print(
        "\n| input | scale | peak RSS | output (uint8) | input (float32) | rest | a float32 output alone "
        "| predicted need | time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['megapixels']:g} MP ({r['size']}) | x{r['scale']} | {r['peak_gb']} GiB | {r['output_gb']} GiB | "
            f"{r['input_float_gb']} GiB | {r['rest_gb']} GiB | {r['float32_output_would_be_gb']} GiB | "
            f"{r['predicted_gb']} GiB | {r['seconds']} s |"
        )
    result = {"rows": rows, "loadavg_end": os.getloadavg()}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
