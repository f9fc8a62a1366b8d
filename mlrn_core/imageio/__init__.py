"""Image input/output for mlrn_core: the only package that talks to Pillow, OpenCV and LibRaw for files and
the only place that knows OpenCV's BGR channel order. Its modules: ``base`` (the :class:`Picture` type, the
one error type, the pixel limit, safe file reading, OS error wording), ``exiv`` (XMP/IPTC through pyexiv2),
``raw`` (camera RAW developed with LibRaw), and this one (the formats Pillow and OpenCV decode, metadata,
the encoders and the atomic writer); every public name is importable from ``mlrn_core.imageio``.

``read_image`` turns PNG, JPEG, TIFF, WebP and BMP files (8 or 16 bit; gray, gray+alpha, RGB, RGBA, palette,
1-bit and CMYK) into a :class:`Picture`: float32 RGB in [0, 1] (EXIF orientation already applied to the
pixels), optional float32 alpha, and the metadata a photographer expects to keep (bit depth, grayscale-ness,
ICC profile, EXIF, DPI). 16-bit RGB(A) pixels are decoded with OpenCV because Pillow truncates them to 8 bit;
metadata always comes from Pillow. ``write_image`` writes atomically (temporary ``.NAME.RANDOM.part`` file in
the target folder, fsync, then ``os.replace``; nothing partial is ever left behind) and refuses to overwrite
the picture's own source file. What is kept per output format: PNG 8/16 bit keeps alpha, grayscale, ICC
(iCCP), DPI (pHYs) and EXIF (eXIf; for 16 bit RGB(A) the pixels are encoded by OpenCV and these chunks are
inserted by this module); TIFF 8/16 bit is written by this module's own baseline TIFF writer (Deflate +
horizontal predictor) and keeps alpha (unassociated ExtraSamples), grayscale (except 16-bit gray+alpha, which
is written as 16-bit RGBA because Pillow cannot read 16-bit gray+alpha TIFFs back), ICC (tag 34675), DPI
(XResolution/YResolution/ResolutionUnit) and EXIF (descriptive IFD0 tags such as Artist/Make/Model/ DateTime,
plus the Exif sub-IFD 34665 with its Interop IFD, and the GPS IFD 34853); JPEG (8 bit, quality 95 and 4:4:4
chroma by default) keeps ICC, DPI and EXIF but drops alpha; WebP (8 bit) keeps alpha, ICC and EXIF but has no
DPI field and no grayscale mode; BMP (8 bit) keeps DPI only (no alpha, ICC or EXIF). On write, EXIF
Orientation is reset to 1 (pixels are already upright), PixelXDimension/PixelYDimension (and IFD0
ImageWidth/ImageLength when present) are set to the written size, and the embedded EXIF thumbnail (IFD1) is
dropped because it would be stale. XMP (Lightroom keywords, ratings, copyright...) and IPTC are read and
written with pyexiv2 (libexiv2) into JPEG, PNG, TIFF, WebP, HEIC and AVIF outputs; WebP, HEIC and AVIF have no
IPTC block, so there IPTC fields that the XMP lacks are added to the XMP (as exiv2 maps them). HEIC/HEIF
(through pillow-heif) and AVIF (Pillow) open and save in 8 bit.

Hostile inputs: the pixel count is checked from the header before anything is decoded (images over
:data:`MAX_IMAGE_PIXELS` are refused, never just warned about); camera RAW files without rawpy get what to
do; animated files say that only the first frame is used. Outputs are created only if absent unless
``overwrite=True`` (the finished temporary file is hard-linked to the final name, which fails when a file
appeared there meanwhile), so two runs writing one name never lose either result. While it is written, a
temporary file is locked; :func:`remove_stale_parts` deletes those left by a killed run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageFile, TiffImagePlugin, UnidentifiedImageError

from mlrn_core.atomic import atomic_open, remove_stale_parts  # noqa: F401 - remove_stale_parts is public here
from mlrn_core.imageio import heif, tiff
from mlrn_core.imageio.base import (  # noqa: F401 - the package's public names (and the readers' helpers)
    _EXISTS_REASON,
    MAX_IMAGE_PIXELS,
    ImageIOError,
    OutputExistsError,
    Picture,
    _apply_orientation,
    _os_reason,
    _pixel_dtype,
    _read_file_bytes,
    _too_large_reason,
    check_pixel_limit,
    not_a_regular_file,
)
from mlrn_core.imageio.exiv import _exiv2_lock, _exiv2_path_ok, _read_xmp_iptc, pyexiv2  # noqa: F401

try:  # HEIC/HEIF (phones): an optional plug-in; without it such files get a message saying what to install
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - it is a dependency; kept optional for minimal installs
    HEIF_AVAILABLE = False

log = logging.getLogger(__name__)

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
_NO_IPTC_FORMATS = frozenset({"webp", "heic", "avif"})  # IPTC goes into the XMP there
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})

_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_GPS_IFD = 0x8825
_TAG_INTEROP_IFD = 0xA005
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_TAG_MAKERNOTE = 0x927C
_TAG_ICC = 34675
_JPEG_MAX_EXIF = 65533
_TIFF_STRIP_BYTES = 1 << 20  # uncompressed bytes per TIFF strip
# zlib level for our own encoders: 16-bit photo data barely compresses better at 6 than at 3 (~0.1 %) but
# takes ~4x longer (24 MP: 13 s vs 3 s on a laptop core), so 16 bit uses 3; 8 bit uses the usual 6.
_DEFLATE_LEVEL = {8: 6, 16: 3}

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


# --------------------------------------------------------------------------------------------------------
# Small public helpers
# --------------------------------------------------------------------------------------------------------


def jpeg_roundtrip(rgb: np.ndarray, quality: int, chroma_420: bool = True) -> np.ndarray:
    """Encode a uint8 RGB image as JPEG in memory at ``quality`` (4:2:0 chroma unless told) and decode it again.

    The training degradation's JPEG step (:class:`mlrn_core.data.Degradation`); here because this module is
    the only one that knows OpenCV's BGR order.
    """
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if chroma_420 else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise RuntimeError(f"JPEG encoding failed at quality {quality}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


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


def picture_from_array(arr: np.ndarray, bit_depth: int | None = None) -> Picture:
    """Wrap a uint8/uint16/float (HxW, HxWx1, HxWx2, HxWx3 or HxWx4) array as a metadata-free Picture.

    Float input is taken as [0, 1] and gets ``bit_depth`` 8 unless told otherwise; 2 and 4 channels carry
    alpha; 1 and 2 channels give a grayscale picture.
    """
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ValueError(f"expected HxW, HxWx2, HxWx3 or HxWx4 pixels, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        depth, f = 8, _int_to_float(a)
    elif a.dtype == np.uint16:
        depth, f = 16, _int_to_float(a)
    elif np.issubdtype(a.dtype, np.floating):
        depth, f = 8, a.astype(np.float32)
    else:
        raise ValueError(f"unsupported pixel dtype {a.dtype}; use uint8, uint16 or float")
    gray = a.ndim == 2 or a.shape[2] == 2
    rgb, alpha = _split_channels(f, gray)
    mode = {(True, False): "L", (True, True): "LA", (False, False): "RGB", (False, True): "RGBA"}[
        (gray, alpha is not None)
    ]
    if depth == 16 and mode == "L":
        mode = "I;16"
    return Picture(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth if bit_depth is not None else depth,
        grayscale=gray,
        icc_profile=None,
        exif=None,
        dpi=None,
        source_format="png",
        source_mode=mode,
    )


def picture_to_uint8_rgb(picture: Picture, background: tuple[float, float, float] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB for display/thumbnails. Alpha is ignored unless ``background`` (RGB in [0, 1]) is
    given, in which case the picture is composited over it."""
    rgb = picture.rgb
    if rgb.dtype.kind == "u" and (background is None or picture.alpha is None):
        return _float_to_int(rgb, np.uint8)
    if rgb.dtype.kind == "u":
        rgb = _int_to_float(rgb)
    if background is not None and picture.alpha is not None:
        alpha = picture.alpha if picture.alpha.dtype.kind == "f" else _int_to_float(picture.alpha)
        a = np.clip(alpha, 0.0, 1.0)[:, :, None]
        rgb = rgb * a + np.asarray(background, dtype=np.float32) * (1.0 - a)
    return _float_to_int(rgb, np.uint8)


# --------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], raw_colour: str = "srgb") -> Picture:
    """Read an image file into a :class:`Picture` (EXIF orientation applied). Raises ImageIOError.

    ``raw_colour``: the colour space a camera RAW file is developed into ("srgb", "adobe" or "prophoto",
    :data:`mlrn_core.imageio.raw.COLOUR_SPACES`); other files ignore it."""
    return _read_image(path, raw_colour=raw_colour)[0]


def read_image_for_display(path: str | os.PathLike[str], raw_colour: str = "srgb") -> tuple[Picture, np.ndarray | None]:
    """:func:`read_image` plus the picture's uint8 HxWx3 RGB pixels when they come straight from the file.

    For an 8-bit source these are the decoded pixels themselves (orientation and channels as in
    ``picture.rgb``), exactly what converting ``picture.rgb`` back to 8 bits gives, without a pass
    over the float image; None for a 16-bit, float or premultiplied-alpha source (convert those). They
    may share the decoder's buffer, and so be read-only: copy them before writing into them.
    """
    return _read_image(path, display=True, raw_colour=raw_colour)


@dataclass(frozen=True)
class _Header:
    """What a picture file's header declares, read from its first megabytes with nothing decoded."""

    width: int
    height: int
    bands: int
    frames: int
    alpha: bool


def _read_header(p: Path) -> _Header | None:
    """The header of the regular, non-RAW file ``p``, or None when its first megabytes do not hold one (a TIFF
    whose directory is at its end, a file that is not a picture): the reader then says what it is."""
    if is_camera_raw(p) or not_a_regular_file(p):
        return None
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head), formats=_PIL_OPEN_FORMATS) as img:
                bands = img.getbands()
                frames = max(1, int(getattr(img, "n_frames", 1) or 1)) if img.format != "TIFF" else 1
                alpha = "A" in bands and img.mode != "LAB" or "transparency" in img.info
                return _Header(img.width, img.height, len(bands), frames, alpha)
    except Exception:  # noqa: BLE001
        return None


def declared_size(path: str | os.PathLike[str]) -> tuple[int, int, bool] | None:
    """(width, height, has alpha) of the picture a file's header declares, nothing decoded; None when the
    header does not say (camera RAW, a file that is not a picture): the reader then says what it is."""
    header = _read_header(Path(path))
    return (header.width, header.height, header.alpha) if header is not None else None


#: Files up to this size are read whole without a second look; a bigger one must have the pixels to match.
_BIG_FILE_BYTES = 64 << 20
_HEAD_BYTES = 4 << 20  # where the header of every format we read sits (EXIF and ICC before the frame)


def _more_bytes_than_pixels(p: Path) -> str | None:
    """Why a big file cannot be the picture its header declares (a few KB of image followed by gigabytes of
    something else: read whole, it would take that much memory), or None. Only files over
    :data:`_BIG_FILE_BYTES` whose header parses are judged: any layout needs at most 8 bytes per sample."""
    try:
        size = os.stat(p).st_size
    except (OSError, ValueError):
        return None
    header = _read_header(p) if size > _BIG_FILE_BYTES else None
    if header is None:
        return None
    width, height = header.width, header.height
    most = width * height * max(header.bands, 1) * 8 * header.frames + _BIG_FILE_BYTES
    if size <= most:
        return None
    return (
        f"the file is {size / 1e6:,.0f} MB, but the {width} x {height} image its header declares needs at most "
        f"{most / 1e6:,.0f} MB: the rest is not picture data (a damaged or padded file), so it was not read. "
        "Open it in an image editor and save it again"
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")


def _png_without_unreadable_extras(p: Path, data: bytes) -> bytes:
    """A PNG's bytes without the optional chunks that would make the whole file unreadable: a text or other
    ancillary chunk whose checksum is wrong (libpng itself only warns), or a text chunk over Pillow's limit
    (a 50 MB comment). The picture is whole without them; what is dropped is said. Other files: unchanged."""
    if data[:8] != _PNG_SIGNATURE:
        return data
    keep: list[bytes] = [data[:8]]
    dropped: list[str] = []
    pos = 8
    while pos + 12 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break  # a truncated chunk: the decoder says so
        if ctype[0] & 0x20:  # ancillary (lower-case first letter): the picture does not need it
            name = ctype.decode("latin-1")
            (crc,) = struct.unpack(">I", data[end - 4 : end])
            if zlib.crc32(data[pos + 4 : end - 4]) & 0xFFFFFFFF != crc:
                dropped.append(f"a {name} chunk whose checksum is wrong")
                pos = end
                continue
            if ctype in _PNG_TEXT and _png_text_too_big(ctype, data[pos + 8 : end - 4]):
                dropped.append(f"a {name} chunk holding more than {_PNG_TEXT_LIMIT >> 20} MB of text")
                pos = end
                continue
        keep.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            break
    if not dropped:
        return data
    log.warning("%s: %s dropped (the picture itself is whole)", p.name, "; ".join(dropped))
    return b"".join(keep) + data[pos:]


_PNG_TEXT_LIMIT = 1 << 20  # Pillow's PngImagePlugin.MAX_TEXT_CHUNK: a longer text makes it refuse the file


def _png_text_too_big(ctype: bytes, payload: bytes) -> bool:
    """Whether a tEXt/zTXt/iTXt payload holds more text than Pillow accepts (decompressed only up to the limit)."""
    if len(payload) > _PNG_TEXT_LIMIT and ctype == b"tEXt":
        return True
    keyword, _, rest = payload.partition(b"\0")
    if ctype == b"zTXt":
        compressed = rest[1:]
    elif ctype == b"iTXt" and rest[:1] == b"\1":
        compressed = rest[2:].split(b"\0", 2)[-1]
    else:
        return len(payload) > _PNG_TEXT_LIMIT
    try:
        return len(zlib.decompressobj().decompress(compressed, _PNG_TEXT_LIMIT + 1)) > _PNG_TEXT_LIMIT
    except zlib.error:
        return False  # Pillow skips a text it cannot decompress


def _read_image(
    path: str | os.PathLike[str], display: bool = False, raw_colour: str = "srgb"
) -> tuple[Picture, np.ndarray | None]:
    p = Path(path)
    if is_camera_raw(p) and not raw_available():
        raise ImageIOError(p, RAW_ADVICE)
    if not is_camera_raw(p):  # LibRaw checks its own sizes
        problem = _more_bytes_than_pixels(p)
        if problem:
            raise ImageIOError(p, problem)
    data = _read_file_bytes(p)
    try:
        if is_camera_raw(p):
            from mlrn_core.imageio import raw

            return raw.develop(p, data, raw_colour), None
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit: a warning would let a memory bomb through
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Photoshop/exiv2 store IPTC (tag 33723) as LONGs; Pillow warns about that, harmlessly
            warnings.filterwarnings("ignore", message="Metadata Warning, tag 33723")
            picture, pixels = _decode(p, _png_without_unreadable_extras(p, data), display)
    except ImageIOError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(match.group(1)) if match else None
        raise ImageIOError(p, _too_large_reason(None, pixels)) from None
    except MemoryError:
        raise ImageIOError(p, "not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 - never leak raw Pillow/OpenCV exceptions
        raise ImageIOError(p, _decode_reason(exc)) from exc
    log.debug(
        "read %s: %dx%d %s %d-bit%s",
        p,
        picture.width,
        picture.height,
        picture.source_mode,
        picture.bit_depth,
        " +alpha" if picture.alpha is not None else "",
    )
    return picture, pixels


def _decode_reason(exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "truncated" in low or "incomplete" in low or "premature" in low or "broken data stream" in low:
        return "file is truncated"
    if "could not create decoder" in low or "decoder error" in low or "broken png" in low:
        return "file is damaged or truncated"
    return f"file is damaged or cannot be decoded ({type(exc).__name__}: {text})"


def _open_pillow(p: Path, data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # between 1x and 2x its limit Pillow only warns: check_pixel_limit below refuses with the size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_PIL_OPEN_FORMATS)
    except UnidentifiedImageError:
        pass
    else:
        try:
            check_pixel_limit(p, img.width, img.height)  # from the header: nothing is decoded yet
        except ImageIOError:
            img.close()
            raise
        return img
    if p.suffix.lower() in (".heic", ".heif") and not HEIF_AVAILABLE:
        raise ImageIOError(p, "HEIC/HEIF support is not installed: pip install pillow-heif")
    try:  # Name the format in the message if Pillow knows it but we do not support it.
        other = Image.open(io.BytesIO(data))
        name = other.format
        other.close()
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001
        name = None
    if name:
        raise ImageIOError(p, f"{name} images are not supported (use PNG, JPEG, TIFF, WebP or BMP)")
    raise ImageIOError(p, "not an image file, or an unsupported image format")


def _decode(p: Path, data: bytes, display: bool = False) -> tuple[Picture, np.ndarray | None]:
    """The picture and, with ``display``, its uint8 RGB pixels when they are the decoded ones (else None)."""
    if data[4:8] == b"ftyp":  # HEIC/AVIF: a 10- or 12-bit HEIC keeps its depth; a deep AVIF says it does not
        picture = heif.decode_deep(p, data)
        if picture is not None:
            return picture, None
        bits = heif.deep_avif_bits(data)
        if bits:
            log.warning(
                "%s: a %d-bit AVIF is read as 8 bits per channel (the AVIF decoder here gives 8); "
                "for all its depth, export it as a 16-bit PNG or TIFF",
                p.name,
                bits,
            )
    if tiff.is_tiff(data):  # float, 32-bit, 16-bit gray+alpha, CMYK+alpha, BigTIFF, thumbnail first: tifffile
        picture = tiff.decode(p, data)
        if picture is not None:
            return picture, None
    img = _open_pillow(p, data)
    with img:
        fmt = _PIL_FORMATS[img.format or ""]
        if fmt == "png":  # before any pixel is allocated: Pillow fills missing rows with black, silently
            problem = _png_data_problem(data)
            if problem:
                raise ImageIOError(p, problem)
        if fmt == "jpg":  # libjpeg decodes damaged data into grey or garbled blocks, and only says so on stderr
            damage = _jpeg_damage(data)
            if damage:
                log.warning(
                    "%s: its image data is damaged (libjpeg: %s): parts of the picture may be grey or garbled; "
                    "it is upscaled as decoded",
                    p.name,
                    damage,
                )
        source_mode = img.mode
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            if img.format == "MPO":  # phones' JPEGs: an HDR gain map, a depth map or a preview after the photo
                log.warning(
                    "%s holds %d more image%s after the photo (such as an HDR gain map, a depth map or a "
                    "preview, as phones write them); the photo is upscaled, and %s not kept in the output",
                    p.name,
                    frames - 1,
                    "" if frames == 2 else "s",
                    "that one is" if frames == 2 else "those are",
                )
            elif getattr(img, "is_animated", False) and fmt != "tiff":
                log.warning(
                    "%s is animated (%d frames): only the first frame is upscaled; export the frames as "
                    "still images to upscale them all",
                    p.name,
                    frames,
                )
            else:
                log.warning("%s has %d pages: only the first one is upscaled", p.name, frames)
        icc = img.info.get("icc_profile") or None
        if fmt == "png" and icc is None:
            _note_png_colour_chunks(p, img.info)
        dpi = _read_dpi(img)
        exif_bytes = _read_exif_bytes(img, fmt, data)
        has_xmp_iptc = _may_hold_xmp_iptc(img)
        orientation = _orientation_of(exif_bytes)
        # The orientation is applied exactly once: a decoder that turns TIFF pixels upright itself (Pillow's
        # TIFF loader does, and reports the upright size before decoding) leaves nothing to do.
        pil_upright, cv_upright = _tiff_decoders_upright() if fmt == "tiff" and orientation != 1 else (False, False)
        swap = orientation in (5, 6, 7, 8)
        pil_hw = (img.height, img.width)
        stored_hw = pil_hw[::-1] if pil_upright and swap else pil_hw
        todo = 1 if pil_upright else orientation  # what is left to do on Pillow's pixels

        pixels: np.ndarray | None = None
        raw: np.ndarray | None = None  # the decoded 8-bit pixels, when the float picture is exactly them / 255
        if _is_sixteen_bit(img, fmt, data):
            upright_hw = stored_hw[::-1] if swap else stored_hw
            pixels = _decode_cv2(p, img, data, upright_hw if cv_upright else stored_hw)
            if pixels is not None:
                todo = 1 if cv_upright else orientation
        if pixels is not None:
            gray = source_mode in _GRAY_MODES or (fmt == "png" and data[25] in (0, 4))  # PNG colour type
            depth = 16 if pixels.dtype != np.uint8 else 8
            floats = _int_to_float(pixels) if pixels.dtype.kind in "ui" else np.clip(pixels, 0, 1)
            raw = pixels if pixels.dtype == np.uint8 else None
            key = img.info.get("transparency")
            if fmt == "png" and gray and pixels.ndim == 2 and isinstance(key, int):
                # a 16-bit gray PNG's transparency key (tRNS): OpenCV ignores it, the pixels equal to it are clear
                floats = np.dstack([floats, (pixels != key).astype(np.float32)])
                raw = None
            if floats.ndim == 3 and floats.shape[2] == 4 and _tiff_alpha_is_associated(img):
                floats = _unpremultiply(floats)
                raw = None
        else:
            arr, gray, icc = _pillow_pixels(p, img, icc)
            depth = 16 if arr.dtype != np.uint8 else 8
            floats = _int_to_float(arr) if arr.dtype.kind in "ui" else np.clip(arr, 0, 1).astype(np.float32)
            raw = arr if arr.dtype == np.uint8 else None

    floats = _apply_orientation(floats, todo)
    rgb, alpha = _split_channels(floats, gray)
    shown = None
    if display and raw is not None:
        shown = _split_channels(_apply_orientation(raw, todo), gray, np.uint8)[0]
    xmp, iptc = _read_xmp_iptc(p, data) if has_xmp_iptc else (None, None)
    picture = Picture(
        rgb=rgb,
        alpha=alpha,
        bit_depth=depth,
        grayscale=gray,
        icc_profile=icc,
        exif=exif_bytes,
        dpi=dpi,
        source_format=fmt,
        source_mode=source_mode,
        path=p,
        xmp=xmp,
        iptc=iptc,
        lossless_webp=fmt == "webp" and _webp_is_lossless(data),
    )
    return picture, shown


_STDERR_LOCK = threading.Lock()  # one capture of the process's stderr at a time


def _jpeg_damage(data: bytes) -> str | None:
    """libjpeg's complaint about a JPEG's image data ('Corrupt JPEG data: 205 extraneous bytes before marker
    0xd9', 'Premature end of JPEG file'), or None. Neither Pillow nor OpenCV reports these warnings, which
    libjpeg prints on the C stderr: a reduced (1/8 scale, gray) decode runs with that stream captured."""
    try:
        with _STDERR_LOCK, tempfile.TemporaryFile() as capture:
            sys.stderr.flush()
            saved = os.dup(2)
            try:
                os.dup2(capture.fileno(), 2)
                cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read(4096).decode("utf-8", "replace")
    except OSError:  # no stderr to capture (a windowed app on some systems): nothing to say
        return None
    lines = [
        line.strip() for line in text.splitlines() if "JPEG" in line and ("Corrupt" in line or "Premature" in line)
    ]
    return lines[0] if lines else None


_SRGB_GAMMA = 1 / 2.2  # gAMA's value for sRGB-like files (0.45455)
_SRGB_CHROMATICITY = (0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06)  # cHRM's white point and primaries


def _note_png_colour_chunks(p: Path, info: dict) -> None:
    """A PNG without an ICC profile may still describe its colours with gAMA and cHRM; the output does not carry
    them (its pixels are taken as sRGB, as most software takes them). Say so when they differ from sRGB, since
    a colour-managed viewer would then show the original and the result differently."""
    gamma, chroma = info.get("gamma"), info.get("chromaticity")
    odd = []
    if gamma is not None and abs(float(gamma) - _SRGB_GAMMA) > 0.01 * _SRGB_GAMMA:
        odd.append(f"gamma {float(gamma):g} (gAMA)")
    if chroma is not None and max(abs(float(a) - b) for a, b in zip(chroma, _SRGB_CHROMATICITY)) > 0.01:
        odd.append("non-sRGB primaries (cHRM)")
    if odd:
        log.warning(
            "%s describes its colours with %s and no ICC profile; the output does not keep that, so a "
            "colour-managed viewer may show it slightly differently from the original",
            p.name,
            " and ".join(odd),
        )


def _webp_is_lossless(data: bytes) -> bool:
    """A WebP's first bitstream chunk is 'VP8L' (lossless) rather than 'VP8 ' (lossy); animation frames too."""
    pos = 12
    for _ in range(64):
        if pos + 8 > len(data):
            return False
        fourcc, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        pos += 8 + (16 if fourcc == b"ANMF" else size + (size & 1))
    return False


def _may_hold_xmp_iptc(img: Image.Image) -> bool:
    """Whether the file has an XMP or IPTC block (from what Pillow already parsed), so that files without
    any (most training images) are not opened a second time by libexiv2."""
    info = img.info
    if info.get("xmp") or "photoshop" in info:
        return True
    if any("xmp" in str(k).lower() or "iptc" in str(k).lower() for k in info):
        return True  # PNG text chunks: 'XML:com.adobe.xmp', 'Raw profile type iptc'
    tags = getattr(img, "tag_v2", None)
    return bool(tags) and any(t in tags for t in (700, 33723, 34377))


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


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file (stops quietly at the first damaged chunk)."""
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            break
        chunks.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if ctype == b"IEND":
            break
    return chunks


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


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_raw_size(width: int, height: int, bits: int, channels: int, interlaced: bool) -> int:
    """Bytes the decompressed image data of a PNG must hold: each row's filter byte plus its pixels."""

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * channels * bits + 7) // 8) if w and h else 0

    if not interlaced:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx if width > x0 else 0, (height - y0 + dy - 1) // dy if height > y0 else 0)
        for x0, y0, dx, dy in _ADAM7
    )


def _png_data_problem(data: bytes) -> str | None:
    """Why a PNG's image data is incomplete (it ends before the last row), or None when it is whole or the
    chunks cannot be followed (the decoder then says what is wrong).

    The IDAT stream is inflated in pieces of at most 1 MB that are counted and dropped, so the check costs
    one pass over the data and no memory, whatever size the header claims; it stops once the data is whole.
    """
    try:
        width, height, bits, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", data[16:29])
        expected = _png_raw_size(width, height, bits, _PNG_CHANNELS[colour], interlace == 1)
    except (struct.error, KeyError):
        return None
    inflate = zlib.decompressobj()
    got, pos, seen_idat = 0, 8, False
    try:
        while pos + 8 <= len(data) and got < expected:
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                seen_idat = True
                piece = data[pos + 8 : pos + 8 + length]
                while piece and got < expected:
                    got += len(inflate.decompress(piece, 1 << 20))
                    piece = inflate.unconsumed_tail
                if inflate.eof:
                    break
            elif seen_idat or kind == b"IEND":
                break  # the image data is one run of IDAT chunks
            pos += 12 + length
    except (zlib.error, struct.error):
        return None  # a damaged stream: the decoder reports it
    if not seen_idat or got >= expected:
        return None
    row = expected // max(1, height) if interlace != 1 else 0
    have = f"{got // row} of its {height} rows" if row else f"{100 * got // expected}% of its pixels"
    return (
        f"file is truncated: its image data ends after {have} (the rest would be black); copy or export it "
        "again from the original"
    )


def _is_sixteen_bit(img: Image.Image, fmt: str, data: bytes) -> bool:
    if img.mode.startswith("I;16"):
        return True
    if fmt == "png":
        return data[12:16] == b"IHDR" and len(data) > 24 and data[24] == 16
    if fmt == "tiff":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        photometric = tags.get(262, 2)
        return max(bits, default=8) in (16, 32) and photometric in (0, 1, 2)
    return False


def _tiff_alpha_is_associated(img: Image.Image) -> bool:
    if img.format != "TIFF":
        return False
    extra = img.tag_v2.get(338)
    extra = extra if isinstance(extra, tuple) else (extra,)
    return 1 in extra


def _unpremultiply(rgba: np.ndarray) -> np.ndarray:
    out = rgba.astype(np.float32, copy=True)
    a = out[:, :, 3:4]
    np.divide(out[:, :, :3], a, out=out[:, :, :3], where=a > 0)
    np.clip(out[:, :, :3], 0.0, 1.0, out=out[:, :, :3])
    return out


@functools.cache
def _tiff_decoders_upright() -> tuple[bool, bool]:
    """Whether Pillow and OpenCV turn TIFF pixels upright themselves while decoding, by the Orientation tag.

    Pillow's TIFF loader does since 11 (``ImageOps.exif_transpose`` in ``TiffImagePlugin.load``), older ones
    do not, and OpenCV's may or may not: measured once, on a 3x2 TIFF tagged Orientation 6, so that the
    rotation is done exactly once whatever the versions installed.
    """
    stored = np.arange(1, 7, dtype=np.uint8).reshape(2, 3) * 40
    upright = _apply_orientation(stored, 6)
    exif = Image.Exif()
    exif[_TAG_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="TIFF", exif=exif)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        pil = np.asarray(im)
    cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    cv = cv[:, :, 0] if cv is not None and cv.ndim == 3 else cv
    return bool(np.array_equal(pil, upright)), bool(cv is not None and np.array_equal(cv, upright))


def _decode_cv2(p: Path, img: Image.Image, data: bytes, expected_hw: tuple[int, int]) -> np.ndarray | None:
    """Decode a 16-bit PNG/TIFF with OpenCV; RGB(A) channel order. None -> let Pillow decode it.

    ``expected_hw`` is the size OpenCV's pixels must have (stored or upright, as OpenCV decodes them)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        try:
            img.load()
        except OSError as exc:
            raise ImageIOError(p, _decode_reason(exc)) from None
        if img.mode.startswith("I;16"):
            return None  # Pillow reads 16-bit gray correctly
        log.warning("%s: could not decode the 16-bit pixels; reading them as 8 bit", p.name)
        return None
    if arr.shape[:2] != expected_hw:
        log.warning("%s: OpenCV and Pillow disagree on the size; using Pillow (8 bit)", p.name)
        return None
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 1:
            arr = arr[:, :, 0]
        elif channels == 3:
            arr = arr[:, :, ::-1]
        elif channels == 4:
            arr = arr[:, :, [2, 1, 0, 3]]
        else:
            log.warning("%s: unexpected %d channels from OpenCV; using Pillow", p.name, channels)
            return None
    return np.ascontiguousarray(arr)


def _pillow_pixels(p: Path, img: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bool, bytes | None]:
    """Decode with Pillow. Returns (uint8/uint16/float array HxW[xC], grayscale, icc_profile)."""
    try:
        img.load()
    except OSError as exc:
        raise ImageIOError(p, _decode_reason(exc)) from None
    mode = img.mode
    has_trns = "transparency" in img.info
    gray = mode in _GRAY_MODES
    if mode == "1":
        img = img.convert("LA" if has_trns else "L")
    elif mode in ("P", "PA"):
        img = img.convert("RGBA" if has_trns or mode == "PA" else "RGB")
    elif mode == "L" and has_trns:
        img = img.convert("LA")
    elif mode == "RGB" and has_trns:
        img = img.convert("RGBA")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "RGBX":
        img = img.convert("RGB")
    elif mode == "CMYK":
        img, icc = _cmyk_to_rgb(p, img, icc)
    elif mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16), True, icc
    elif mode == "I":
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16), True, icc
    elif mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0), True, icc
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        # an alpha band is a trailing A (LA, PA, RGBA...); CIELab's bands are L, a and b, without alpha
        img = img.convert("RGBA" if mode.endswith(("A", "a")) and mode != "LAB" else "RGB")
    return np.asarray(img), gray, icc


def _cmyk_to_rgb(p: Path, img: Image.Image, icc: bytes | None) -> tuple[Image.Image, None]:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
            log.info("%s: CMYK converted to sRGB with its embedded profile; CMYK profile dropped", p.name)
            return rgb, None  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: embedded CMYK profile unusable (%s); plain CMYK->RGB conversion", p.name, exc)
    else:
        log.info("%s: CMYK converted to RGB without colour management (no embedded profile)", p.name)
    if icc:
        log.info("%s: CMYK ICC profile dropped (it does not describe RGB pixels)", p.name)
    return img.convert("RGB"), None


def _int_to_float(a: np.ndarray) -> np.ndarray:
    scale = float(np.iinfo(a.dtype).max)
    out = a.astype(np.float32)
    out /= np.float32(scale)
    return out


def _split_channels(f: np.ndarray, gray: bool, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray | None]:
    """HxW / HxWx{1,2,3,4} -> (contiguous HxWx3 rgb, HxW alpha or None), both of ``dtype``."""
    if f.ndim == 2:
        f = f[:, :, None]
    channels = f.shape[2]
    alpha = None
    if channels in (2, 4):
        alpha = np.ascontiguousarray(f[:, :, -1], dtype=dtype)
        f = f[:, :, :-1]
        channels -= 1
    if channels == 1 or gray:
        g = f[:, :, :1]
        rgb = np.repeat(g, 3, axis=2)
    else:
        rgb = f
    return np.ascontiguousarray(rgb, dtype=dtype), alpha


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def write_image(
    picture: Picture,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    quality: int | None = None,
    bit_depth: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``picture`` atomically to ``path`` and return the final Path.

    ``fmt`` defaults to the path's extension. ``bit_depth`` defaults to the picture's when the format can
    hold it (16 bit only for PNG and TIFF). ``quality`` (1-100, default 95) applies to JPEG, WebP, HEIC
    and AVIF. Parent folders are created. Without ``overwrite`` the file is created only if absent: an
    existing file (even one that appears while this one is encoded) raises :class:`OutputExistsError`
    and is left untouched. Every failure raises ImageIOError and leaves no partial file behind.
    """
    target = Path(path)
    try:
        out_fmt = output_format_for(fmt if fmt is not None else target)
    except ImageIOError as exc:
        raise ImageIOError(target, exc.reason, "write") from None
    if fmt is not None and target.suffix.lower() in SUPPORTED_EXTENSIONS and output_format_for(target) != out_fmt:
        log.warning("writing %s data into %s (extension does not match the format)", out_fmt, target.name)
    _refuse_source_overwrite(picture, target)
    if target.is_dir():
        raise ImageIOError(target, "a folder with this name exists: choose a file name", "write")
    if not overwrite and os.path.lexists(target):
        raise OutputExistsError(target, _EXISTS_REASON, "write")

    # a lossless WebP written as WebP stays lossless unless a quality is asked for
    lossless = out_fmt == "webp" and quality is None and picture.lossless_webp
    if quality is None:
        quality = DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ImageIOError(target, f"quality must be an integer from 1 to 100, got {quality!r}", "write")
    depth = bit_depth if bit_depth is not None else picture.bit_depth
    if depth not in (8, 16):
        raise ImageIOError(target, f"bit depth must be 8 or 16, got {depth!r}", "write")
    if depth == 16 and out_fmt not in _SIXTEEN_BIT_FORMATS:
        if bit_depth == 16:
            log.warning("%s: %s cannot store 16 bit; writing 8 bit", target.name, out_fmt.upper())
        depth = 8

    try:
        pixels, gray, has_alpha, icc = _output_pixels(picture, out_fmt, depth, target)
        if icc is not picture.icc_profile:
            picture = dataclasses.replace(picture, icc_profile=icc)
        exif = _prepare_exif(picture.exif, picture.width, picture.height, target)
    except ImageIOError:
        raise
    except MemoryError:
        raise ImageIOError(target, "not enough memory to prepare the image", "write") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageIOError(target, f"cannot prepare the pixels ({exc})", "write") from exc

    job = _Job(pixels, gray, has_alpha, picture, exif, quality, target, lossless)

    def encode(fp: BinaryIO) -> None:
        _ENCODERS[out_fmt](fp, job)

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create folder '{target.parent}' ({_os_reason(exc)})"
        raise ImageIOError(target, reason, "write") from None

    def add_metadata(tmp: Path) -> None:
        _write_xmp_iptc(tmp, out_fmt, picture)

    _atomic_write(target, encode, overwrite=overwrite, finish=add_metadata)
    log.debug("wrote %s (%s, %d-bit, %dx%d)", target, out_fmt, depth, picture.width, picture.height)
    return target


def _refuse_source_overwrite(picture: Picture, target: Path) -> None:
    if picture.path is None:
        return
    same = False
    with contextlib.suppress(OSError, RuntimeError):
        same = picture.path.resolve() == target.resolve()
    if not same:
        with contextlib.suppress(OSError):
            same = target.exists() and os.path.samefile(picture.path, target)
    if same:
        raise ImageIOError(target, "refusing to write: this would overwrite the original", "write")


def _float_to_int(f: np.ndarray, dtype: type[np.unsignedinteger], band_pixels: int = 4_000_000) -> np.ndarray:
    """float [0, 1] (clipped, rounded) or uint8/uint16 pixels -> ``dtype``; integers need no float copy."""
    f = np.asarray(f)
    if f.dtype == np.dtype(dtype):
        return f
    if f.dtype.kind == "u":  # 8 <-> 16 bit, converted in bands of rows
        out = np.empty(f.shape, dtype)
        rows = max(1, band_pixels // max(1, int(np.prod(f.shape[1:]))))
        for y in range(0, f.shape[0], rows):
            band = f[y : y + rows]
            if dtype == np.uint16:
                out[y : y + rows] = band.astype(np.uint16) * np.uint16(257)
            else:
                out[y : y + rows] = np.rint(band.astype(np.float32) / np.float32(257)).astype(np.uint8)
        return out
    maxv = float(np.iinfo(dtype).max)
    x = np.asarray(f, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
    out = np.clip(x, 0.0, 1.0) * np.float32(maxv)
    np.rint(out, out=out)
    return out.astype(dtype)


def _output_pixels(picture: Picture, fmt: str, depth: int, target: Path) -> tuple[np.ndarray, bool, bool, bytes | None]:
    """-> (HxWxC uint8/uint16 array, grayscale, has_alpha, icc_profile); C is 1..4."""
    rgb = picture.rgb
    gray = picture.grayscale
    if gray:
        spread = float(np.max(rgb.max(axis=2) - rgb.min(axis=2))) if rgb.size else 0.0
        if rgb.dtype.kind == "u":
            spread /= float(np.iinfo(rgb.dtype).max)
        if spread > 1.0 / 255.0:
            log.info("%s: grayscale source now has colour; writing RGB", target.name)
            gray = False
    if gray and fmt in ("webp", "heic", "avif"):
        gray = False  # no grayscale mode in these encoders
    has_alpha = picture.alpha is not None
    if has_alpha and fmt not in _ALPHA_FORMATS:
        log.warning("%s: %s has no transparency; the alpha channel is dropped", target.name, fmt.upper())
        has_alpha = False
    if gray and has_alpha and depth == 16 and fmt == "tiff":
        # Pillow cannot open 16-bit gray+alpha TIFFs, so write RGBA (exactly the same values).
        log.info("%s: 16-bit gray+alpha TIFF is written as 16-bit RGBA", target.name)
        gray = False
    icc, gray = _icc_for_output(picture.icc_profile, gray, fmt, target)
    dtype = np.uint16 if depth == 16 else np.uint8
    if rgb.dtype.kind == "u":  # an upscaled result: convert plane by plane, never through float32
        if gray:
            rgb = np.rint(rgb.mean(axis=2, dtype=np.float32)).astype(rgb.dtype)[:, :, None]
        planes = [_float_to_int(rgb, dtype)]
        if has_alpha:
            planes.append(_float_to_int(picture.alpha, dtype)[:, :, None])  # type: ignore[index]
        stacked = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2)
        return stacked, gray, has_alpha, icc
    planes = [rgb.mean(axis=2, dtype=np.float32)[:, :, None] if gray else rgb]
    if has_alpha:
        planes.append(picture.alpha[:, :, None])  # type: ignore[index]
    stacked = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2)
    return _float_to_int(stacked, dtype), gray, has_alpha, icc


def _icc_for_output(icc: bytes | None, gray: bool, fmt: str, target: Path) -> tuple[bytes | None, bool]:
    """Keep the ICC profile consistent with the written colour space (header bytes 16-19)."""
    if not icc or fmt == "bmp":
        return icc, gray
    space = icc[16:20] if len(icc) >= 20 else b""
    if gray and space == b"RGB ":
        log.info("%s: written as RGB so that its RGB colour profile stays valid", target.name)
        return icc, False
    if not gray and space == b"GRAY":
        log.warning("%s: gray ICC profile dropped because the image is written in colour", target.name)
        return None, gray
    if space not in (b"RGB ", b"GRAY"):
        log.warning("%s: ICC profile for colour space %r dropped (not RGB/gray)", target.name, space)
        return None, gray
    return icc, gray


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


def _atomic_write(
    target: Path,
    encode: Callable[[BinaryIO], None],
    *,
    overwrite: bool = True,
    finish: Callable[[Path], None] | None = None,
) -> None:
    """Run ``encode`` through the one atomic writer (create-if-absent unless ``overwrite``; ``finish`` edits
    the finished temporary file); errors become :class:`ImageIOError` naming ``target``."""
    try:
        with atomic_open(target, "wb", overwrite=overwrite, finish=finish) as fp:
            encode(fp)
    except BaseException as exc:
        if isinstance(exc, ImageIOError) or not isinstance(exc, Exception):
            raise  # ImageIOError already names the file; KeyboardInterrupt/SystemExit pass through
        if isinstance(exc, FileExistsError):
            raise OutputExistsError(target, _EXISTS_REASON, "write") from None
        if isinstance(exc, MemoryError):
            raise ImageIOError(target, "not enough memory to encode the image", "write") from None
        raise ImageIOError(target, _os_reason(exc), "write") from exc


# --- XMP / IPTC -----------------------------------------------------------------------------------------


def _iptc_as_xmp(iptc: dict[str, object], xmp_keys: set[str]) -> dict[str, object]:
    """IPTC fields exiv2 maps to XMP, for formats without an IPTC block; XMP values already there win."""
    try:
        mapped = pyexiv2.convert_iptc_to_xmp(iptc)
    except Exception as exc:  # noqa: BLE001
        log.warning("IPTC fields could not be converted to XMP (%s)", exc)
        return {}
    return {k: v for k, v in mapped.items() if k not in xmp_keys}


_BLANK_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _merged_xmp(picture: Picture) -> bytes | None:
    """One XMP packet holding the picture's XMP plus its IPTC fields (for HEIC/AVIF, written by the encoder:
    exiv2 cannot write those containers)."""
    if not (picture.xmp or picture.iptc):
        return None
    if pyexiv2 is None or not picture.iptc:
        return picture.xmp.encode("utf-8") if picture.xmp else None
    try:
        with _exiv2_lock:
            meta = pyexiv2.ImageData(_BLANK_PNG)
            try:
                if picture.xmp:
                    meta.modify_raw_xmp(picture.xmp)
                extra = _iptc_as_xmp(picture.iptc, set(meta.read_xmp()))
                if extra:
                    meta.modify_xmp(extra)
                packet = meta.read_raw_xmp()
            finally:
                meta.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("IPTC fields could not be added to the XMP (%s)", exc)
        return picture.xmp.encode("utf-8") if picture.xmp else None
    return packet.encode("utf-8") if packet else None


def _write_xmp_iptc(tmp: Path, fmt: str, picture: Picture) -> None:
    """Add the picture's XMP and IPTC to the encoded file ``tmp`` (in place)."""
    if fmt in ("heic", "avif"):
        return  # written by the encoder (_merged_xmp)
    if not (picture.xmp or picture.iptc) or fmt == "bmp":
        if fmt == "bmp" and (picture.xmp or picture.iptc):
            log.warning("%s: BMP cannot hold XMP/IPTC metadata; they are not written", tmp.name)
        return
    if pyexiv2 is None:
        log.warning("XMP/IPTC metadata not written: the pyexiv2 package is not installed")
        return
    try:
        with _exiv2_lock:
            meta = pyexiv2.Image(str(tmp))
            try:
                xmp_keys: set[str] = set()
                if picture.xmp:
                    meta.modify_raw_xmp(picture.xmp)
                    xmp_keys = set(meta.read_xmp())
                if picture.iptc:
                    if fmt in _NO_IPTC_FORMATS:
                        extra = _iptc_as_xmp(picture.iptc, xmp_keys)
                        if extra:
                            meta.modify_xmp(extra)
                    else:
                        meta.modify_iptc(picture.iptc)
            finally:
                meta.close()
    except Exception as exc:  # noqa: BLE001 - the pixels are fine; say what is missing
        log.warning("XMP/IPTC metadata could not be written (%s); the image is saved without it", exc)


# --- encoders -------------------------------------------------------------------------------------------


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
    _write_tiff(
        fp,
        job.pixels,
        gray=job.gray,
        has_alpha=job.has_alpha,
        icc=job.picture.icc_profile,
        dpi=job.picture.dpi,
        exif=job.exif,
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


# --- 16-bit PNG -----------------------------------------------------------------------------------------


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _png16_bytes(
    pixels: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None, exif_data: bytes | None
) -> bytes:
    """16-bit PNG: pixels via OpenCV (own encoder for gray+alpha), metadata chunks inserted here."""
    channels = pixels.shape[2]
    if channels == 2:
        png = _png_encode_gray_alpha16(pixels)
    else:
        if channels == 1:
            bgr = pixels[:, :, 0]
        elif channels == 3:
            bgr = pixels[:, :, ::-1]
        else:
            bgr = pixels[:, :, [2, 1, 0, 3]]
        params = [cv2.IMWRITE_PNG_COMPRESSION, _DEFLATE_LEVEL[16]]
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), params)
        if not ok:
            raise OSError("OpenCV could not encode the 16-bit PNG")
        png = buf.tobytes()

    extra: list[bytes] = []
    if icc:
        extra.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(v / 0.0254)) for v in dpi]
        extra.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif_data:
        body = exif_data[6:] if exif_data.startswith(b"Exif\x00\x00") else exif_data
        extra.append(_png_chunk(b"eXIf", body))

    replaced = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"pHYs", b"eXIf"}
    out = [png[:8]]
    for ctype, payload in _png_chunks(png):
        if ctype in replaced:
            continue
        out.append(_png_chunk(ctype, payload))
        if ctype == b"IHDR":
            out.extend(extra)
    return b"".join(out)


def _png_encode_gray_alpha16(pixels: np.ndarray) -> bytes:
    """Minimal PNG encoder for 16-bit gray+alpha (colour type 4), 'Sub' filter on every row."""
    h, w, _ = pixels.shape
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * 4)
    filtered = raw.copy()
    filtered[:, 4:] = raw[:, 4:] - raw[:, :-4]  # uint8 arithmetic wraps modulo 256 as PNG requires
    rows = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), _DEFLATE_LEVEL[16])),
            _png_chunk(b"IEND", b""),
        ]
    )


# --- TIFF (8 and 16 bit) --------------------------------------------------------------------------------


def _rational(value: float) -> TiffImagePlugin.IFDRational:
    frac = Fraction(value).limit_denominator(10_000)
    return TiffImagePlugin.IFDRational(frac.numerator, frac.denominator)


def _exif_into_ifd(ifd: TiffImagePlugin.ImageFileDirectory_v2, exif: Image.Exif) -> None:
    for tag, value in exif.items():
        if tag in _TIFF_STRUCTURAL_TAGS:
            continue
        try:
            ifd[tag] = value
        except Exception as exc:  # noqa: BLE001
            log.debug("skipping EXIF tag %#06x: %s", tag, exc)
    for sub_tag in (_TAG_EXIF_IFD, _TAG_GPS_IFD):
        if sub_tag in exif:
            sub = dict(exif.get_ifd(sub_tag))
            if sub:
                ifd[sub_tag] = sub


def _write_tiff(
    fp: BinaryIO,
    pixels: np.ndarray,
    *,
    gray: bool,
    has_alpha: bool,
    icc: bytes | None,
    dpi: tuple[float, float] | None,
    exif: Image.Exif | None,
) -> None:
    """Baseline little-endian TIFF: one IFD, Deflate strips with horizontal predictor."""
    h, w, channels = pixels.shape
    bits = 16 if pixels.dtype == np.uint16 else 8
    data = np.ascontiguousarray(pixels.astype("<u2" if bits == 16 else np.uint8, copy=False))
    row_bytes = w * channels * bits // 8
    rows_per_strip = max(1, min(h, _TIFF_STRIP_BYTES // max(row_bytes, 1)))
    level = _DEFLATE_LEVEL[bits]

    def strip(y: int) -> bytes:  # predictor 2 strip by strip: no second copy of a big image
        block = data[y : y + rows_per_strip]
        pred = block.copy()
        np.subtract(block[:, 1:], block[:, :-1], out=pred[:, 1:])  # wraps modulo 2**bits
        return zlib.compress(pred.tobytes(), level)

    strips = [strip(y) for y in range(0, h, rows_per_strip)]
    offsets, pos = [], 0
    for s in strips:
        offsets.append(pos)  # relative: Pillow's IFD writer adds the position after the IFD
        pos += len(s)
    if pos > 0xF0000000:
        raise OSError("image too large for a classic TIFF (4 GB)")

    def build(with_exif: bool) -> TiffImagePlugin.ImageFileDirectory_v2:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
        if with_exif and exif is not None:
            _exif_into_ifd(ifd, exif)
        ifd[256] = w
        ifd[257] = h
        ifd[258] = (bits,) * channels
        ifd[259] = 8  # Adobe Deflate
        ifd[262] = 1 if gray else 2  # BlackIsZero / RGB
        ifd[273] = tuple(offsets)
        ifd[277] = channels
        ifd[278] = rows_per_strip
        ifd[279] = tuple(len(s) for s in strips)
        ifd[284] = 1  # chunky
        ifd[317] = 2  # horizontal differencing
        if has_alpha:
            ifd[338] = (2,)  # unassociated alpha
        ifd[339] = (1,) * channels  # unsigned integer samples
        if dpi:
            ifd[282] = _rational(dpi[0])
            ifd[283] = _rational(dpi[1])
            ifd[296] = 2  # inch
        if icc:
            ifd[_TAG_ICC] = icc
        return ifd

    ifd = build(True)
    if exif is not None:
        try:
            ifd.tobytes(8)
        except Exception as exc:  # noqa: BLE001
            log.warning("EXIF could not be encoded into the TIFF and is not written (%s)", exc)
            ifd = build(False)
    ifd.save(fp)
    for s in strips:
        fp.write(s)
