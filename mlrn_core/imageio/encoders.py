"""One encoder per output format (Pillow, OpenCV for 16-bit PNG, tifffile for TIFF, pillow-heif), each
writing a prepared :class:`_Job` to an open file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image

from mlrn_core.imageio.base import (
    ImageIOError,
    Picture,
)
from mlrn_core.imageio.exif import _exif_payload
from mlrn_core.imageio.exiv import _merged_xmp
from mlrn_core.imageio.formats import _DEFLATE_LEVEL, HEIF_AVAILABLE
from mlrn_core.imageio.png import _png16_bytes

log = logging.getLogger("mlrn_core.imageio")


_TIFF_STRIP_BYTES = 1 << 20  # uncompressed bytes per TIFF strip
_BIGTIFF_FROM = 3 << 30  # uncompressed bytes from which a TIFF is written as BigTIFF


@dataclass(frozen=True)
class _Job:
    """Everything an encoder needs: prepared integer pixels and the metadata to embed."""

    pixels: np.ndarray  # HxWxC uint8/uint16, C = 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)
    gray: bool
    has_alpha: bool
    picture: Picture  # for icc_profile / dpi (icc already matched to the output colour space)
    exif: Image.Exif | None  # orientation reset, pixel dimensions updated
    quality: int
    target: Path
    lossless: bool = False  # WebP: lossless (a lossless source kept so)


def _pillow_image(pixels: np.ndarray) -> Image.Image:
    if pixels.shape[2] == 1:
        return Image.fromarray(pixels[:, :, 0])
    return Image.fromarray(pixels)


def _dpi_kw(picture: Picture) -> dict[str, tuple[float, float]]:
    return {"dpi": picture.dpi} if picture.dpi else {}


def _encode_png(fp: BinaryIO, job: _Job) -> None:
    exif_data = _exif_payload(job.exif, "png", job.target)
    if job.pixels.dtype == np.uint16:
        fp.write(_png16_bytes(job.pixels, job.picture.icc_profile, job.picture.dpi, exif_data))
        return
    kw: dict[str, object] = {"compress_level": 6, **_dpi_kw(job.picture)}
    if job.picture.icc_profile:
        kw["icc_profile"] = job.picture.icc_profile
    if exif_data:
        kw["exif"] = exif_data
    _pillow_image(job.pixels).save(fp, format="PNG", **kw)


_JFIF_MAX_DENSITY = 65535  # a JPEG's JFIF header holds the DPI in 16 bits


def _jpeg_dpi_kw(job: _Job) -> dict[str, tuple[float, float]]:
    """The DPI for the JFIF header, held within its 16 bits (a larger value would wrap around silently)."""
    kw = _dpi_kw(job.picture)
    if kw and max(kw["dpi"]) > _JFIF_MAX_DENSITY:
        log.warning(
            "%s: %g DPI is more than a JPEG header holds; written as %d DPI",
            job.target.name,
            max(kw["dpi"]),
            _JFIF_MAX_DENSITY,
        )
        kw = {"dpi": tuple(min(float(v), _JFIF_MAX_DENSITY) for v in kw["dpi"])}
    return kw


def _encode_jpeg(fp: BinaryIO, job: _Job) -> None:
    kw: dict[str, object] = {"quality": job.quality, **_jpeg_dpi_kw(job)}
    if job.quality >= 90:
        kw["subsampling"] = 0  # 4:4:4
    if job.picture.icc_profile:
        kw["icc_profile"] = job.picture.icc_profile
    exif_data = _exif_payload(job.exif, "jpg", job.target)
    if exif_data:
        kw["exif"] = exif_data
    _pillow_image(job.pixels).save(fp, format="JPEG", **kw)


def _encode_webp(fp: BinaryIO, job: _Job) -> None:
    kw: dict[str, object] = {"quality": job.quality, "method": 4}
    if job.lossless:
        kw.update(lossless=True, quality=100)
    if job.picture.icc_profile:
        kw["icc_profile"] = job.picture.icc_profile
    exif_data = _exif_payload(job.exif, "webp", job.target)
    if exif_data:
        kw["exif"] = exif_data
    if job.has_alpha:
        kw["exact"] = True  # keep colour under fully transparent pixels
    _pillow_image(job.pixels).save(fp, format="WEBP", **kw)


def _encode_heif_avif(fp: BinaryIO, job: _Job, pil_format: str) -> None:
    kw: dict[str, object] = {"quality": job.quality}
    if job.picture.icc_profile:
        kw["icc_profile"] = job.picture.icc_profile
    exif_data = _exif_payload(job.exif, "webp", job.target)
    if exif_data:
        kw["exif"] = exif_data
    xmp = _merged_xmp(job.picture)
    if xmp:
        kw["xmp"] = xmp
    image = _pillow_image(job.pixels)
    if image.mode == "LA":
        image = image.convert("RGBA")
    image.save(fp, format=pil_format, **kw)


def _encode_heic(fp: BinaryIO, job: _Job) -> None:
    if not HEIF_AVAILABLE:
        raise ImageIOError(job.target, "HEIC support is not installed: pip install pillow-heif", "write")
    _encode_heif_avif(fp, job, "HEIF")


def _encode_avif(fp: BinaryIO, job: _Job) -> None:
    _encode_heif_avif(fp, job, "AVIF")


def _encode_bmp(fp: BinaryIO, job: _Job) -> None:
    if job.picture.icc_profile or job.exif is not None:
        log.info("%s: BMP cannot hold ICC/EXIF metadata; they are not written", job.target.name)
    _pillow_image(job.pixels).save(fp, format="BMP", **_dpi_kw(job.picture))


def _encode_tiff(fp: BinaryIO, job: _Job) -> None:
    """8/16-bit TIFF written by tifffile: Deflate strips with the horizontal predictor, unassociated alpha as
    an extra sample, ICC and DPI; EXIF follows in the finished file (:func:`exiv._write_exif_into_tiff`)."""
    h, w, channels = job.pixels.shape
    bits = 16 if job.pixels.dtype == np.uint16 else 8
    row_bytes = w * channels * bits // 8
    dpi = job.picture.dpi
    tifffile.imwrite(
        fp,
        job.pixels[:, :, 0] if channels == 1 else job.pixels,
        photometric="minisblack" if job.gray else "rgb",
        planarconfig="contig",
        extrasamples=("unassalpha",) if job.has_alpha else None,
        compression="adobe_deflate",
        compressionargs={"level": _DEFLATE_LEVEL[bits]},
        predictor=True,
        rowsperstrip=max(1, min(h, _TIFF_STRIP_BYTES // max(row_bytes, 1))),
        resolution=dpi if dpi else None,
        resolutionunit="INCH" if dpi else None,
        iccprofile=job.picture.icc_profile,
        bigtiff=h * row_bytes > _BIGTIFF_FROM,  # classic TIFF ends at 4 GB; Deflate may not shrink noise much
        metadata=None,  # no tifffile JSON in ImageDescription
    )


_ENCODERS: dict[str, Callable[[BinaryIO, _Job], None]] = {
    "png": _encode_png,
    "jpg": _encode_jpeg,
    "webp": _encode_webp,
    "bmp": _encode_bmp,
    "tiff": _encode_tiff,
    "heic": _encode_heic,
    "avif": _encode_avif,
}
