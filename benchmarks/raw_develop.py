"""A 24-megapixel camera RAW file (issue 32, item 5): time to its embedded preview, development time, the
whole ``mlrn upscale`` of it, and the peak memory of each.

Makes a 6000x4000 DNG (RGGB Bayer mosaic, 12 bit, a warm white balance to undo, a 1500x1000 preview in
IFD0, as cameras write them) from a Photos15 photograph enlarged and taken back to linear light, unless
``--raw`` names a RAW file of your own. Each step runs in a child process of its own, so its peak RSS
(VmHWM) is its own:

- ``preview``: :func:`mlrn_core.imageio.raw.embedded_preview` (what the app shows at once);
- ``develop``: :func:`mlrn_core.imageio.read_image` (LibRaw's development to a 16-bit picture, float32);
- ``upscale``: ``mlrn upscale FILE --out-dir DIR -s S`` with the built-in model (read, develop, tiles,
  16-bit TIFF written), unless ``--no-upscale``.

Usage: ``python benchmarks/raw_develop.py [--raw FILE] [--scale 2] [--no-upscale] [--json OUT]``.
The app's render path for the same file: ``python benchmarks/big_photo.py --image FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/picosdeeuropa_by_Aitzol_Berasategi.png"

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
step, path = sys.argv[1], sys.argv[2]
from mlrn_core.imageio import raw, read_image
t1 = time.perf_counter()
if step == "preview":
    p = raw.embedded_preview(path)
    what = None if p is None else [int(p.rgb.shape[1]), int(p.rgb.shape[0]), p.width, p.height]
else:
    pic = read_image(path)
    what = [pic.width, pic.height, pic.bit_depth]
t2 = time.perf_counter()
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(json.dumps({"seconds": round(t2 - t1, 3), "import_s": round(t1 - t0, 3), "result": what,
                  "peak_rss_gb": round(int(hwm) / 2**20, 3)}))
"""


def make_dng(path: Path, width: int = 6000, height: int = 4000) -> Path:
    import cv2
    import numpy as np

    from tests.rawfiles import make_dng as write_dng

    src = cv2.imread(str(SHARED / PHOTO), cv2.IMREAD_COLOR)[:, :, ::-1]
    big = cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    linear = np.where(big <= 0.04045, big / 12.92, ((big + 0.055) / 1.055) ** 2.4)  # the sRGB curve undone
    return write_dng(path, linear=linear, neutral=(0.55, 1.0, 0.75))


def child(step: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, step, str(path)], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def upscale(path: Path, scale: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "mlrn_core.cli", "upscale", str(path), "--out-dir", out, "-s", str(scale)]
        wrapped = ["/usr/bin/time", "-f", "MAXRSS %M", *cmd] if Path("/usr/bin/time").exists() else cmd
        t0 = time.perf_counter()
        done = subprocess.run(wrapped, capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - t0
        rss = [line for line in done.stderr.splitlines() if line.startswith("MAXRSS")]
        outputs = sorted(p.name for p in Path(out).iterdir())
    if done.returncode != 0:
        raise SystemExit(f"mlrn upscale failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(int(rss[-1].split()[1]) / 2**20, 3) if rss else None,
        "outputs": outputs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, help="a RAW file of your own (default: a 6000x4000 DNG made here)")
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--no-upscale", action="store_true", help="only the preview and the development")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.raw or make_dng(Path(tmp) / "bench_24mp.dng")
        size_mb = path.stat().st_size / 1e6
        result = {
            "machine": {"cpu": _cpu(), "threads": os.cpu_count(), "python": platform.python_version()},
            "file": {"name": path.name, "mb": round(size_mb, 1)},
            "preview": child("preview", path),
            "develop": child("develop", path),
        }
        if not args.no_upscale:
            result["upscale"] = {"scale": args.scale, **upscale(path, args.scale)}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
