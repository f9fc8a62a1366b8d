"""HEIC/HEIF and AVIF pictures with more than 8 bits per channel (phones' HDR and "10-bit" photos).

Pillow's openers hand these over as 8-bit pictures. A 10- or 12-bit HEIC is read here with pillow-heif at
its full depth and kept as a 16-bit picture (a 16-bit PNG or TIFF output keeps it; a JPEG or HEIC output is
8 bit, as for any 16-bit source). An AVIF deeper than 8 bits is still decoded to 8 bits by Pillow's AVIF
plug-in (pillow-heif has no AVIF decoder here): :func:`deep_avif_bits` lets the reader say so.
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import numpy as np

from mlrn_core.imageio import base, exiv

try:
    import pillow_heif
except ImportError:  # pragma: no cover - a dependency
    pillow_heif = None

log = logging.getLogger("mlrn_core.imageio")

_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


def _brand(data: bytes) -> bytes:
    return data[8:12] if data[4:8] == b"ftyp" else b""


def pixel_bits(data: bytes) -> int | None:
    """Bits per channel from the first 'pixi' box of an ISOBMFF picture (HEIC, AVIF), or None."""
    at = data.find(b"pixi", 0, 1 << 16)
    if at < 4:
        return None
    try:
        (size,) = struct.unpack(">I", data[at - 4 : at])
        channels = data[at + 8]
        bits = data[at + 9 : at + 9 + channels]
        return max(bits) if size >= 13 and len(bits) == channels and channels else None
    except (struct.error, IndexError, ValueError):
        return None


def deep_avif_bits(data: bytes) -> int | None:
    """An AVIF's bits per channel when more than 8 (Pillow decodes it to 8), else None."""
    if _brand(data) not in _AVIF_BRANDS:
        return None
    bits = pixel_bits(data)
    return bits if bits is not None and bits > 8 else None


def decode_deep(p: Path, data: bytes) -> base.Picture | None:
    """A HEIC/HEIF deeper than 8 bits per channel as a 16-bit picture (ICC, EXIF, XMP/IPTC kept), or None
    for an 8-bit one (Pillow's opener reads it) and anything pillow-heif cannot open."""
    if pillow_heif is None or _brand(data) not in _HEIC_BRANDS:
        return None
    bits = pixel_bits(data)
    if bits is not None and bits <= 8:
        return None
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        image = heif[heif.primary_index] if hasattr(heif, "primary_index") else heif[0]
        depth = int(image.info.get("bit_depth", 8))
        if depth <= 8:
            return None
        width, height = image.size
        base.check_pixel_limit(p, width, height)
        pixels = np.asarray(image)
        info = dict(image.info)
    except base.ImageIOError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's opener gets its chance and says what is wrong
        log.debug("%s: pillow-heif could not read it at full depth (%s)", p.name, exc)
        return None
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        return None
    floats = pixels.astype(np.float32) / np.float32(65535)  # pillow-heif scales the samples to 16 bits
    alpha = np.ascontiguousarray(floats[:, :, 3]) if floats.shape[2] == 4 else None
    rgb = np.ascontiguousarray(floats[:, :, :3])
    xmp, iptc = exiv._read_xmp_iptc(p, data)
    exif = info.get("exif") or None  # the pixels are already upright: libheif applies the file's rotation
    log.info("%s: a %d-bit HEIC, kept as 16 bit", p.name, depth)
    return base.Picture(
        rgb, alpha, 16, False, info.get("icc_profile") or None, exif, None, "heic", f"RGB;{depth}", p, xmp, iptc
    )
