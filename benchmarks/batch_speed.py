"""Batch upscaling speed: images per minute through :func:`mlrn_core.batch.run_batch`, with and without
the reader/writer overlap.

Generates N photo-like JPEGs (smooth noise, edges, grain; default 20 of 1 megapixel) in a temporary
folder, loads the built-in model for the scale or, where none is shipped, a randomly initialised MLRN of
the real architecture saved to a temporary model file (speed does not depend on the weights), then runs
the same batch with prefetch (the next picture is decoded and the previous one encoded while the
network runs) and without. It also times reading and writing alone, which bounds what the overlap can
save. Example::

    python benchmarks/batch_speed.py                     # 20 x 1 MP, x2, CPU, real architecture
    python benchmarks/batch_speed.py --images 4 --megapixels 0.25 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlrn_core import imageio, registry  # noqa: E402
from mlrn_core.batch import BatchOptions, plan_batch, run_batch  # noqa: E402
from mlrn_core.model import MLRN  # noqa: E402
from mlrn_core.tiling import device_label, pick_device  # noqa: E402


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 HxWx3: low-frequency colour noise, hard-edged shapes and lines, and fine grain."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        colour = tuple(float(c) for c in rng.random(3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, thickness=-1)
        else:
            cv2.line(img, (x0, y0), (x1, y1), colour, thickness=int(rng.integers(1, 6)), lineType=cv2.LINE_AA)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_photos(folder: Path, count: int, megapixels: float) -> tuple[int, int]:
    w = int(round(math.sqrt(megapixels * 1e6 * 4 / 3) / 16)) * 16
    h = int(round(w * 3 / 4 / 16)) * 16
    for i in range(count):
        bgr = photo_like(h, w, i)[:, :, ::-1]
        cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return w, h


def load_model(scale: int, tmp: Path, features: int | None, blocks: int | None) -> registry.LoadedModel:
    if features is None and blocks is None:
        try:
            return registry.load_model(None, scale)
        except registry.ModelError:
            pass  # no built-in weights shipped yet: same architecture, random weights
    kw = {k: v for k, v in (("features", features), ("blocks", blocks)) if v is not None}
    torch.manual_seed(0)
    path = registry.save_model(tmp / "random.pt", MLRN(scale=scale, **kw), info={"note": "random weights"})
    return registry.load_model(str(path), scale)


def time_io(folder: Path, out: Path, scale: int) -> float:
    """Seconds to read every input and write an output of the upscaled size (no network)."""
    out.mkdir()
    t0 = time.perf_counter()
    for src in sorted(folder.glob("*.jpg")):
        pic = imageio.read_image(src)
        big = cv2.resize(pic.rgb, (pic.width * scale, pic.height * scale), interpolation=cv2.INTER_LINEAR)
        imageio.write_image(pic.with_pixels(big, None), out / src.name)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20, help="number of photos (default 20)")
    ap.add_argument("--megapixels", type=float, default=1.0, help="size of each photo (default 1.0)")
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda, mps (default cpu)")
    ap.add_argument("--tile", type=int, default=0, help="tile size in LR px (0 = automatic)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--features", type=int, help="build a lighter MLRN (G) instead of the real one")
    ap.add_argument("--blocks", type=int, help="build a lighter MLRN (N) instead of the real one")
    ap.add_argument("--repeat", type=int, default=1, help="runs per mode, alternating; the best is kept")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="mlrn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "in"
        src.mkdir()
        w, h = make_photos(src, args.images, args.megapixels)
        loaded = load_model(args.scale, tmp, args.features, args.blocks)
        device = pick_device(args.device)
        print(
            f"{args.images} photos of {w}x{h} ({w * h / 1e6:.2f} MP) x{args.scale} with {loaded.name} "
            f"{loaded.model.hparams['features']}x{loaded.model.hparams['blocks']} on {device_label(device)}",
            file=sys.stderr,
        )
        io_s = time_io(src, tmp / "io", args.scale)

        # warm-up on one small crop so one-off costs (allocator, kernels) hit neither timed run
        warm = tmp / "warm"
        warm.mkdir()
        cv2.imwrite(str(warm / "w.png"), photo_like(64, 64, 99))
        opts = BatchOptions(scale=args.scale, tile=args.tile or None)
        run_batch(plan_batch([warm], tmp / "warm-out", opts), opts, loaded, device=device)

        figures: dict[str, object] = {
            "images": args.images,
            "width": w,
            "height": h,
            "scale": args.scale,
            "model": loaded.name,
            "features": loaded.model.hparams["features"],
            "blocks": loaded.model.hparams["blocks"],
            "device": device_label(device),
            "io_only_s": round(io_s, 2),
        }
        best: dict[bool, float] = {}
        for rep in range(args.repeat):
            # alternate the order so that a drifting machine load favours neither mode
            for prefetch in (True, False) if rep % 2 == 0 else (False, True):
                opts = BatchOptions(scale=args.scale, tile=args.tile or None, prefetch=prefetch)
                plan = plan_batch([src], tmp / f"out-{prefetch}-{rep}", opts)
                t0 = time.perf_counter()
                summary = run_batch(plan, opts, loaded, device=device)
                seconds = time.perf_counter() - t0
                if summary.failed:
                    print(f"failures: {[(r.item.source.name, r.error) for r in summary.failed]}", file=sys.stderr)
                    return 1
                best[prefetch] = min(seconds, best.get(prefetch, math.inf))
                print(
                    f"  run {rep + 1} {'with' if prefetch else 'without'} prefetch: {seconds:8.2f} s  "
                    f"{60 * args.images / seconds:7.2f} images/min",
                    file=sys.stderr,
                )
        for prefetch, seconds in best.items():
            key = "prefetch" if prefetch else "no_prefetch"
            figures[f"{key}_s"] = round(seconds, 2)
            figures[f"{key}_images_per_min"] = round(60 * args.images / seconds, 2)
        gain = figures["no_prefetch_s"] / figures["prefetch_s"] - 1  # type: ignore[operator]
        figures["overlap_gain_pct"] = round(100 * gain, 1)
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"x{args.scale} on {figures['device']}: {figures['prefetch_images_per_min']} images/min with prefetch, "
            f"{figures['no_prefetch_images_per_min']} without ({figures['overlap_gain_pct']:+.1f}%); "
            f"reading+writing alone takes {io_s:.2f} s for {args.images} images"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
