"""Writing a big 16-bit TIFF (issue 35: tifffile instead of the project's own TIFF writer): time, file size
and the peak memory the write adds, for a 6000x4000 16-bit RGB picture (a smooth gradient with a little
noise, like a developed photo) written by :func:`mlrn_core.imageio.write_image`.

Usage: ``python benchmarks/tiff_write.py [--width 6000] [--height 4000] [--repo CHECKOUT]``. ``--repo`` imports
``mlrn_core`` from another checkout (e.g. ``git worktree add /tmp/old 4650985``, the last commit with the
hand-built writer), so two writers are compared with the same picture on the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="checkout to import from")
    args = ap.parse_args()
    sys.path.insert(0, args.repo)
    import numpy as np

    from mlrn_core import imageio

    h, w = args.height, args.width
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / w, y / h, ((x + y) % 997) / 997], -1)
    rgb += np.random.default_rng(0).normal(0, 0.002, rgb.shape).astype(np.float32)
    picture = imageio.picture_from_array((np.clip(rgb, 0, 1) * 65535).astype(np.uint16))
    del rgb, x, y
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = imageio.write_image(picture, Path(tmp) / "big.tif")
        seconds = time.perf_counter() - t0
        size = os.path.getsize(out) / 1e6
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{platform.processor() or platform.machine()}, mlrn_core from {args.repo}")
    print(
        f"{w}x{h} 16-bit RGB TIFF: {seconds:.1f} s, {size:.1f} MB, peak RSS {after:.0f} MB "
        f"(before the write {before:.0f} MB, so the write added {after - before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
