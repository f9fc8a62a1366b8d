"""Camera RAW files (.CR2 .CR3 .NEF .ARW .RAF .ORF .RW2 .DNG .PEF ...), developed with LibRaw through rawpy.

What the development does, in one place (the app's tooltip, ``mlrn upscale --help`` and docs/formats.md
say the same): the camera's own white balance (as shot), LibRaw's AHD demosaicing, full resolution, 16 bits
per channel, no automatic brightening (the exposure is the camera's), highlights clipped at the sensor's
white level, the colour space's tone curve (sRGB by default; Adobe RGB and ProPhoto RGB on request) with the
matching ICC profile embedded, and the camera's orientation applied to the pixels. It does **not** reduce
noise, correct lenses (distortion, vignetting, chromatic aberration), sharpen, or apply a camera profile or
look: the result is a neutral, linear-exposure development, the lossless input the paper model is made for.

The RAW's EXIF (camera, lens, exposure, date, GPS), XMP and IPTC are read with pyexiv2 and travel with the
picture; the writer resets the orientation and sets the new size as for any photo. The embedded preview
(:func:`embedded_preview`) is what the app shows while the development runs.

Memory: the file's declared size is checked against :data:`mlrn_core.base.MAX_IMAGE_PIXELS` before
LibRaw unpacks anything, and the file's own bytes are read once (RAW files are tens of megabytes).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from mlrn_core.imageio import base, exiv

try:  # LibRaw's Python binding: a dependency; without it RAW files are refused with advice
    import rawpy
except ImportError:  # pragma: no cover - kept optional for minimal installs
    rawpy = None

log = logging.getLogger(__name__)

#: Output colour spaces of a development: key -> what people read.
COLOUR_SPACES: dict[str, str] = {"srgb": "sRGB", "adobe": "Adobe RGB (1998)", "prophoto": "ProPhoto RGB"}
DEFAULT_COLOUR_SPACE = "srgb"
#: The development in a phrase (batch preview, captions).
DEVELOPED = "RAW, developed with camera white balance"
#: The development in a sentence (tooltips, help, docs).
DEVELOPMENT = (
    "camera RAW files are developed with LibRaw: the camera's white balance, full resolution, 16 bits per "
    "channel, no automatic brightening, highlights clipped, the sRGB tone curve (or Adobe RGB / ProPhoto RGB) "
    "with its ICC profile, orientation applied; no noise reduction, lens correction or sharpening"
)
INSTALL_ADVICE = (
    "camera RAW files need rawpy (LibRaw), which is not installed: 'pip install rawpy', or export the photo "
    "from your RAW developer as a 16-bit TIFF and upscale that"
)

# LibRaw's tone curve parameters (power, toe slope) per colour space, and the primaries of each (CIE xy of
# red, green, blue and the white point) from which the embedded ICC profile is built.
_GAMMA = {"srgb": (2.4, 12.92), "adobe": (563 / 256, 0.0), "prophoto": (1.8, 0.0)}
_D65 = (0.3127, 0.3290)
_D50 = (0.3457, 0.3585)
_PRIMARIES = {
    "adobe": ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06), _D65),
    "prophoto": ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001), _D50),
}
# LibRaw's "flip" -> the EXIF orientation that puts the pixels upright
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
# IFD0 tags of a RAW that describe the photo (the rest describe the sensor data: CFA, levels, matrices)
_IFD0_KEPT = frozenset(
    {"Make", "Model", "Software", "DateTime", "Artist", "Copyright", "ImageDescription", "HostComputer"}
)
_PREVIEW_SIDE = 2048  # the embedded preview is decoded at about screen size (JPEG draft mode)


def available() -> bool:
    """True when RAW files can be developed here (rawpy is installed)."""
    return rawpy is not None


def develop(path: str | os.PathLike[str], data: bytes | None = None, colour_space: str = DEFAULT_COLOUR_SPACE):
    """The RAW file at ``path`` (its bytes ``data`` when already read) developed into a 16-bit
    :class:`~mlrn_core.base.Picture` as the module docstring says. Raises ImageIOError naming the file."""
    p = Path(path)
    if rawpy is None:
        raise base.ImageIOError(p, INSTALL_ADVICE)
    if colour_space not in COLOUR_SPACES:
        raise ValueError(f"colour space {colour_space!r}: use one of {', '.join(COLOUR_SPACES)}")
    if data is None:
        data = base._read_file_bytes(p)
    raw = _open(p, data)
    try:
        try:
            raw.unpack()
            rgb16 = raw.postprocess(
                use_camera_wb=True,
                use_auto_wb=False,
                output_bps=16,
                no_auto_bright=True,
                half_size=False,
                user_flip=None,
                gamma=_GAMMA[colour_space],
                output_color=_RAWPY_SPACES()[colour_space],
            )
        except MemoryError:
            raise base.ImageIOError(p, "not enough memory to develop the RAW file") from None
        except Exception as exc:  # noqa: BLE001 - LibRaw's errors become one clear message
            raise base.ImageIOError(p, _libraw_reason(exc)) from None
    finally:
        raw.close()
    rgb = np.empty(rgb16.shape, np.float32)
    np.multiply(rgb16, np.float32(1 / 65535), out=rgb, casting="unsafe")
    del rgb16
    xmp, iptc = exiv._read_xmp_iptc(p, data)
    return base.Picture(
        rgb=rgb,
        alpha=None,
        bit_depth=16,
        grayscale=False,
        icc_profile=icc_profile(colour_space),
        exif=_exif_of(p, data),
        dpi=None,
        source_format="raw",
        source_mode="RAW",
        path=p,
        xmp=xmp,
        iptc=iptc,
    )


@dataclass(frozen=True)
class Preview:
    """The camera's own preview of a RAW file: ``rgb`` upright HxWx3 uint8 (about screen size), and the size
    (``width`` x ``height``, upright) of the picture :func:`develop` will make."""

    rgb: np.ndarray
    width: int
    height: int


def embedded_preview(path: str | os.PathLike[str]) -> Preview | None:
    """The preview inside the RAW file at ``path``, or None when there is none or it cannot be read:
    something to show at once while :func:`develop` runs (it reads the file's header and preview only)."""
    p = Path(path)
    if rawpy is None:
        return None
    try:
        data = base._read_file_bytes(p)
        raw = _open(p, data)
        try:
            sizes = raw.sizes
            flip = int(sizes.flip)
            width, height = (sizes.height, sizes.width) if flip in (5, 6) else (sizes.width, sizes.height)
            thumb = raw.extract_thumb()
        finally:
            raw.close()
        if thumb.format == rawpy.ThumbFormat.JPEG:
            with Image.open(io.BytesIO(thumb.data)) as img:
                if img.width * img.height > base.MAX_IMAGE_PIXELS:
                    return None
                img.draft("RGB", (_PREVIEW_SIDE, _PREVIEW_SIDE))
                arr = np.asarray(img.convert("RGB"))
        else:
            arr = np.asarray(thumb.data)
            if arr.ndim != 3 or arr.shape[2] != 3:
                return None
            arr = arr.astype(np.uint8) if arr.dtype == np.uint8 else (arr >> 8).astype(np.uint8)
    except Exception as exc:  # noqa: BLE001 - no preview is no loss: the development follows
        log.debug("%s: no embedded preview (%s)", p.name, exc)
        return None
    rgb = np.ascontiguousarray(base._apply_orientation(arr, _FLIP_TO_ORIENTATION.get(flip, 1)))
    return Preview(rgb, int(width), int(height))


def _open(p: Path, data: bytes):
    """A rawpy.RawPy on ``data`` whose declared size has been checked (nothing is unpacked yet)."""
    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
        sizes = raw.sizes
        base.check_pixel_limit(p, int(sizes.raw_width), int(sizes.raw_height))
    except base.ImageIOError:
        raw.close()
        raise
    except Exception as exc:  # noqa: BLE001
        raw.close()
        raise base.ImageIOError(p, _libraw_reason(exc)) from None
    return raw


def _libraw_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("LibRawFileUnsupportedError", "LibRawIOError") or "unsupported" in str(exc).lower():
        return (
            "not a camera RAW file LibRaw can read (unknown camera, damaged or not a RAW file at all): open it "
            "in your RAW developer and export a 16-bit TIFF"
        )
    if name in ("LibRawDataError", "LibRawUnspecifiedError") or "data" in str(exc).lower():
        return "the RAW file is damaged or truncated (its sensor data cannot be read)"
    if name == "LibRawTooBigError":
        return "the RAW file is too large to develop here"
    return f"the RAW file cannot be developed ({name}: {exc})"


@functools.lru_cache(maxsize=1)
def _RAWPY_SPACES() -> dict[str, object]:  # noqa: N802 - a table, built once rawpy is known to be there
    return {"srgb": rawpy.ColorSpace.sRGB, "adobe": rawpy.ColorSpace.Adobe, "prophoto": rawpy.ColorSpace.ProPhoto}


# --------------------------------------------------------------------------------------------------------
# EXIF from the RAW container
# --------------------------------------------------------------------------------------------------------


def _exif_of(p: Path, data: bytes) -> bytes | None:
    """The RAW's photo EXIF (camera, lens, exposure, date, GPS) as standard EXIF bytes, or None.

    exiv2 reads every RAW container; its tags are written into an empty JPEG in memory, which gives the
    same EXIF block a camera JPEG carries, so the writer treats it as any photo's (orientation reset, new
    size). Sensor-data tags (CFA, levels, colour matrices) and maker notes are left out."""
    if exiv.pyexiv2 is None:
        return None
    try:
        with exiv._exiv2_lock:
            meta = exiv.pyexiv2.ImageData(data)
            try:
                tags = meta.read_exif() or {}
            finally:
                meta.close()
        kept = {k: v for k, v in tags.items() if _photo_tag(k) and isinstance(v, str)}
        if not kept:
            return None
        return _exif_block(kept)
    except Exception as exc:  # noqa: BLE001 - damaged metadata must not make the photo unreadable
        log.warning("%s: the RAW's EXIF could not be read and is not kept (%s)", p.name, exc)
        return None


def _photo_tag(key: str) -> bool:
    group, _, name = key.partition(".")[2].partition(".")
    if group == "Photo":
        return name != "MakerNote"  # the camera's private block, meaningless away from its RAW
    if group == "GPSInfo":
        return True
    return group == "Image" and name in _IFD0_KEPT


def _exif_block(tags: dict[str, str]) -> bytes | None:
    """EXIF bytes holding ``tags`` (exiv2 keys and their text values), written by exiv2 into a blank JPEG.
    A tag exiv2 refuses is left out rather than losing the others."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    with exiv._exiv2_lock:
        meta = exiv.pyexiv2.ImageData(buf.getvalue())
        try:
            try:
                meta.modify_exif(tags)
            except Exception:  # noqa: BLE001 - one value exiv2 cannot convert: keep the rest
                for key, value in tags.items():
                    try:
                        meta.modify_exif({key: value})
                    except Exception:  # noqa: BLE001
                        log.debug("EXIF tag %s=%r not kept", key, value)
            jpeg = meta.get_bytes()
        finally:
            meta.close()
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.info.get("exif") or None


# --------------------------------------------------------------------------------------------------------
# ICC profiles of the output colour spaces
# --------------------------------------------------------------------------------------------------------


@functools.cache
def icc_profile(colour_space: str) -> bytes:
    """The ICC profile embedded in a development in ``colour_space``: littleCMS's own sRGB, and for Adobe RGB
    and ProPhoto RGB a matrix/TRC profile built here from the standard primaries (adapted to D50 with the
    Bradford transform, as ICC requires) and the same tone curve LibRaw applies."""
    if colour_space == "srgb":
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    red, green, blue, white = _PRIMARIES[colour_space]
    return _matrix_trc_profile(
        f"MLRN Studio {COLOUR_SPACES[colour_space]}", _rgb_to_xyz_d50(red, green, blue, white), _GAMMA[colour_space][0]
    )


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _rgb_to_xyz_d50(red, green, blue, white) -> np.ndarray:
    """3x3 matrix (columns: the XYZ of R, G and B at full scale) of an RGB space, adapted to D50."""
    prim = np.stack([_xyz(red), _xyz(green), _xyz(blue)], axis=1)
    m = prim * np.linalg.solve(prim, _xyz(white))
    if white == _D50:
        return m
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    cone = (bradford @ _xyz(_D50)) / (bradford @ _xyz(white))
    adapt = np.linalg.solve(bradford, np.diag(cone) @ bradford)
    return adapt @ m


def _matrix_trc_profile(description: str, rgb_to_xyz: np.ndarray, gamma: float) -> bytes:
    """A minimal ICC v2 display-class RGB profile: colorants, D50 white point and a pure-power tone curve."""

    def s15f16(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz_tag(v) -> bytes:
        return b"XYZ " + b"\0" * 4 + b"".join(s15f16(c) for c in v)

    def text_desc(text: str) -> bytes:
        ascii_ = text.encode("ascii") + b"\0"
        return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 12 + b"\0" * 67

    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0" * 2
    tags = [
        (b"desc", text_desc(description)),
        (b"cprt", b"text" + b"\0" * 4 + b"No copyright, use freely\0"),
        (b"wtpt", xyz_tag(_xyz(_D50) * np.array([1, 1, 1]))),
        (b"rXYZ", xyz_tag(rgb_to_xyz[:, 0])),
        (b"gXYZ", xyz_tag(rgb_to_xyz[:, 1])),
        (b"bXYZ", xyz_tag(rgb_to_xyz[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    shared: dict[bytes, int] = {}
    for sig, payload in tags:
        if payload not in shared:
            body += b"\0" * (-len(body) % 4)
            shared[payload] = offset + len(body)
            body += payload
        table += sig + struct.pack(">II", shared[payload], len(payload))
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 4  # primary platform
        + b"\0" * 4  # flags
        + b"\0" * 8  # device manufacturer, model
        + b"\0" * 8  # attributes
        + struct.pack(">I", 0)  # perceptual intent
        + s15f16(0.9642)
        + s15f16(1.0)
        + s15f16(0.8249)
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body
