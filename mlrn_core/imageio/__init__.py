"""Image input/output for mlrn_core: the only package that talks to Pillow, OpenCV, tifffile, pyexiv2 and
LibRaw for files, and the only place that turns OpenCV's BGR files into RGB. Every public name is importable
from ``mlrn_core.imageio``; its modules:

- ``base``: the :class:`Picture` type, the one error type, the pixel limit, safe file reading, OS error wording;
- ``formats``: the extension and format tables (what is read, what is written, "the same format");
- ``read``: :func:`read_image` and the header checks made before anything is decoded;
- ``pixels``: pixels from Pillow and OpenCV into a :class:`Picture` and back to integers;
- ``png``: PNG chunks (damaged extras, colour chunks, the 16-bit encoder's metadata);
- ``exif``: EXIF and DPI read with Pillow, and the EXIF an output gets (orientation reset, size updated);
- ``exiv``: XMP and IPTC read and written with pyexiv2, and EXIF written into TIFF files;
- ``encoders`` and ``write``: one encoder per output format and the atomic :func:`write_image`;
- ``tiff``, ``heif``, ``raw``: what Pillow cannot decode (tifffile, pillow-heif, LibRaw through rawpy).

``read_image`` turns PNG, JPEG, TIFF, WebP, BMP, HEIC, AVIF and camera RAW files (8 or 16 bit; gray,
gray+alpha, RGB, RGBA, palette, 1-bit and CMYK) into a :class:`Picture`: float32 RGB in [0, 1] (EXIF
orientation already applied to the pixels), optional float32 alpha, and the metadata a photographer expects to
keep (bit depth, grayscale-ness, ICC profile, EXIF, DPI, XMP, IPTC). ``write_image`` writes atomically
(temporary ``.NAME.RANDOM.part`` file in the target folder, fsync, then a link or ``os.replace``; nothing
partial is ever left behind) and refuses to overwrite the picture's own source file. What is kept per output
format: PNG 8/16 bit keeps alpha, grayscale, ICC (iCCP), DPI (pHYs) and EXIF (eXIf); TIFF 8/16 bit (written
by tifffile: Deflate with the horizontal predictor) keeps alpha (unassociated), grayscale, ICC, DPI and EXIF
(IFD0's descriptive tags, the Exif sub-IFD with its Interop IFD and the GPS IFD, written by libexiv2); JPEG
(8 bit, quality 95 and 4:4:4 chroma by default) keeps ICC, DPI and EXIF but drops alpha; WebP (8 bit) keeps
alpha, ICC and EXIF but has no DPI field and no grayscale mode; BMP (8 bit) keeps DPI only. On write, EXIF
Orientation is reset to 1 (pixels are already upright), PixelXDimension/PixelYDimension (and IFD0
ImageWidth/ImageLength when present) are set to the written size, and the embedded EXIF thumbnail is dropped
because it would be stale. XMP and IPTC go into JPEG, PNG, TIFF, WebP, HEIC and AVIF outputs; WebP, HEIC
and AVIF have no IPTC block, so there IPTC fields that the XMP lacks are added to the XMP.

Hostile inputs: the pixel count is checked from the header before anything is decoded (images over
:data:`MAX_IMAGE_PIXELS` are refused, never just warned about); camera RAW files without rawpy get what to
do; animated files say that only the first frame is used. Outputs are created only if absent unless
``overwrite=True``, so two runs writing one name never lose either result. While it is written, a temporary
file is locked; :func:`remove_stale_parts` deletes those left by a killed run.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch os.link/os.replace through this name
import zlib  # noqa: F401 - tests make zlib fail through this name

import cv2  # noqa: F401 - tests make OpenCV's encoder fail through this name

from mlrn_core.atomic import remove_stale_parts
from mlrn_core.imageio import base, exiv, heif, tiff
from mlrn_core.imageio.base import (
    MAX_IMAGE_PIXELS,
    ImageIOError,
    OutputExistsError,
    Picture,
    _os_reason,
    check_pixel_limit,
    not_a_regular_file,
)
from mlrn_core.imageio.encoders import _ENCODERS
from mlrn_core.imageio.exif import _orientation_of
from mlrn_core.imageio.exiv import _write_xmp_iptc
from mlrn_core.imageio.formats import (
    DEFAULT_QUALITY,
    FORMAT_EXTENSIONS,
    HEIF_AVAILABLE,
    RAW_ADVICE,
    RAW_EXTENSIONS,
    SAME_FORMAT_AS,
    SUPPORTED_EXTENSIONS,
    is_camera_raw,
    is_readable,
    is_supported,
    output_format_for,
    raw_available,
    readable_extensions,
    same_extension,
    same_format,
)
from mlrn_core.imageio.pixels import _float_to_int, picture_from_array, picture_to_uint8_rgb
from mlrn_core.imageio.png import _png_chunks
from mlrn_core.imageio.read import declared_size, read_image, read_image_for_display
from mlrn_core.imageio.write import write_image

__all__ = [
    "DEFAULT_QUALITY",
    "FORMAT_EXTENSIONS",
    "HEIF_AVAILABLE",
    "MAX_IMAGE_PIXELS",
    "RAW_ADVICE",
    "RAW_EXTENSIONS",
    "SAME_FORMAT_AS",
    "SUPPORTED_EXTENSIONS",
    "ImageIOError",
    "OutputExistsError",
    "Picture",
    "base",
    "check_pixel_limit",
    "declared_size",
    "exiv",
    "heif",
    "is_camera_raw",
    "is_readable",
    "is_supported",
    "not_a_regular_file",
    "output_format_for",
    "picture_from_array",
    "picture_to_uint8_rgb",
    "raw_available",
    "read_image",
    "read_image_for_display",
    "readable_extensions",
    "remove_stale_parts",
    "same_extension",
    "same_format",
    "tiff",
    "write_image",
    # internals the tests and benchmarks reach
    "_ENCODERS",
    "_float_to_int",
    "_orientation_of",
    "_os_reason",
    "_png_chunks",
    "_write_xmp_iptc",
]
