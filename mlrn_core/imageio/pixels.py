"""Pixels between files and :class:`Picture`: Pillow and OpenCV decoding into float32 RGB (+ alpha), and
back to 8/16-bit integers for the encoders."""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from mlrn_core.imageio.base import (
    ImageIOError,
    Picture,
    _apply_orientation,
)
from mlrn_core.imageio.exif import _TAG_ORIENTATION
from mlrn_core.imageio.formats import _GRAY_MODES

log = logging.getLogger("mlrn_core.imageio")


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


def _decode_reason(exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "truncated" in low or "incomplete" in low or "premature" in low or "broken data stream" in low:
        return "file is truncated"
    if "could not create decoder" in low or "decoder error" in low or "broken png" in low:
        return "file is damaged or truncated"
    return f"file is damaged or cannot be decoded ({type(exc).__name__}: {text})"


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
