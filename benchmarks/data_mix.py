"""How the training patches are shared out among the training sets, drawn per file or by area.

``python benchmarks/data_mix.py --scale 2 --patch 48`` reads the image sizes of every training set (the
validation photographs excluded, as ``scripts/train_weights.py`` does) and prints, for each set, its share
of the patches when every file counts the same and when images count by their area (the trainer's
default, ``TrainConfig.sample_by_area``). It reads headers only, so it takes seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from mlrn_core import data as data_mod  # noqa: E402
from release import validation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
SETS = validation.TRAIN_SETS  # the data train_weights.py trains on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--patch", type=int, default=48, help="LR patch side")
    a = ap.parse_args()
    held_out = set(validation.FILES)
    files, area = {}, {}
    for name in SETS:
        n, positions = 0, 0
        for path in data_mod.iter_image_files([SHARED / "train" / name]):
            if path.name in held_out:
                continue
            with Image.open(path) as im:
                w, h = im.size
            lw, lh = w // a.scale, h // a.scale
            if min(lw, lh) < a.patch:
                continue
            n += 1
            positions += (lw - a.patch + 1) * (lh - a.patch + 1)
        files[name], area[name] = n, positions
    nf, na = sum(files.values()), sum(area.values())
    print(f"x{a.scale}, {a.patch} px LR patches; {nf} usable training images")
    print(f"{'set':<12} {'images':>6} {'per file':>9} {'by area':>8}")
    for name in SETS:
        print(f"{name:<12} {files[name]:>6} {files[name] / nf:>8.1%} {area[name] / na:>8.1%}")


if __name__ == "__main__":
    main()
