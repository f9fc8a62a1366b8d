"""Reading: :func:`read_image` and :func:`read_image_for_display`, the header checks made before anything is
decoded (declared size, a file with more bytes than its pixels, damaged JPEGs), and the decoder choice."""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mlrn_core.imageio import heif, tiff
from mlrn_core.imageio.base import (
    ImageIOError,
    Picture,
    _apply_orientation,
    _read_file_bytes,
    _too_large_reason,
    check_pixel_limit,
    not_a_regular_file,
)
from mlrn_core.imageio.exif import _orientation_of, _read_dpi, _read_exif_bytes
from mlrn_core.imageio.exiv import _read_xmp_iptc
from mlrn_core.imageio.formats import (
    _GRAY_MODES,
    _PIL_FORMATS,
    _PIL_OPEN_FORMATS,
    HEIF_AVAILABLE,
    RAW_ADVICE,
    is_camera_raw,
    raw_available,
)
from mlrn_core.imageio.pixels import (
    _decode_cv2,
    _decode_reason,
    _int_to_float,
    _is_sixteen_bit,
    _pillow_pixels,
    _split_channels,
    _tiff_alpha_is_associated,
    _tiff_decoders_upright,
    _unpremultiply,
)
from mlrn_core.imageio.png import _note_png_colour_chunks, _png_data_problem, _png_without_unreadable_extras

log = logging.getLogger("mlrn_core.imageio")


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
