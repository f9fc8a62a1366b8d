"""The TIFFs Pillow cannot decode, read with tifffile (maintained; used by napari and scikit-image).

Pillow reads the common TIFFs (8/16-bit gray, RGB, RGBA, palette, CMYK) and stays the reader for them, with
its metadata. What it refuses or gets wrong goes through :func:`decode`: floating-point samples (16, 32 or
64 bit: HDR merges, scientific exports; clipped to [0, 1] and kept as 16 bit), 32-bit integer samples
(scaled to 16 bit), 16-bit gray+alpha, CMYK with alpha (converted to RGB, alpha kept), BigTIFF, and files
whose first page is a reduced-resolution thumbnail of the photo that follows (the full-size page is read).
The ICC profile, resolution and EXIF-bearing tags of the page read are kept; XMP/IPTC come from exiv2.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from mlrn_core.imageio import base, exiv

try:
    import tifffile
except ImportError:  # pragma: no cover - a dependency; without it Pillow reads what it can
    tifffile = None

log = logging.getLogger("mlrn_core.imageio")

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_PHOTOMETRIC_SEPARATED = 5  # CMYK
_PHOTOMETRIC_PALETTE = 3
_REDUCED = 1  # NewSubfileType bit 0: a reduced-resolution version of another page


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_MAGIC


def decode(p: Path, data: bytes) -> base.Picture | None:
    """The picture, when the TIFF in ``data`` is one Pillow cannot decode (the module docstring's list);
    None for a TIFF Pillow reads as it is (and for anything tifffile cannot parse: Pillow then says why)."""
    if tifffile is None or not is_tiff(data):
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = list(tif.pages)
            if not pages:
                return None
            index = _main_page(pages)
            page = pages[index]
            reason = _why_not_pillow(tif, page, index)
            if reason is None:
                return None
            shape = page.shape
            height, width = int(page.imagelength), int(page.imagewidth)
            base.check_pixel_limit(p, width, height)
            if len(shape) > 3 or page.imagedepth > 1:
                raise base.ImageIOError(p, f"a {len(shape)}-dimensional TIFF (a volume or a stack) is not a photo")
            arr = page.asarray()
            icc = _tag(page, 34675)
            dpi = _dpi(page)
            photometric = int(page.photometric)
            extra = len(page.extrasamples or ())
    except base.ImageIOError:
        raise
    except MemoryError:
        raise base.ImageIOError(p, "not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 - Pillow gets its chance and says what is wrong
        log.debug("%s: tifffile could not read it (%s)", p.name, exc)
        return None
    if reason == "thumbnail first":
        log.warning("%s: its first page is a small preview; the full-size page %d is upscaled", p.name, index + 1)
    floats, bit_depth = _to_unit_floats(p, arr)
    if floats.ndim == 3 and floats.shape[2] == 1:
        floats = floats[:, :, 0]
    mode = reason
    if photometric == _PHOTOMETRIC_SEPARATED and floats.ndim == 3 and floats.shape[2] >= 4:
        floats = _cmyk_to_rgb(floats, extra)
        log.warning("%s: CMYK converted to RGB with a plain formula (no colour management)", p.name)
        icc = None  # the CMYK profile does not describe RGB pixels
    elif floats.ndim == 3 and floats.shape[2] > 4:
        floats = floats[:, :, :4] if extra else floats[:, :, :3]
    gray = floats.ndim == 2 or floats.shape[2] == 2
    rgb, alpha = _split(floats, gray)
    xmp, iptc = exiv._read_xmp_iptc(p, data)
    return base.Picture(rgb, alpha, bit_depth, gray, icc, None, dpi, "tiff", mode, p, xmp, iptc)


def _main_page(pages: list) -> int:
    """The page to upscale: the first, unless it is a reduced-resolution preview of a larger page."""
    first = pages[0]
    if not (int(getattr(first, "subfiletype", 0) or 0) & _REDUCED):
        return 0
    full = [
        (int(pg.imagelength) * int(pg.imagewidth), k)
        for k, pg in enumerate(pages)
        if not (int(getattr(pg, "subfiletype", 0) or 0) & _REDUCED)
    ]
    return max(full)[1] if full else 0


def _why_not_pillow(tif, page, index: int) -> str | None:
    """What makes this TIFF one for tifffile (a short mode name), or None when Pillow reads it."""
    if index != 0:
        return "thumbnail first"
    if tif.is_bigtiff:
        return "BigTIFF"
    dtype = np.dtype(page.dtype)
    if dtype.kind == "f":
        return f"float{dtype.itemsize * 8}"
    if dtype.itemsize >= 4:
        return f"{dtype.kind}int{dtype.itemsize * 8}"
    samples = int(page.samplesperpixel)
    if dtype.itemsize == 2 and samples == 2:
        return "LA;16"
    if int(page.photometric) == _PHOTOMETRIC_SEPARATED and samples > 4:
        return "CMYKA"
    return None


def _to_unit_floats(p: Path, arr: np.ndarray) -> tuple[np.ndarray, int]:
    """Samples as float32 in [0, 1] and the bit depth to keep (8 for 8-bit samples, else 16)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f":
        floats = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if float(floats.max(initial=0.0)) > 1.0:
            log.warning("%s: floating-point values above 1.0 are clipped (tone-map HDR images first)", p.name)
        return np.clip(floats, 0.0, 1.0, out=floats), 16
    if kind == "u":
        return (arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)).astype(np.float32), 8 if size == 1 else 16
    if kind == "i":
        log.warning("%s: signed samples: negative values are clipped to black", p.name)
        top = float(np.iinfo(arr.dtype).max)
        return (np.clip(arr.astype(np.float64), 0, top) / top).astype(np.float32), 8 if size == 1 else 16
    if kind == "b":
        return arr.astype(np.float32), 8
    raise ValueError(f"samples of type {arr.dtype}")


def _cmyk_to_rgb(f: np.ndarray, extra: int) -> np.ndarray:
    """CMYK(+extra) floats -> RGB(+alpha): R = (1 - C)(1 - K), and so on."""
    c, m, y, k = (f[:, :, i] for i in range(4))
    rgb = np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], axis=2)
    if extra and f.shape[2] > 4:
        rgb = np.concatenate([rgb, f[:, :, 4:5]], axis=2)
    return rgb.astype(np.float32)


def _split(f: np.ndarray, gray: bool) -> tuple[np.ndarray, np.ndarray | None]:
    if f.ndim == 2:
        f = f[:, :, None]
    alpha = None
    if f.shape[2] in (2, 4):
        alpha = np.ascontiguousarray(f[:, :, -1])
        f = f[:, :, :-1]
    rgb = np.repeat(f[:, :, :1], 3, axis=2) if gray or f.shape[2] == 1 else f
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def _tag(page, code: int):
    tag = page.tags.get(code)
    if tag is None:
        return None
    value = tag.value
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None


def _dpi(page) -> tuple[float, float] | None:
    try:
        unit = page.tags.get(296)
        xres, yres = page.tags.get(282), page.tags.get(283)
        if xres is None or yres is None:
            return None
        to_float = lambda v: v[0] / v[1] if isinstance(v, tuple) else float(v)  # noqa: E731
        x, y = to_float(xres.value), to_float(yres.value)
        if unit is not None and int(unit.value) == 3:  # per centimetre
            x, y = x * 2.54, y * 2.54
        return (x, y) if x > 0 and y > 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
