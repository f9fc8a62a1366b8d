"""The fixed validation split that picks the shipped models' best checkpoint.

Ten 480 x 480 crops, one from the centre of each of ten photographs of ``train/OpenPhotos`` (every sixth
file in name order, from the fourth). Those ten photographs are never trained on: :func:`validation_split`
returns them as the files to exclude. Set5, Set14 and any other benchmark are only reported, never used
to select, stop or tune (see the weights issue and ``docs/EVALUATION.md`` of the shared docs).

The crops are written once as PNG files into a folder (content-checked on every call), so the trainer
validates on them like on any other folder of images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from mlrn_core import imageio

SPLIT_NAME = "openphotos-val10"
#: the training sets of the shipped weights (under ../shared/data/train), the split's photographs excluded
TRAIN_SETS = ("OpenPhotos", "Photos15", "BSD200", "T91", "General100")
CROP = 480
FILES = (
    "budgie-backgrounds__colorful-wall.jpg",
    "budgie-backgrounds__san-francisco-skyline.jpg",
    "elementary-wallpapers__Ashim_DSilva.jpg",
    "elementary-wallpapers__Photo_by_SpaceX.jpg",
    "lxqt-themes__this-is-not-windows.jpg",
    "ubuntu-mate-artwork__andrew-ridley-54228.jpg",
    "ubuntu-mate-artwork__matteo-botto-16023.jpg",
    "xubuntu-community__Lighthouse_by_Dominik_Czernetzky.jpg",
    "xubuntu-community__Untitled_by_Aaron_Burden.jpg",
    "xubuntu-community__jeff_morgan__stub_stewart_iridium_flare__4k.jpg",
)
DESCRIPTION = (
    f"`{SPLIT_NAME}`: the central {CROP} x {CROP} px crop of 10 photographs of "
    "`train/OpenPhotos` (every sixth file by name, from the fourth: " + ", ".join(FILES) + "), never trained on"
)


class SplitError(Exception):
    """The validation photographs are missing or unreadable."""


def centre_crop(img: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = img.shape[:2]
    if min(h, w) < size:
        raise SplitError(f"image of {w}x{h} is smaller than the {size} px validation crop")
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y : y + size, x : x + size])


def source_files(openphotos: str | os.PathLike) -> list[Path]:
    """The ten photographs the split is cut from (to exclude from training)."""
    folder = Path(openphotos)
    files = [folder / name for name in FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SplitError(f"validation photographs missing from {folder}: {', '.join(missing)}")
    return files


def validation_split(openphotos: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """Write (or check) the crops in ``out_dir/SPLIT_NAME``; return that folder and the files to exclude.

    The PNG files are rewritten whenever their pixels differ from the crop of the source (a changed
    source or a damaged file), so the split is always exactly the documented one.
    """
    files = source_files(openphotos)
    folder = Path(out_dir) / SPLIT_NAME
    folder.mkdir(parents=True, exist_ok=True)
    for src in files:
        crop = centre_crop(imageio.picture_to_uint8_rgb(imageio.read_image(src)))
        dst = folder / (src.stem + ".png")
        if dst.is_file():
            try:
                have = imageio.picture_to_uint8_rgb(imageio.read_image(dst))
                if have.shape == crop.shape and np.array_equal(have, crop):
                    continue
            except imageio.ImageIOError:
                pass
        dst.unlink(missing_ok=True)
        imageio.write_image(imageio.picture_from_array(crop), dst)
    stale = [p for p in folder.iterdir() if p.suffix == ".png" and p.stem not in {f.stem for f in files}]
    for p in stale:
        p.unlink()
    return folder, files


def split_digest(folder: str | os.PathLike) -> str:
    """A short hash of the split's pixels (named in the model card, so a reader can check the split)."""
    h = hashlib.sha1()
    for name in FILES:
        img = imageio.picture_to_uint8_rgb(imageio.read_image(Path(folder) / (Path(name).stem + ".png")))
        h.update(img.tobytes())
    return h.hexdigest()[:12]
