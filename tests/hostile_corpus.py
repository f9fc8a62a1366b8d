"""A small, generated corpus of hostile and unusual inputs (issue 14), made with Pillow, OpenCV, torch and
pyexiv2 directly (never with mlrn_core's writers), so the reader and the model loader are checked against
files other software makes. Every generator is a few kilobytes at most; none is stored in the repository.

    from tests.hostile_corpus import png_bomb, hparam_bomb_model, photo_with_xmp_iptc
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.fixtures_images import exif_bytes, srgb_icc_bytes

#: The XMP and IPTC fields a photographer sets in Lightroom / Photo Mechanic.
KEYWORDS = ["beach", "sunset", "Zoë"]
RATING = "4"
COPYRIGHT = "© 2026 Ada Photographer"
IPTC_KEYWORDS = ["beach", "sunset"]
IPTC_BYLINE = ["Ada Photographer"]
IPTC_CAPTION = "Evening at the dunes, été"


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def png_bomb(path: Path, width: int = 25_000, height: int = 25_000) -> Path:
    """A PNG of a few hundred bytes that declares ``width`` x ``height`` RGB pixels."""
    idat = zlib.compress(b"\0" * 4096, 9)  # the first rows only: the header alone must get it refused
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def model_payload(scale: int = 2, features: int = 8, blocks: int = 1, seed: int = 0) -> dict:
    from mlrn_core import registry
    from tests.helpers import tiny_model

    net = tiny_model(scale, seed=seed, features=features, blocks=blocks)
    return registry.make_model_payload(net.hparams, registry.model_state(net), {"note": "test"})


def hparam_bomb_model(path: Path, features: int = 20_000) -> Path:
    """A valid small model file whose stored hyper-parameters claim ``features`` channels."""
    import torch

    payload = model_payload()
    payload["hparams"]["features"] = features
    torch.save(payload, path)
    return path


def nan_model(path: Path) -> Path:
    """A well-formed model file whose weights are all NaN (a diverged training)."""
    import torch

    payload = model_payload()
    payload["state_dict"] = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() and k != "rgb_mean" else v
        for k, v in payload["state_dict"].items()
    }
    torch.save(payload, path)
    return path


def pickle_with_code(path: Path) -> Path:
    """A model-looking file whose pickle would call ``print`` when unpickled without weights_only."""
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "mlrn-studio-model", "x": Evil()}, path)
    return path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def photo(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    img = np.stack([base, np.roll(base, 2, axis=1), 1 - base], axis=2) + rng.normal(0, 0.03, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def photo_with_xmp_iptc(path: Path, h: int = 24, w: int = 32) -> Path:
    """A JPEG as Lightroom exports it: EXIF, ICC, XMP (keywords, rating, copyright) and IPTC-IIM."""
    import pyexiv2

    buf = io.BytesIO()
    Image.fromarray(photo(h, w)).save(buf, "JPEG", quality=95, exif=exif_bytes(), icc_profile=srgb_icc_bytes())
    meta = pyexiv2.ImageData(buf.getvalue())
    try:
        meta.modify_xmp(
            {
                "Xmp.dc.subject": KEYWORDS,
                "Xmp.xmp.Rating": RATING,
                "Xmp.dc.rights": {'lang="x-default"': COPYRIGHT},
                "Xmp.lr.hierarchicalSubject": ["places|beach"],
            }
        )
        meta.modify_iptc(
            {
                "Iptc.Application2.Keywords": IPTC_KEYWORDS,
                "Iptc.Application2.Byline": IPTC_BYLINE,
                "Iptc.Application2.Caption": IPTC_CAPTION,
                "Iptc.Application2.Copyright": "(c) 2026 Ada",
            }
        )
        path.write_bytes(meta.get_bytes())
    finally:
        meta.close()
    return path


def read_xmp_iptc(path: Path) -> tuple[dict, dict]:
    """(XMP, IPTC) of a file as pyexiv2 reads it."""
    import pyexiv2

    meta = pyexiv2.ImageData(path.read_bytes())
    try:
        return meta.read_xmp(), meta.read_iptc()
    finally:
        meta.close()


def float_tiff(path: Path, h: int = 20, w: int = 30, channels: int = 3) -> np.ndarray:
    """A 32-bit floating-point TIFF (as HDR tools write it); returns its RGB values in [0, 1]."""
    rng = np.random.default_rng(5)
    rgb = rng.random((h, w, channels)).astype(np.float32)
    bgr = rgb[:, :, ::-1] if channels == 3 else rgb
    ok, buf = cv2.imencode(".tiff", np.ascontiguousarray(bgr))
    assert ok
    path.write_bytes(buf.tobytes())
    return rgb


def animated_webp(path: Path, frames: int = 3) -> Path:
    images = [Image.fromarray(photo(seed=k)) for k in range(frames)]
    images[0].save(path, "WEBP", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def thin_png(path: Path, h: int, w: int, colour: tuple[int, int, int] = (204, 77, 26)) -> Path:
    Image.fromarray(np.full((h, w, 3), colour, np.uint8)).save(path)
    return path


def fake_raw(path: Path) -> Path:
    """A file named like a camera RAW (a TIFF inside, as DNG/CR2/NEF are)."""
    buf = io.BytesIO()
    Image.fromarray(photo()).save(buf, "TIFF")
    path.write_bytes(buf.getvalue())
    return path
