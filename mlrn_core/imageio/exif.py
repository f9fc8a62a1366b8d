"""EXIF and DPI as Pillow reads them from each format, and the EXIF an output gets: orientation reset to 1,
pixel dimensions set to the written size, within the format's size limit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from mlrn_core.imageio.png import _png_chunks

log = logging.getLogger("mlrn_core.imageio")


_TAG_ORIENTATION = 0x0112


_TAG_EXIF_IFD = 0x8769


_TAG_GPS_IFD = 0x8825


_TAG_INTEROP_IFD = 0xA005


_TAG_PIXEL_X = 0xA002


_TAG_PIXEL_Y = 0xA003


_TAG_MAKERNOTE = 0x927C


_JPEG_MAX_EXIF = 65533


# TIFF tags that describe the pixel layout / file structure (or are carried separately: ICC, XMP, IPTC,
# Photoshop). They are never copied from one file's EXIF/IFD0 into another file.
_TIFF_STRUCTURAL_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284,
        288, 289, 290, 291, 292, 293, 296, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332,
        338, 339, 340, 341, 342, 347, 512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532, 700,
        33723, 34377, 34675, 37724, _TAG_EXIF_IFD, _TAG_GPS_IFD, _TAG_INTEROP_IFD,
    }
)  # fmt: skip


def _read_dpi(img: Image.Image) -> tuple[float, float] | None:
    if img.format == "TIFF":
        tags = img.tag_v2
        # Pillow reports (1, 1) when the resolution tags are missing; unit 1 means "no absolute unit".
        if 282 not in tags or 283 not in tags or tags.get(296) == 1:
            return None
    return _clean_dpi(img.info.get("dpi"))


def _clean_dpi(value: object) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0) or not np.isfinite(x) or not np.isfinite(y):
        return None
    # PNG/BMP store pixels per metre, so 300 dpi reads back as 299.9994 (and 72 as 72.009): round to 0.1.
    return (round(x, 1), round(y, 1))


def _read_exif_bytes(img: Image.Image, fmt: str, data: bytes) -> bytes | None:
    try:
        raw = img.info.get("exif")
        if raw:
            return bytes(raw)
        if fmt == "png":
            # eXIf may follow IDAT; find it without decoding the pixels.
            for ctype, payload in _png_chunks(data):
                if ctype == b"eXIf" and payload:
                    return b"Exif\x00\x00" + payload
            if any(k.startswith("Raw profile type exif") for k in img.info):
                exif = img.getexif()
                return exif.tobytes() if len(exif) else None
            return None
        if fmt == "tiff":
            return _exif_from_tiff(img)
        return None
    except Exception as exc:  # noqa: BLE001 - bad EXIF must not make the photo unreadable
        log.warning("ignoring unreadable EXIF data in %s: %s", getattr(img, "filename", "image"), exc)
        return None


def _exif_from_tiff(img: Image.Image) -> bytes | None:
    """EXIF for a TIFF source: descriptive IFD0 tags plus Exif/GPS sub-IFDs, without structural tags."""
    src = img.getexif()
    out = Image.Exif()
    for tag, value in src.items():
        if tag not in _TIFF_STRUCTURAL_TAGS:
            out[tag] = value
    exif_ifd = dict(src.get_ifd(_TAG_EXIF_IFD))
    if exif_ifd:
        if _TAG_INTEROP_IFD in exif_ifd:
            interop = src.get_ifd(_TAG_INTEROP_IFD)
            if interop:
                exif_ifd[_TAG_INTEROP_IFD] = dict(interop)
            else:
                del exif_ifd[_TAG_INTEROP_IFD]
        out[_TAG_EXIF_IFD] = exif_ifd
    gps = dict(src.get_ifd(_TAG_GPS_IFD))
    if gps:
        out[_TAG_GPS_IFD] = gps
    if not len(out):
        return None
    return out.tobytes()


def _orientation_of(exif_bytes: bytes | None) -> int:
    if not exif_bytes:
        return 1
    try:
        exif = Image.Exif()
        exif.load(exif_bytes)
        value = int(exif.get(_TAG_ORIENTATION, 1))
    except Exception:  # noqa: BLE001
        return 1
    return value if 1 <= value <= 8 else 1


def _prepare_exif(exif_bytes: bytes | None, width: int, height: int, target: Path) -> Image.Exif | None:
    """Parse the source EXIF, reset Orientation, update the pixel dimensions. None if absent/unusable."""
    if not exif_bytes:
        return None
    try:
        exif = Image.Exif()
        exif.load(exif_bytes)
        if not len(exif):
            return None
        if _TAG_ORIENTATION in exif:
            exif[_TAG_ORIENTATION] = 1
        if 256 in exif:
            exif[256] = width
        if 257 in exif:
            exif[257] = height
        if _TAG_EXIF_IFD in exif:
            sub = exif.get_ifd(_TAG_EXIF_IFD)
            if _TAG_PIXEL_X in sub:
                sub[_TAG_PIXEL_X] = width
            if _TAG_PIXEL_Y in sub:
                sub[_TAG_PIXEL_Y] = height
            if _TAG_INTEROP_IFD in sub and not isinstance(sub[_TAG_INTEROP_IFD], dict):
                interop = exif.get_ifd(_TAG_INTEROP_IFD)
                if interop:
                    sub[_TAG_INTEROP_IFD] = dict(interop)
                else:
                    del sub[_TAG_INTEROP_IFD]
        exif.tobytes()  # fail here rather than in the middle of an encoder
        return exif
    except Exception as exc:  # noqa: BLE001
        log.warning("%s: the source EXIF data is damaged and is not written (%s)", target.name, exc)
        return None


def _exif_payload(exif: Image.Exif | None, fmt: str, target: Path) -> bytes | None:
    """EXIF bytes with the 'Exif\\0\\0' header, within the format's size limit."""
    if exif is None:
        return None
    data = exif.tobytes()
    if fmt == "jpg" and len(data) > _JPEG_MAX_EXIF:
        sub = exif.get_ifd(_TAG_EXIF_IFD)
        if _TAG_MAKERNOTE in sub:
            del sub[_TAG_MAKERNOTE]
            data = exif.tobytes()
            log.warning("%s: EXIF too large for JPEG; the camera MakerNote is dropped", target.name)
        if len(data) > _JPEG_MAX_EXIF:
            log.warning("%s: EXIF too large for JPEG (%d bytes); EXIF is not written", target.name, len(data))
            return None
    return data
