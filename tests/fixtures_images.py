"""Generators for small test images (written with Pillow/OpenCV directly, never with mlrn_core.imageio, so
the reader is checked against files made by other software). Reusable by any test module:

    from tests.fixtures_images import make_fixture_folder
    files = make_fixture_folder(tmp_path)   # dict name -> Path
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

W, H = 40, 30  # stored size of the fixtures (non-square so rotations are visible)
ARTIST = "Ada Photographer"
DATETIME_ORIGINAL = "2023:07:14 18:30:05"
MARKER_RGB = (255, 0, 0)  # 8x8 block at the stored top-left corner of the rotated fixture

#: Names of the fixtures that must read without error / must raise ImageIOError.
GOOD_FIXTURES = (
    "exif_rotated", "icc_jpeg", "png16_rgb", "tiff16_rgb", "rgba_png", "gray_png", "palette_png",
    "palette_trns_png", "cmyk_jpeg", "nested", "unicode_name", "webp", "bmp",
)  # fmt: skip
BAD_FIXTURES = ("truncated_jpeg", "empty", "fake_png")


@functools.lru_cache(maxsize=1)
def srgb_icc_bytes() -> bytes:
    """A real sRGB ICC profile (a few hundred bytes); made once, since its header holds the creation time."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gray_icc_bytes() -> bytes:
    """The sRGB profile relabelled as a GRAY profile (header bytes 16-19). Only for byte-equality tests:
    it is not a usable profile for colour conversion."""
    icc = srgb_icc_bytes()
    return icc[:16] + b"GRAY" + icc[20:]


def exif_bytes(
    orientation: int | None = None,
    artist: str = ARTIST,
    datetime_original: str = DATETIME_ORIGINAL,
    pixel_size: tuple[int, int] | None = None,
) -> bytes:
    """EXIF block (with 'Exif\\0\\0' header) holding Orientation, Artist and DateTimeOriginal."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x013B] = artist
    sub: dict[int, object] = {0x9003: datetime_original}
    if pixel_size is not None:
        sub[0xA002], sub[0xA003] = pixel_size
    exif[0x8769] = sub
    return exif.tobytes()


def gradient_rgb8(h: int = H, w: int = W) -> np.ndarray:
    """Smooth uint8 RGB gradient (compresses well in JPEG, so lossy round trips stay close)."""
    y, x = np.mgrid[0:h, 0:w]
    r = x * 255 // max(w - 1, 1)
    g = y * 255 // max(h - 1, 1)
    b = (x + y) * 255 // max(w + h - 2, 1)
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def rotated_marker_rgb8(h: int = H, w: int = W) -> np.ndarray:
    """Mid-gray picture with a red 8x8 block in the stored top-left corner."""
    arr = np.full((h, w, 3), 128, np.uint8)
    arr[:8, :8] = MARKER_RGB
    return arr


def pattern16(h: int = H, w: int = W, channels: int = 3, seed: int = 16) -> np.ndarray:
    """uint16 values that are NOT multiples of 257 (i.e. not representable in 8 bit), plus 0 and 65535."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 65536, size=(h, w, channels), dtype=np.uint32)
    arr[arr % 257 == 0] += 1
    arr = np.minimum(arr, 65534).astype(np.uint16)
    arr.flat[0] = 0
    arr.flat[-1] = 65535
    return arr[:, :, 0] if channels == 1 else arr


def soft_alpha(h: int = H, w: int = W) -> np.ndarray:
    """uint8 horizontal alpha gradient 0..255."""
    return np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))


def png_with_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Insert ancillary chunks right after IHDR of an existing PNG."""
    pos = 8 + 8 + 13 + 4
    extra = b"".join(
        struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)
        for ctype, data in chunks
    )
    return png[:pos] + extra + png[pos:]


def _to_bgr(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(arr)


def cv2_png16(rgb16: np.ndarray) -> bytes:
    """Encode an RGB(A)/gray uint16 array as PNG with OpenCV (channel order converted here)."""
    ok, buf = cv2.imencode(".png", _to_bgr(rgb16))
    assert ok
    return buf.tobytes()


def cv2_tiff16(rgb16: np.ndarray) -> bytes:
    """Encode an RGB(A)/gray uint16 array as TIFF with OpenCV."""
    ok, buf = cv2.imencode(".tif", _to_bgr(rgb16))
    assert ok
    return buf.tobytes()


def _jpeg_bytes(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, subsampling=0, **kw)
    return buf.getvalue()


def make_fixture_folder(dir: Path) -> dict[str, Path]:  # noqa: A002 - name fixed by the brief
    """Write every fixture into ``dir`` and return name -> path (see GOOD_FIXTURES / BAD_FIXTURES)."""
    dir = Path(dir)  # noqa: A001
    dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, filename: str, data: bytes) -> None:
        path = dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = path

    rgb = Image.fromarray(gradient_rgb8())
    icc = srgb_icc_bytes()

    marker = Image.fromarray(rotated_marker_rgb8())
    put(
        "exif_rotated",
        "rotated_orientation6.jpg",
        _jpeg_bytes(marker, exif=exif_bytes(6, pixel_size=(W, H)), dpi=(300, 300)),
    )
    put("icc_jpeg", "with_icc.jpg", _jpeg_bytes(rgb, icc_profile=icc, dpi=(240, 240)))
    put("png16_rgb", "rgb16.png", cv2_png16(pattern16()))
    put("tiff16_rgb", "rgb16.tif", cv2_tiff16(pattern16()))

    rgba = np.dstack([gradient_rgb8(), soft_alpha()])
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    put("rgba_png", "soft_alpha.png", buf.getvalue())

    buf = io.BytesIO()
    Image.fromarray(gradient_rgb8()[:, :, 1]).save(buf, format="PNG", dpi=(72, 72))
    put("gray_png", "gray.png", buf.getvalue())

    pal = rgb.quantize(colors=16)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    put("palette_png", "palette.png", buf.getvalue())
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=0)
    put("palette_trns_png", "palette_transparent.png", buf.getvalue())

    cmyk = Image.new("CMYK", (W, H), (255, 0, 0, 0))  # pure cyan
    put("cmyk_jpeg", "cmyk.jpg", _jpeg_bytes(cmyk))

    full = _jpeg_bytes(rgb)
    put("truncated_jpeg", "truncated.jpg", full[: len(full) // 2])
    put("empty", "empty.png", b"")
    put("fake_png", "notes.png", b"This is a text file, not a picture.\n" * 4)

    buf = io.BytesIO()
    Image.fromarray(gradient_rgb8()[::-1]).save(buf, format="PNG")
    put("nested", "sub/deeper/nested.png", buf.getvalue())

    put("unicode_name", "Été à Zürich 01.jpg", _jpeg_bytes(rgb, exif=exif_bytes(1)))

    buf = io.BytesIO()
    rgb.save(buf, format="WEBP", quality=95, exif=exif_bytes(1), icc_profile=icc)
    put("webp", "picture.webp", buf.getvalue())

    buf = io.BytesIO()
    rgb.save(buf, format="BMP", dpi=(150, 150))
    put("bmp", "picture.bmp", buf.getvalue())
    return files
