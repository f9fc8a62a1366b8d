"""Shared test helpers: where the shared data lives, tiny models, generated images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))

needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "bench" / "Set5").is_dir(),
    reason=f"the benchmark images are not at {SHARED_DATA} (set MLRN_SHARED_DATA to the shared data folder)",
)


def tiny_model(scale: int = 2, seed: int = 0, **kw):
    import torch

    from mlrn_core import MLRN

    torch.manual_seed(seed)
    return MLRN(scale=scale, features=kw.pop("features", 8), blocks=kw.pop("blocks", 1), **kw).eval()


def textured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB image with edges and texture (smooth noise alone trains nothing useful)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / (3 + seed % 5)) * np.cos(yy / 7.0)
    img = np.stack([base, np.roll(base, 3, axis=1), np.roll(base, 5, axis=0)], axis=2)
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    img[h // 3 : h // 2, w // 4 : w // 2] = rng.random(3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_png_folder(folder: Path, count: int, h: int = 64, w: int = 80) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(textured_image(h, w, seed=i)).save(p)
        paths.append(p)
    return paths


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
