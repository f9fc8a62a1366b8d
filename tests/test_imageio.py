"""Tests for mlrn_core.imageio: reading, writing, metadata and failure modes."""

from __future__ import annotations

import io
import logging
import os
import pickle
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from mlrn_core import imageio
from mlrn_core.imageio import ImageIOError, Picture, picture_from_array, read_image, write_image
from tests.fixtures_images import (
    ARTIST,
    BAD_FIXTURES,
    DATETIME_ORIGINAL,
    GOOD_FIXTURES,
    MARKER_RGB,
    H,
    W,
    cv2_png16,
    exif_bytes,
    gradient_rgb8,
    gray_icc_bytes,
    make_fixture_folder,
    pattern16,
    png_with_chunks,
    soft_alpha,
    srgb_icc_bytes,
)

TAG_ORIENTATION, TAG_ARTIST, TAG_EXIF_IFD = 0x0112, 0x013B, 0x8769
TAG_DATETIME_ORIGINAL, TAG_PIXEL_X, TAG_PIXEL_Y = 0x9003, 0xA002, 0xA003


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_fixture_folder(tmp_path_factory.mktemp("fixtures"))


def exif_of(picture: Picture) -> Image.Exif:
    exif = Image.Exif()
    assert picture.exif, "picture has no EXIF"
    exif.load(picture.exif)
    return exif


def as16(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 65535).astype(np.uint16)


def as8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)


def no_part_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


# ---------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("name", GOOD_FIXTURES)
def test_good_fixtures_read_as_float_rgb(fixtures: dict[str, Path], name: str) -> None:
    pic = read_image(fixtures[name])
    assert pic.rgb.dtype == np.float32 and pic.rgb.flags.c_contiguous
    assert pic.rgb.ndim == 3 and pic.rgb.shape[2] == 3
    assert float(pic.rgb.min()) >= 0.0 and float(pic.rgb.max()) <= 1.0
    assert pic.path == fixtures[name]
    assert pic.bit_depth in (8, 16)
    if pic.alpha is not None:
        assert pic.alpha.shape == pic.rgb.shape[:2] and pic.alpha.dtype == np.float32


@pytest.mark.parametrize("name", BAD_FIXTURES)
def test_bad_fixtures_raise_imageioerror_naming_the_file(fixtures: dict[str, Path], name: str) -> None:
    with pytest.raises(ImageIOError) as info:
        read_image(fixtures[name])
    assert fixtures[name].name in str(info.value)
    assert info.value.path == fixtures[name]
    assert info.value.reason


def test_error_reasons_are_human(fixtures: dict[str, Path], tmp_path: Path) -> None:
    cases = {
        fixtures["truncated_jpeg"]: "truncated",
        fixtures["empty"]: "empty",
        fixtures["fake_png"]: "not an image",
        tmp_path / "missing.jpg": "not found",
        fixtures["nested"].parent: "directory",
    }
    for path, words in cases.items():
        with pytest.raises(ImageIOError) as info:
            read_image(path)
        assert words in info.value.reason
        assert f"'{path.name}'" in str(info.value)
        assert str(info.value).startswith("cannot read")


def test_truncated_png_8_and_16_bit(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(gradient_rgb8()).save(buf, format="PNG")
    for name, data in [("cut8.png", buf.getvalue()), ("cut16.png", cv2_png16(pattern16()))]:
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageIOError, match=name) as info:
            read_image(path)
        assert "truncated" in info.value.reason or "damaged" in info.value.reason


def test_permission_denied(monkeypatch: pytest.MonkeyPatch, fixtures: dict[str, Path]) -> None:
    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(ImageIOError, match="permission denied") as info:
        read_image(fixtures["bmp"])
    assert "picture.bmp" in str(info.value)


def test_unsupported_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    Image.fromarray(gradient_rgb8()).save(path, format="GIF")
    with pytest.raises(ImageIOError, match="GIF images are not supported"):
        read_image(path)


def test_decompression_bomb(monkeypatch: pytest.MonkeyPatch, fixtures: dict[str, Path]) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40x30 = 1200 > 2 * 100 -> Pillow refuses
    with pytest.raises(ImageIOError, match="too large") as info:
        read_image(fixtures["gray_png"])
    assert "gray.png" in str(info.value)


def test_generous_pixel_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS >= 400_000_000


def test_orientation6_rotates_and_keeps_original_exif(fixtures: dict[str, Path]) -> None:
    pic = read_image(fixtures["exif_rotated"])
    assert (pic.width, pic.height) == (H, W)  # stored 40x30 -> displayed 30x40
    # Orientation 6 = rotate 90 degrees clockwise: the stored top-left block lands top-right.
    top_right = as8(pic.rgb[2, -3])
    assert np.abs(top_right.astype(int) - MARKER_RGB).max() <= 12
    top_left = as8(pic.rgb[2, 2])
    assert np.abs(top_left.astype(int) - 128).max() <= 12
    exif = exif_of(pic)
    assert exif[TAG_ORIENTATION] == 6  # the writer resets it, the reader keeps the source bytes
    assert exif[TAG_ARTIST] == ARTIST


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(stored)
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif_bytes(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert np.array_equal(as8(read_image(path).rgb), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("bits", [8, 16])
def test_a_tiff_orientation_tag_is_applied_exactly_once(tmp_path: Path, orientation: int, bits: int) -> None:
    """Issue 33, item 1: TIFF decoders may turn the pixels upright themselves (Pillow's does); the picture
    must be what the tag says, as for the same pixels and tag in a PNG, never rotated a second time."""
    tifffile = pytest.importorskip("tifffile")
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    png = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(png, exif=exif_bytes(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(png)))
    path = tmp_path / f"o{orientation}_{bits}.tif"
    pixels = stored if bits == 8 else stored.astype(np.uint16) * 257
    tifffile.imwrite(path, pixels, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    for picture in (read_image(path), imageio.read_image_for_display(path)[0]):
        assert picture.bit_depth == bits
        assert np.array_equal(as8(picture.rgb), expected)
    shown = imageio.read_image_for_display(path)[1]
    if bits == 8:
        assert np.array_equal(shown, expected)


def test_display_pixels_are_the_picture_in_8_bit_without_a_float_pass(fixtures: dict[str, Path]) -> None:
    """read_image_for_display: the same picture, plus uint8 pixels exactly equal to it for 8-bit files."""
    for name in GOOD_FIXTURES:
        picture, pixels = imageio.read_image_for_display(fixtures[name])
        plain = read_image(fixtures[name])
        assert np.array_equal(picture.rgb, plain.rgb), name
        assert (picture.alpha is None) == (plain.alpha is None), name
        if picture.bit_depth == 16:
            assert pixels is None, name
            continue
        assert pixels is not None and pixels.dtype == np.uint8 and pixels.flags.c_contiguous, name
        assert np.array_equal(pixels, as8(picture.rgb)), name  # orientation, gray, palette, CMYK, alpha
    _, pixels = imageio.read_image_for_display(fixtures["exif_rotated"])
    assert pixels is not None and pixels.shape[:2] == (W, H)  # stored W x H, shown rotated


@pytest.mark.parametrize("orientation", range(1, 9))
def test_display_pixels_follow_the_orientation(tmp_path: Path, orientation: int) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif_bytes(orientation))
    _, pixels = imageio.read_image_for_display(path)
    assert np.array_equal(pixels, np.asarray(ImageOps.exif_transpose(Image.open(path))))


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_orientation_applied_on_16_bit_path(tmp_path: Path, orientation: int) -> None:
    stored = pattern16(5, 7)
    path = tmp_path / f"o{orientation}_16.png"
    path.write_bytes(png_with_chunks(cv2_png16(stored), [(b"eXIf", exif_bytes(orientation)[6:])]))
    reference = _exif_transposed(stored[:, :, 0], orientation)
    pic = read_image(path)
    assert pic.bit_depth == 16
    assert np.array_equal(as16(pic.rgb[:, :, 0]), reference)


def _exif_transposed(channel: np.ndarray, orientation: int) -> np.ndarray:
    """Pillow's exif_transpose on one 16-bit channel (via mode I;16)."""
    img = Image.fromarray(channel)
    exif = Image.Exif()
    exif[TAG_ORIENTATION] = orientation
    img.info["exif"] = exif.tobytes()
    return np.asarray(ImageOps.exif_transpose(img))


def test_16_bit_png_and_tiff_fixtures_decode_exactly(fixtures: dict[str, Path]) -> None:
    for name in ("png16_rgb", "tiff16_rgb"):
        pic = read_image(fixtures[name])
        assert pic.bit_depth == 16 and not pic.grayscale and pic.alpha is None
        assert np.array_equal(as16(pic.rgb), pattern16()), name
        assert pic.dpi is None  # OpenCV writes no resolution (Pillow would report a bogus (1, 1) for TIFF)


def test_modes_of_fixtures(fixtures: dict[str, Path]) -> None:
    gray = read_image(fixtures["gray_png"])
    assert gray.grayscale and gray.source_mode == "L" and gray.bit_depth == 8
    assert np.array_equal(gray.rgb[:, :, 0], gray.rgb[:, :, 2])
    assert np.array_equal(as8(gray.rgb[:, :, 1]), gradient_rgb8()[:, :, 1])

    rgba = read_image(fixtures["rgba_png"])
    assert rgba.alpha is not None and np.array_equal(as8(rgba.alpha), soft_alpha())
    assert np.array_equal(as8(rgba.rgb), gradient_rgb8())

    pal = read_image(fixtures["palette_png"])
    assert pal.source_mode == "P" and pal.alpha is None and not pal.grayscale
    pal_t = read_image(fixtures["palette_trns_png"])
    assert pal_t.alpha is not None and float(pal_t.alpha.min()) == 0.0 and float(pal_t.alpha.max()) == 1.0

    cmyk = read_image(fixtures["cmyk_jpeg"])
    assert cmyk.source_mode == "CMYK" and cmyk.icc_profile is None
    assert np.abs(as8(cmyk.rgb[5, 5]).astype(int) - (0, 255, 255)).max() <= 3  # pure cyan

    bmp = read_image(fixtures["bmp"])
    assert bmp.source_format == "bmp" and bmp.dpi == (150.0, 150.0)
    assert np.array_equal(as8(bmp.rgb), gradient_rgb8())

    webp = read_image(fixtures["webp"])
    assert webp.source_format == "webp" and webp.icc_profile == srgb_icc_bytes()
    assert exif_of(webp).get_ifd(TAG_EXIF_IFD)[TAG_DATETIME_ORIGINAL] == DATETIME_ORIGINAL


def test_cmyk_with_unusable_profile_falls_back_and_drops_profile(tmp_path: Path) -> None:
    path = tmp_path / "cmyk_rgbprofile.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(path, icc_profile=srgb_icc_bytes())  # wrong profile type
    pic = read_image(path)
    assert pic.icc_profile is None
    assert np.abs(as8(pic.rgb[4, 4]).astype(int) - (255, 0, 255)).max() <= 3  # magenta


def test_one_bit_and_gray_alpha_png(tmp_path: Path) -> None:
    bw = np.zeros((6, 9), bool)
    bw[:, :4] = True
    Image.fromarray(bw).save(tmp_path / "bw.png")
    pic = read_image(tmp_path / "bw.png")
    assert pic.source_mode == "1" and pic.grayscale and pic.bit_depth == 8
    assert pic.rgb[0, 0].tolist() == [1.0, 1.0, 1.0] and pic.rgb[0, 8].tolist() == [0.0, 0.0, 0.0]

    la = np.dstack([np.full((6, 9), 100, np.uint8), np.full((6, 9), 50, np.uint8)])
    Image.fromarray(la).save(tmp_path / "la.png")
    pic = read_image(tmp_path / "la.png")
    assert pic.grayscale and pic.alpha is not None
    assert as8(pic.alpha)[0, 0] == 50 and as8(pic.rgb)[0, 0].tolist() == [100, 100, 100]


def test_float_conversion_is_exact_for_every_integer_value() -> None:
    all16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    pic16 = picture_from_array(all16)
    assert np.array_equal(imageio._float_to_int(pic16.rgb[:, :, 0], np.uint16), all16)
    all8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(imageio._float_to_int(picture_from_array(all8).rgb[:, :, 0], np.uint8), all8)


# ---------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_round_trip_is_exact(tmp_path: Path, ext: str, channels: int) -> None:
    src = pattern16(channels=channels)
    icc = gray_icc_bytes() if channels in (1, 2) else srgb_icc_bytes()
    exif = exif_bytes(6, pixel_size=(W, H))
    pic = replace(picture_from_array(src), icc_profile=icc, dpi=(300.0, 300.0), exif=exif)
    assert pic.bit_depth == 16
    out = write_image(pic, tmp_path / f"c{channels}.{ext}")
    back = read_image(out)
    assert back.bit_depth == 16
    assert np.array_equal(as16(back.rgb), as16(pic.rgb))
    assert (back.alpha is None) == (channels in (1, 3))
    if back.alpha is not None:
        assert np.array_equal(as16(back.alpha), src[:, :, -1])
    if channels == 2 and ext == "tif":  # 16-bit gray+alpha TIFF is written as RGBA (documented) ...
        assert not back.grayscale and back.icc_profile is None  # ... so the gray profile cannot stay
    else:
        assert back.grayscale == (channels in (1, 2))
        assert back.icc_profile == icc
    assert back.dpi == (300.0, 300.0)
    exif = exif_of(back)
    assert exif[TAG_ORIENTATION] == 1
    assert exif[TAG_ARTIST] == ARTIST
    assert exif.get_ifd(TAG_EXIF_IFD)[TAG_DATETIME_ORIGINAL] == DATETIME_ORIGINAL


@pytest.mark.parametrize("depth", [8, 16])
def test_multi_strip_tiff_reads_back_in_pillow_and_opencv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, depth: int
) -> None:
    monkeypatch.setattr(imageio.encoders, "_TIFF_STRIP_BYTES", 500)  # several strips, last one shorter
    src = pattern16(31, 17) if depth == 16 else gradient_rgb8(31, 17)
    out = write_image(picture_from_array(src), tmp_path / f"strips{depth}.tif")
    assert len(Image.open(out).tag_v2[273]) > 3
    assert np.array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[:, :, ::-1], src)
    if depth == 8:
        assert np.array_equal(np.asarray(Image.open(out)), src)
    assert np.array_equal(as16(read_image(out).rgb) if depth == 16 else as8(read_image(out).rgb), src)


def test_16_bit_png_is_valid_for_other_readers(tmp_path: Path) -> None:
    pic = replace(picture_from_array(pattern16()), icc_profile=srgb_icc_bytes(), dpi=(300.0, 300.0))
    pic.exif = exif_bytes(1)
    out = write_image(pic, tmp_path / "valid.png")
    data = out.read_bytes()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded[:, :, ::-1], pattern16())
    img = Image.open(out)
    img.load()  # would raise on a bad CRC / chunk order
    assert img.info["icc_profile"] == srgb_icc_bytes()
    chunk_order = [t for t, _ in imageio._png_chunks(data)]
    assert chunk_order.index(b"iCCP") < chunk_order.index(b"IDAT")
    assert chunk_order.index(b"eXIf") < chunk_order.index(b"IDAT")


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
def test_rgba_soft_alpha_round_trip(fixtures: dict[str, Path], tmp_path: Path, ext: str) -> None:
    pic = read_image(fixtures["rgba_png"])
    back = read_image(write_image(pic, tmp_path / f"alpha.{ext}"))
    assert back.alpha is not None and back.bit_depth == 8
    tol = 1 if ext == "webp" else 0
    assert np.abs(as8(back.alpha).astype(int) - soft_alpha()).max() <= tol
    if ext != "webp":
        assert np.array_equal(as8(back.rgb), gradient_rgb8())


@pytest.mark.parametrize("ext", ["png", "tif", "jpg", "bmp"])
def test_grayscale_round_trip(fixtures: dict[str, Path], tmp_path: Path, ext: str) -> None:
    pic = read_image(fixtures["gray_png"])
    back = read_image(write_image(pic, tmp_path / f"gray.{ext}"))
    assert back.grayscale and back.source_mode == "L" and back.bit_depth == 8
    tol = 2 if ext == "jpg" else 0
    assert np.abs(as8(back.rgb).astype(int) - as8(pic.rgb)).max() <= tol
    assert back.dpi == (72.0, 72.0)


def test_colourised_grayscale_is_written_as_rgb(fixtures: dict[str, Path], tmp_path: Path) -> None:
    pic = read_image(fixtures["gray_png"])
    toned = pic.rgb * np.array([1.0, 0.9, 0.7], np.float32)  # sepia-ish edit
    back = read_image(write_image(pic.with_pixels(toned, None), tmp_path / "toned.png"))
    assert not back.grayscale
    assert np.abs(back.rgb - toned).max() <= 0.5 / 255 + 1e-6


def test_icc_profile_matches_the_written_colour_space(fixtures: dict[str, Path], tmp_path: Path) -> None:
    gray = read_image(fixtures["gray_png"])
    with_rgb_profile = replace(gray, icc_profile=srgb_icc_bytes())
    back = read_image(write_image(with_rgb_profile, tmp_path / "rgbprofile.png"))
    assert not back.grayscale and back.icc_profile == srgb_icc_bytes()  # RGB file keeps the RGB profile
    assert np.array_equal(back.rgb, gray.rgb)

    gray_profile = gray_icc_bytes()
    kept = read_image(write_image(replace(gray, icc_profile=gray_profile), tmp_path / "grayprofile.tif"))
    assert kept.grayscale and kept.icc_profile == gray_profile
    toned = replace(gray, icc_profile=gray_profile, rgb=gray.rgb * np.array([1.0, 0.8, 0.6], np.float32))
    dropped = read_image(write_image(toned, tmp_path / "toned.jpg"))
    assert not dropped.grayscale and dropped.icc_profile is None


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
def test_icc_dpi_and_exif_survive(fixtures: dict[str, Path], tmp_path: Path, ext: str) -> None:
    src = read_image(fixtures["exif_rotated"])
    pic = src.with_pixels(src.rgb, None)
    pic.icc_profile = srgb_icc_bytes()
    back = read_image(write_image(pic, tmp_path / f"meta.{ext}"))
    assert back.icc_profile == srgb_icc_bytes()
    assert (back.width, back.height) == (src.width, src.height)  # not rotated a second time
    if ext != "webp":  # WebP has no resolution field
        assert back.dpi == (300.0, 300.0)
    exif = exif_of(back)
    assert exif[TAG_ORIENTATION] == 1
    assert exif[TAG_ARTIST] == ARTIST
    sub = exif.get_ifd(TAG_EXIF_IFD)
    assert sub[TAG_DATETIME_ORIGINAL] == DATETIME_ORIGINAL
    assert (sub[TAG_PIXEL_X], sub[TAG_PIXEL_Y]) == (H, W)  # upright size after rotation
    top_right = as8(back.rgb[2, -3]).astype(int)
    assert np.abs(top_right - MARKER_RGB).max() <= (60 if ext == "webp" else 12)


def test_resized_picture_updates_exif_pixel_dimensions(fixtures: dict[str, Path], tmp_path: Path) -> None:
    pic = read_image(fixtures["exif_rotated"])
    small = cv2.resize(pic.rgb, (15, 20), interpolation=cv2.INTER_AREA)
    resized = pic.with_pixels(small, None)
    assert (resized.width, resized.height) == (15, 20) and resized.exif == pic.exif
    for ext in ("jpg", "tif", "png"):
        back = read_image(write_image(resized, tmp_path / f"small.{ext}"))
        sub = exif_of(back).get_ifd(TAG_EXIF_IFD)
        assert (sub[TAG_PIXEL_X], sub[TAG_PIXEL_Y]) == (15, 20), ext
        assert (back.width, back.height) == (15, 20)


def test_tiff_source_exif_is_cleaned_and_carried_to_jpeg(tmp_path: Path) -> None:
    pic = replace(picture_from_array(gradient_rgb8()), exif=exif_bytes(1))
    tif = read_image(write_image(pic, tmp_path / "a.tif"))
    exif = exif_of(tif)
    assert 273 not in exif and 256 not in exif and 34675 not in exif  # no structural tags in the EXIF
    jpg = read_image(write_image(tif, tmp_path / "b.jpg"))
    assert exif_of(jpg).get_ifd(TAG_EXIF_IFD)[TAG_DATETIME_ORIGINAL] == DATETIME_ORIGINAL


def test_bit_depth_choice_and_float_rounding(tmp_path: Path) -> None:
    pic16 = picture_from_array(pattern16())
    assert read_image(write_image(pic16, tmp_path / "a.jpg")).bit_depth == 8
    assert read_image(write_image(pic16, tmp_path / "a8.png", bit_depth=8)).bit_depth == 8
    pic8 = picture_from_array(gradient_rgb8())
    up = read_image(write_image(pic8, tmp_path / "up.png", bit_depth=16))
    assert up.bit_depth == 16 and np.array_equal(as8(up.rgb), gradient_rgb8())

    vals = np.array([[-0.5, 0.0, 0.5], [1.0, 1.5, np.nan]], np.float32)
    rgb = np.repeat(vals[:, :, None], 3, axis=2)
    pic = picture_from_array(rgb)
    back = read_image(write_image(pic, tmp_path / "round.png"))
    assert as8(back.rgb[:, :, 0]).tolist() == [[0, 0, 128], [255, 255, 0]]


def test_jpeg_and_bmp_drop_alpha_with_warning(
    fixtures: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pic = read_image(fixtures["rgba_png"])
    for ext in ("jpg", "bmp"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mlrn_core.imageio"):
            back = read_image(write_image(pic, tmp_path / f"noalpha.{ext}"))
        assert back.alpha is None
        assert any("alpha" in r.getMessage() for r in caplog.records)


def test_jpeg_quality_and_444_subsampling(tmp_path: Path) -> None:
    pic = picture_from_array(gradient_rgb8())
    hi = write_image(pic, tmp_path / "hi.jpg")
    lo = write_image(pic, tmp_path / "lo.jpg", quality=40)
    from PIL import JpegImagePlugin

    assert JpegImagePlugin.get_sampling(Image.open(hi)) == 0  # 4:4:4 at the default quality 95
    assert lo.stat().st_size < hi.stat().st_size
    with pytest.raises(ImageIOError, match="quality"):
        write_image(pic, tmp_path / "bad.jpg", quality=0)


def test_format_argument_and_unknown_format(tmp_path: Path) -> None:
    pic = picture_from_array(gradient_rgb8())
    out = write_image(pic, tmp_path / "x.data", fmt="jpeg")
    assert read_image(out).source_format == "jpg"
    with pytest.raises(ImageIOError, match="unsupported image format") as info:
        write_image(pic, tmp_path / "x.gif")
    assert "x.gif" in str(info.value)
    assert not (tmp_path / "x.gif").exists()


def test_creates_parent_folders_and_returns_path(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.png"
    assert write_image(picture_from_array(gradient_rgb8()), target) == target
    assert target.is_file()


def test_refuses_to_overwrite_the_source(fixtures: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "orig.png"
    src.write_bytes(fixtures["rgba_png"].read_bytes())
    before = src.read_bytes()
    pic = read_image(src)
    for spelling in (src, tmp_path / "." / "orig.png", Path(os.path.relpath(src))):
        with pytest.raises(ImageIOError, match="overwrite the original") as info:
            write_image(pic, spelling)
        assert "orig.png" in str(info.value)
    assert src.read_bytes() == before
    assert no_part_files(tmp_path)


def test_non_ascii_path_round_trip(fixtures: dict[str, Path], tmp_path: Path) -> None:
    pic = read_image(fixtures["unicode_name"])
    assert pic.path is not None and pic.path.name == "Été à Zürich 01.jpg"
    for ext in ("png", "tif", "jpg"):
        target = tmp_path / "Sortie — été" / f"Zürich ü ß {ext}.{ext}"
        back = read_image(write_image(pic, target))
        assert back.path == target and (back.width, back.height) == (W, H)
        assert exif_of(back)[TAG_ARTIST] == ARTIST
    pic16 = picture_from_array(pattern16())
    back16 = read_image(write_image(pic16, tmp_path / "Été 16 bit.png"))
    assert np.array_equal(as16(back16.rgb), pattern16())


# ------------------------------------------------------------------------------------------ atomic write


def _exploding_save(exc: BaseException):  # noqa: ANN202
    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"half an image")  # type: ignore[attr-defined]
        raise exc

    return save


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_failed_encoder_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ext: str) -> None:
    monkeypatch.setattr(Image.Image, "save", _exploding_save(OSError("encoder exploded")))
    target = tmp_path / f"out.{ext}"
    with pytest.raises(ImageIOError) as info:
        write_image(picture_from_array(gradient_rgb8()), target)
    assert target.name in str(info.value) and str(info.value).startswith("cannot write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "keep.jpg"
    write_image(picture_from_array(gradient_rgb8()), target)
    before = target.read_bytes()
    monkeypatch.setattr(Image.Image, "save", _exploding_save(ValueError("boom")))
    with pytest.raises(ImageIOError, match="keep.jpg"):
        write_image(picture_from_array(gradient_rgb8()[::-1]), target)
    assert target.read_bytes() == before
    assert no_part_files(tmp_path)


def test_keyboard_interrupt_cleans_up_and_propagates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Image.Image, "save", _exploding_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_image(picture_from_array(gradient_rgb8()), tmp_path / "ctrl_c.png")
    assert list(tmp_path.iterdir()) == []


def test_failures_in_own_encoders_and_rename(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pic16 = picture_from_array(pattern16())

    def bad_compress(*args: object, **kwargs: object) -> bytes:
        raise MemoryError

    with monkeypatch.context() as m:  # TIFF writer fails after the file was opened
        m.setattr(imageio.zlib, "compress", bad_compress)
        with pytest.raises(ImageIOError, match="memory"):
            write_image(pic16, tmp_path / "t.tif")
    with monkeypatch.context() as m:  # OpenCV PNG encoder reports failure
        m.setattr(imageio.cv2, "imencode", lambda *a, **k: (False, None))
        with pytest.raises(ImageIOError, match="t16.png"):
            write_image(pic16, tmp_path / "t16.png")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(imageio.os, "replace", full_disk)
        m.setattr(imageio.os, "link", full_disk)
        with pytest.raises(ImageIOError, match="disk is full"):
            write_image(pic16, tmp_path / "full.png")
        with pytest.raises(ImageIOError, match="disk is full"):
            write_image(pic16, tmp_path / "full.png", overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_writing_onto_a_directory_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ImageIOError, match="taken.png"):
        write_image(picture_from_array(gradient_rgb8()), tmp_path / "taken.png")
    assert no_part_files(tmp_path)


# -------------------------------------------------------------------------------------------- helpers


def test_output_format_for_and_is_supported() -> None:
    cases = {
        "jpeg": "jpg",
        "JPG": "jpg",
        ".jpeg": "jpg",
        "tif": "tiff",
        ".TIFF": "tiff",
        "png": "png",
        "photo.WebP": "webp",
        "a/b/c.bmp": "bmp",
        "IMG_0001.HEIC": "heic",
        "x.heif": "heic",
        "y.avif": "avif",
        Path("x.tif"): "tiff",
        Path("dir.v2/y.jpg"): "jpg",
    }
    for given, expected in cases.items():
        assert imageio.output_format_for(given) == expected, given
    for bad in ("gif", "x.cr2", Path("noext")):
        with pytest.raises(ImageIOError):
            imageio.output_format_for(bad)
    assert imageio.is_supported("A.JPEG") and imageio.is_supported(Path("b.tif"))
    assert not imageio.is_supported("c.gif") and not imageio.is_supported("README")
    assert set(imageio.FORMAT_EXTENSIONS.values()) <= imageio.SUPPORTED_EXTENSIONS
    for fmt, ext in imageio.FORMAT_EXTENSIONS.items():
        assert imageio.output_format_for(ext) == fmt


def test_picture_from_array_and_to_uint8() -> None:
    rgba = np.dstack([gradient_rgb8(), soft_alpha()])
    pic = picture_from_array(rgba)
    assert pic.alpha is not None and not pic.grayscale and pic.bit_depth == 8 and pic.exif is None
    assert np.array_equal(imageio.picture_to_uint8_rgb(pic), gradient_rgb8())
    over_white = imageio.picture_to_uint8_rgb(pic, background=(1.0, 1.0, 1.0))
    assert over_white[0, 0].tolist() == [255, 255, 255]  # alpha 0 at the left edge
    gray = picture_from_array(pattern16(channels=1))
    assert gray.grayscale and gray.bit_depth == 16 and gray.alpha is None
    assert picture_from_array(np.zeros((4, 5), np.float64)).bit_depth == 8
    with pytest.raises(ValueError):
        picture_from_array(np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(ValueError):
        pic.with_pixels(pic.rgb[:10], pic.alpha)  # alpha no longer matches


def test_imageioerror_is_picklable() -> None:
    err = ImageIOError(Path("/tmp/x/photo.jpg"), "file is truncated")
    assert str(err) == "cannot read 'photo.jpg': file is truncated"
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) and clone.path == err.path and clone.reason == err.reason


def test_a_lossless_webp_stays_lossless_unless_a_quality_is_asked_for(tmp_path: Path) -> None:
    """Issue 33, item 7: lossless WebP input was written lossy."""
    from mlrn_core.auto import sniff_format

    rgb = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "l.webp", lossless=True)
    Image.fromarray(rgb).save(tmp_path / "q.webp", quality=80)
    lossless, lossy = read_image(tmp_path / "l.webp"), read_image(tmp_path / "q.webp")
    assert lossless.lossless_webp and not lossy.lossless_webp
    write_image(lossless, tmp_path / "out.webp")
    assert sniff_format(tmp_path / "out.webp").label == "lossless WebP"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.webp").convert("RGB")), rgb)
    write_image(lossless, tmp_path / "out80.webp", quality=80)
    assert sniff_format(tmp_path / "out80.webp").label == "lossy WebP"
    write_image(lossy, tmp_path / "lossy.webp")
    assert sniff_format(tmp_path / "lossy.webp").label == "lossy WebP"


def test_a_dpi_too_large_for_a_jpeg_header_is_held_at_its_maximum_with_a_word(tmp_path: Path, caplog) -> None:
    """Issue 33, item 7: 70000 DPI wrapped around to 4464 in a JPEG, silently."""
    picture = replace(picture_from_array(np.zeros((8, 8, 3), np.float32)), dpi=(70000.0, 300.0))
    with caplog.at_level(logging.WARNING):
        write_image(picture, tmp_path / "big.jpg")
    assert Image.open(tmp_path / "big.jpg").info["dpi"] == (65535, 300)
    assert "70000 DPI is more than a JPEG header holds; written as 65535 DPI" in caplog.text
    write_image(picture, tmp_path / "big.tif")  # TIFF holds it
    assert Image.open(tmp_path / "big.tif").info["dpi"] == (70000.0, 300.0)
