"""The formats: which extensions are read and written, what "the same format" is for each input, and the
format names Pillow reports. HEIC/HEIF support (pillow-heif) is registered here."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PIL import Image, ImageFile

from mlrn_core.imageio.base import (
    MAX_IMAGE_PIXELS,
    ImageIOError,
)

try:  # HEIC/HEIF (phones): an optional plug-in; without it such files get a message saying what to install
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - it is a dependency; kept optional for minimal installs
    HEIF_AVAILABLE = False


log = logging.getLogger("mlrn_core.imageio")


SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif", ".avif"}
)


FORMAT_EXTENSIONS: dict[str, str] = {
    "png": ".png",
    "jpg": ".jpg",
    "tiff": ".tif",
    "webp": ".webp",
    "bmp": ".bmp",
    "heic": ".heic",
    "avif": ".avif",
}


#: Camera RAW files: read (developed with LibRaw, :mod:`mlrn_core.imageio.raw`), never written; an output of
#: "the same format" as a RAW file is a 16-bit TIFF (:data:`SAME_FORMAT_AS`).
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3fr", ".ari", ".arw", ".bay", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".iiq",
        ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2",
        ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip


RAW_ADVICE = (
    "camera RAW files need rawpy (LibRaw), which is not installed: 'pip install rawpy', or export the photo "
    "from your RAW developer (Lightroom, Capture One, darktable...) as a 16-bit TIFF and upscale that"
)


#: Source formats that are read but not written, and what "the same format" means for them.
SAME_FORMAT_AS: dict[str, str] = {"raw": "tiff"}


Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


ImageFile.LOAD_TRUNCATED_IMAGES = False


DEFAULT_QUALITY = 95


_FORMAT_ALIASES: dict[str, str] = {
    "png": "png",
    "jpg": "jpg",
    "jpeg": "jpg",
    "jpe": "jpg",
    "tif": "tiff",
    "tiff": "tiff",
    "webp": "webp",
    "bmp": "bmp",
    "heic": "heic",
    "heif": "heic",
    "avif": "avif",
}


_PIL_FORMATS: dict[str, str] = {
    "PNG": "png",
    "JPEG": "jpg",
    "MPO": "jpg",
    "TIFF": "tiff",
    "WEBP": "webp",
    "BMP": "bmp",
    "HEIF": "heic",
    "AVIF": "avif",
}


# JPEG's opener also returns MPO files
_PIL_OPEN_FORMATS = ["PNG", "JPEG", "TIFF", "WEBP", "BMP", "AVIF"] + (["HEIF"] if HEIF_AVAILABLE else [])


_SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})


_ALPHA_FORMATS = frozenset({"png", "tiff", "webp", "heic", "avif"})


_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


# zlib level for our own encoders: 16-bit photo data barely compresses better at 6 than at 3 (~0.1 %) but
# takes ~4x longer (24 MP: 13 s vs 3 s on a laptop core), so 16 bit uses 3; 8 bit uses the usual 6.
_DEFLATE_LEVEL = {8: 6, 16: 3}


def is_supported(path: str | os.PathLike[str]) -> bool:
    """True when the file extension is one we read and write (case-insensitive)."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def is_camera_raw(path: str | os.PathLike[str]) -> bool:
    """True for camera RAW extensions (.CR2, .NEF, .ARW, .DNG...)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def raw_available() -> bool:
    """True when camera RAW files can be developed here (rawpy is installed); else they get :data:`RAW_ADVICE`."""
    from mlrn_core.imageio import raw

    return raw.available()


def is_readable(path: str | os.PathLike[str]) -> bool:
    """True when the file extension is one we read: :func:`is_supported`, or camera RAW where rawpy is."""
    return is_supported(path) or (is_camera_raw(path) and raw_available())


def readable_extensions() -> frozenset[str]:
    """The extensions :func:`is_readable` accepts (file dialogs, folder scans)."""
    return SUPPORTED_EXTENSIONS | RAW_EXTENSIONS if raw_available() else SUPPORTED_EXTENSIONS


def same_format(source_format: str) -> str:
    """The output format "the same as the input" means for a picture read as ``source_format``."""
    return SAME_FORMAT_AS.get(source_format, source_format)


def same_extension(source: str | os.PathLike[str]) -> str:
    """The output extension "the same format" gives the file ``source`` ('.tif' for camera RAW)."""
    suffix = Path(source).suffix
    return FORMAT_EXTENSIONS["tiff"] if suffix.lower() in RAW_EXTENSIONS else suffix


def output_format_for(path_or_fmt: str | os.PathLike[str]) -> str:
    """Normalise a format name, an extension or a file path to 'png'|'jpg'|'tiff'|'webp'|'bmp'.

    Accepts e.g. ``'JPEG'``, ``'tif'``, ``'.png'``, ``'out/photo.WEBP'`` or a Path. Unknown -> ImageIOError.
    """
    text = os.fspath(path_or_fmt)
    if isinstance(path_or_fmt, os.PathLike) or "/" in text or os.sep in text:
        key = Path(text).suffix or Path(text).name
    else:
        suffix = Path(text).suffix
        key = suffix if suffix else text
    key = key.strip().lstrip(".").lower()
    fmt = _FORMAT_ALIASES.get(key)
    if fmt is None:
        known = ", ".join(sorted(FORMAT_EXTENSIONS))
        what = f"'{key}'" if key else "(no extension)"
        raise ImageIOError(text, f"unsupported image format {what}; use one of {known}", "write")
    return fmt
