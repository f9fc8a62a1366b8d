"""CPU threads for the app's renders (issue 15, item 2): all cores or cores - 1, with the GUI responsive?

Runs the app's :class:`app.worker.RenderJob` on a background QThread (as the compare window does) for
a photo at x2, once per thread count, while a 16 ms QTimer on the GUI thread stands for the event loop
(painting, input): its lateness is how long the GUI would have been unresponsive. Reports the render's
seconds and output MP/s and the timer's median, 95th percentile and worst lateness.

Usage: ``python benchmarks/threads.py [--threads 1 2] [--size 800x600] [--precision auto]``.
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
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"
TICK_MS = 16


def measure(path: Path, threads: int, precision: str) -> dict:
    import torch
    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    from app.image_cache import ImageId, RenderKey
    from app.render import VisibleRegion
    from app.worker import MODELS, JobRunner, RenderJob, RenderRequest, RenderSpec
    from mlrn_core import registry

    torch.set_num_threads(threads)
    model_path = str(registry.resolve_model_path(None, 2)[1])
    MODELS.get(model_path, 2, torch.device("cpu"), precision)
    image_id = ImageId.of(path)
    key = RenderKey(image_id, f"model:{model_path}", 2, 0, 16, "cpu", precision)
    visible = VisibleRegion()
    job = RenderJob(RenderRequest(path, image_id, 2, (RenderSpec(key, "model", "MLRN", model_path),), visible=visible))
    loop = QEventLoop()
    late: list[float] = []
    last = [time.perf_counter()]
    done: dict = {}

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - TICK_MS))
        last[0] = now

    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    job.render_done.connect(lambda r: done.update(seconds=r.seconds, mp=r.image.shape[0] * r.image.shape[1] / 1e6))
    job.finished.connect(loop.quit)
    runner = JobRunner(QCoreApplication.instance())  # parented, as the app's session parents its runner
    timer.start()
    runner.start(job)
    loop.exec()
    timer.stop()
    runner.stop_all()
    arr = np.array(late or [0.0])
    return {
        "threads": threads,
        "seconds": round(done.get("seconds", float("nan")), 2),
        "out_mp_per_s": round(done.get("mp", 0) / done.get("seconds", float("nan")), 3),
        "gui_late_ms_median": round(float(np.median(arr)), 1),
        "gui_late_ms_p95": round(float(np.percentile(arr, 95)), 1),
        "gui_late_ms_max": round(float(arr.max()), 1),
        "ticks": len(late),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="default: cores - 1 and cores")
    ap.add_argument("--size", default="800x600")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from mlrn_core.tiling import default_threads

    _app = QApplication.instance() or QApplication([])
    cores = default_threads()
    counts = args.threads or sorted({max(1, cores - 1), cores})
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(json.dumps({"cores": cores, "size": args.size, "loadavg_start": os.getloadavg()}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.png"
        cv2.imwrite(str(path), cv2.imread(str(SHARED / PHOTO))[:h, :w])
        measure(path, counts[0], args.precision)  # warm-up: oneDNN kernels, allocator
        rows = []
        for n in counts:
            rows.append(measure(path, n, args.precision))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| threads | render s | output MP/s | GUI lateness median / p95 / max (ms) |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads']} | {r['seconds']} | {r['out_mp_per_s']} | "
            f"{r['gui_late_ms_median']} / {r['gui_late_ms_p95']} / {r['gui_late_ms_max']} |"
        )
    print(json.dumps({"rows": rows, "loadavg_end": os.getloadavg()}))


if __name__ == "__main__":
    main()
