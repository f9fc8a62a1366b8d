"""Small camera RAW files made here: DNGs with a real Bayer mosaic and the tags LibRaw needs (written with
tifffile, never with mlrn_core, so the reader is checked against a file made by other software).

The scene is known: a neutral grey patch (left half) and a coloured patch (right half). The sensor values are
what a camera would record under an illuminant whose white the sensor sees as ``neutral`` (R, G, B); the DNG's
AsShotNeutral says so, and a development with the camera's white balance must give the grey back as grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

CAMERA_MAKE = "Testcam"
CAMERA_MODEL = "Testcam RX-1"
EXPOSURE_TIME = "1/125"
F_NUMBER = "28/10"
DATETIME_ORIGINAL = "2026:12:01 10:11:12"
GREY = 0.4  # linear scene value of the grey patch
COLOUR = (0.5, 0.25, 0.12)  # linear scene RGB of the coloured patch (in gamut everywhere)
BLACK, WHITE = 256, 4095  # the sensor's black and white levels (12 bit)
#: The camera's colour matrix (CIE XYZ, D65 -> camera RGB): this camera's sensor sees linear sRGB, so a
#: development in sRGB gives the scene's colours back.
XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])


def srgb_encode(linear):
    """The sRGB tone curve."""
    x = np.asarray(linear, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)


def _rationals(values) -> list[int]:
    out: list[int] = []
    for v in values:
        out += [int(round(v * 10000)), 10000]
    return out


def scene(h: int, w: int) -> np.ndarray:
    """The linear scene (HxWx3 float): grey left half, coloured right half."""
    rgb = np.empty((h, w, 3))
    rgb[:, : w // 2] = GREY
    rgb[:, w // 2 :] = COLOUR
    return rgb


def make_dng(
    path: Path,
    h: int = 64,
    w: int = 96,
    neutral: tuple[float, float, float] = (0.5, 1.0, 0.8),
    orientation: int = 1,
    preview: bool = True,
    exif: bool = True,
    linear: np.ndarray | None = None,
) -> Path:
    """Write a DNG of ``h`` x ``w`` sensor pixels (RGGB mosaic) at ``path``; IFD0 holds an 8-bit RGB preview
    (a quarter of the size, the brightness a viewer would show) when ``preview``, as cameras write them.
    ``linear``: the scene (HxWx3 linear sRGB in [0, 1]) instead of the two patches; it sets ``h`` and ``w``."""
    if linear is not None:
        h, w = linear.shape[:2]
    shown = scene(h, w) if linear is None else linear
    cam = shown * np.asarray(neutral, dtype=np.float32)  # the camera's view: white is recorded as `neutral`
    levels = (BLACK + np.clip(cam, 0, 1) * (WHITE - BLACK)).round().astype(np.uint16)
    cfa = np.empty((h, w), np.uint16)
    cfa[0::2, 0::2] = levels[0::2, 0::2, 0]
    cfa[0::2, 1::2] = levels[0::2, 1::2, 1]
    cfa[1::2, 0::2] = levels[1::2, 0::2, 1]
    cfa[1::2, 1::2] = levels[1::2, 1::2, 2]
    describe = [
        (271, "s", 0, CAMERA_MAKE, True),
        (272, "s", 0, CAMERA_MODEL, True),
        (274, 3, 1, orientation, True),
        (50706, 1, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, f"{CAMERA_MAKE} {CAMERA_MODEL}", True),  # UniqueCameraModel
        (50721, 10, 9, _rationals(XYZ_TO_LINEAR_SRGB.ravel()), True),  # ColorMatrix1: the camera sees sRGB
        (50778, 3, 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, 5, 3, _rationals(neutral), True),  # AsShotNeutral
    ]
    sensor = [
        (33421, 3, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, 1, 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50714, 3, 1, BLACK, True),  # BlackLevel
        (50717, 3, 1, WHITE, True),  # WhiteLevel
    ]
    with tifffile.TiffWriter(path) as tif:
        if preview:
            small = (np.clip(shown[::4, ::4], 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)
            tif.write(small, photometric="rgb", subfiletype=1, subifds=1, extratags=describe, metadata=None)
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=sensor, metadata=None)
        else:
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=describe + sensor, metadata=None)
    if exif:
        import pyexiv2

        meta = pyexiv2.Image(str(path))
        try:
            meta.modify_exif(
                {
                    "Exif.Photo.ExposureTime": EXPOSURE_TIME,
                    "Exif.Photo.FNumber": F_NUMBER,
                    "Exif.Photo.DateTimeOriginal": DATETIME_ORIGINAL,
                    "Exif.Photo.PixelXDimension": str(w),
                    "Exif.Photo.PixelYDimension": str(h),
                }
            )
        finally:
            meta.close()
    return path
