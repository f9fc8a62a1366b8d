""":func:`write_image`: the pixels and metadata an output format can hold, then the atomic writer (a
temporary file, metadata added in place, then linked or renamed to its name)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mlrn_core.atomic import atomic_open
from mlrn_core.imageio.base import (
    _EXISTS_REASON,
    ImageIOError,
    OutputExistsError,
    Picture,
    _os_reason,
)
from mlrn_core.imageio.encoders import _ENCODERS, _Job
from mlrn_core.imageio.exif import _exif_payload, _prepare_exif
from mlrn_core.imageio.exiv import _write_exif_into_tiff, _write_xmp_iptc
from mlrn_core.imageio.formats import (
    _ALPHA_FORMATS,
    _SIXTEEN_BIT_FORMATS,
    DEFAULT_QUALITY,
    SUPPORTED_EXTENSIONS,
    output_format_for,
)
from mlrn_core.imageio.pixels import _float_to_int

log = logging.getLogger("mlrn_core.imageio")


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
        if out_fmt == "tiff" and exif is not None:
            exif_data = _exif_payload(exif, out_fmt, target)
            if exif_data:
                _write_exif_into_tiff(tmp, exif_data)
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
