"""A 24-megapixel JPEG through the app's render path (issue 15, item 3): first visible MLRN tile, whole image.

Makes a 24 MP camera-like JPEG (a Photos15 photo enlarged to 5664x4248, quality 92) unless ``--image``
is given, then runs :class:`app.worker.RenderJob` exactly as the compare window starts it for a newly
opened file: read and decode the file, build the LR display pyramid, the bicubic render (the left view
and the placeholder), then the MLRN render with the interactive tile size, tiles nearest the centre of
the fitted view first. Times are from the moment the job starts (decode included) to:

- ``loaded``: the picture decoded and shown (LR placeholder);
- ``first_tile``: the first MLRN region final on the canvas (what the viewer paints first);
- ``bicubic``: the bicubic view done;
- ``whole``: the whole MLRN image done.

Usage: ``python benchmarks/big_photo.py [--scales 2 4] [--precision auto] [--threads N]
[--max-tiles N]``. ``--max-tiles`` stops after N tiles and extrapolates the whole-image time from the
mean tile time after the bicubic view (said so in the output), for machines where a full x4 run takes
too long. The bicubic view is made right after the first MLRN tiles are on screen (until then the LR
placeholder stands in for it), so ``first_tile`` comes before ``bicubic``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/picosdeeuropa_by_Aitzol_Berasategi.png"


def make_jpeg(path: Path, width: int = 5664, height: int = 4248) -> Path:
    src = cv2.imread(str(SHARED / PHOTO), cv2.IMREAD_COLOR)
    big = cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def peak_rss_gb() -> float:
    with open("/proc/self/status") as fh:
        hwm = next(line for line in fh if line.startswith("VmHWM")).split()[1]
    return int(hwm) / 2**20


def run(path: Path, scale: int, precision: str, max_tiles: int | None, tile: int = 0) -> dict:
    from app.image_cache import ImageId, RenderKey
    from app.render import VisibleRegion
    from app.worker import MODELS, RenderJob, RenderRequest, RenderSpec
    from mlrn_core import registry

    model_path = str(registry.resolve_model_path(None, scale)[1])
    image_id = ImageId.of(path)
    bicubic = RenderSpec(RenderKey(image_id, "bicubic", scale), "bicubic", "Bicubic")
    mkey = RenderKey(image_id, f"model:{model_path}", scale, tile, 16, "cpu", precision)
    model = RenderSpec(mkey, "model", "MLRN", model_path)
    MODELS.get(model_path, scale, __import__("torch").device("cpu"), precision)  # the app has it loaded already
    visible = VisibleRegion()  # the fitted view: the whole image is on screen, tiles go centre-out
    request = RenderRequest(path, image_id, scale, (bicubic, model), tile=tile, visible=visible)
    job = RenderJob(request)
    marks: dict[str, float] = {}
    tiles_done: list[float] = []
    total = {}

    def mark(name: str) -> None:
        marks.setdefault(name, time.perf_counter() - t0)

    def on_loaded(loaded) -> None:
        mark("loaded")
        visible.set((0.0, 0.0, float(loaded.picture.width), float(loaded.picture.height)))

    def on_started(key, n, _canvas) -> None:
        if key == mkey:
            total["tiles"] = n
            mark("model_started")

    def on_progress(key, done, n) -> None:
        if key == mkey and done:
            tiles_done.append(time.perf_counter() - t0)
            if max_tiles and done >= max_tiles:
                job.stop()

    job.loaded.connect(on_loaded)
    job.render_started.connect(on_started)
    job.render_progress.connect(on_progress)
    job.tiles.connect(lambda key, _rects: mark("first_tile") if key == mkey else None)
    job.render_done.connect(lambda r: mark("bicubic" if r.key.method == "bicubic" else "whole"))
    job.render_failed.connect(lambda _k, msg: print("FAILED:", msg, file=sys.stderr))
    t0 = time.perf_counter()
    job.run()
    res = {k: round(v, 2) for k, v in marks.items()}
    res.update(scale=scale, tiles=total.get("tiles"), tiles_run=len(tiles_done))
    # the bicubic view is made once, between the first MLRN tiles and the next: the tile rate is taken from
    # the tiles done after it (when there are two), and the whole time = the last tile + the rest at that rate
    after = [t for t in tiles_done if t >= marks.get("bicubic", 0.0)]
    steady = after if len(after) >= 2 else tiles_done
    if "whole" not in marks and len(steady) >= 2:
        per_tile = (steady[-1] - steady[0]) / (len(steady) - 1)
        res["whole_extrapolated"] = round(tiles_done[-1] + per_tile * (total["tiles"] - len(tiles_done)), 1)
        res["s_per_tile"] = round(per_tile, 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, help="a photo to open, camera RAW included (default: a generated 24 MP JPEG)")
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: the app's, every core)")
    ap.add_argument("--max-tiles", type=int, default=0)
    ap.add_argument("--tile", type=int, default=0, help="LR tile size (default 0: the app's interactive size)")
    args = ap.parse_args()

    import torch
    from PySide6.QtWidgets import QApplication

    from mlrn_core.tiling import default_threads, resolve_precision

    _app = QApplication.instance() or QApplication([])
    torch.set_num_threads(args.threads or default_threads())  # as app.main.configure_torch_threads
    with tempfile.TemporaryDirectory() as tmp:
        path = args.image or make_jpeg(Path(tmp) / "big24.jpg")
        from PIL import Image

        from mlrn_core import imageio
        from mlrn_core.imageio import raw

        preview = raw.embedded_preview(path) if imageio.is_camera_raw(path) else None
        if preview is not None:  # Pillow would report the size of the RAW's preview (its first TIFF page)
            w, h = preview.width, preview.height
        else:
            with Image.open(path) as im:
                w, h = im.size
        info = {
            "image": str(path) if args.image else "generated",
            "size": f"{w}x{h}",
            "megapixels": round(w * h / 1e6, 1),
            "file_mb": round(os.path.getsize(path) / 1e6, 1),
            "threads": torch.get_num_threads(),
            "precision": resolve_precision(torch.device("cpu"), args.precision),
            "loadavg_start": os.getloadavg(),
        }
        print(json.dumps(info), flush=True)
        for scale in args.scales:
            res = run(path, scale, args.precision, args.max_tiles or None, args.tile)
            res["peak_rss_gb"] = round(peak_rss_gb(), 2)
            print(json.dumps(res), flush=True)
    print(json.dumps({"loadavg_end": os.getloadavg()}))


if __name__ == "__main__":
    main()
