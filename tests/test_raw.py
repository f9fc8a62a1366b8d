"""Camera RAW files (issue 32): DNGs made here with a real Bayer mosaic (tests/rawfiles.py) are developed with
the camera's white balance into 16-bit pictures of the known scene, keep their EXIF and an ICC profile, and go
through the CLI, Batch Export, Auto and the app like any photo; broken RAWs are reported and the rest go on."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from mlrn_core import auto, batch, imageio, registry
from mlrn_core.batch import BatchOptions, plan_batch
from mlrn_core.cli import main
from mlrn_core.imageio import raw
from tests import rawfiles
from tests.helpers import tiny_model

pytestmark = pytest.mark.skipif(not raw.available(), reason="rawpy (LibRaw) is not installed")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registry.save_model(tmp_path_factory.mktemp("model") / "tiny.pt", tiny_model(2), info={})


def _patches(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the grey (left) and coloured (right) patches, away from the edges and the seam."""
    h, w = rgb.shape[:2]
    return rgb[8 : h - 8, 8 : w // 2 - 8].mean(axis=(0, 1)), rgb[8 : h - 8, w // 2 + 8 : w - 8].mean(axis=(0, 1))


def _exif_of_file(path: Path) -> tuple[Image.Exif, dict]:
    with Image.open(path) as img:
        exif = img.getexif()
        return exif, dict(exif.get_ifd(0x8769))


def test_a_dng_develops_into_the_scene_with_the_camera_white_balance(tmp_path: Path) -> None:
    dng = rawfiles.make_dng(tmp_path / "IMG_0001.DNG")
    picture = imageio.read_image(dng)
    assert (picture.width, picture.height) == (96, 64)
    assert picture.bit_depth == 16 and picture.source_format == "raw" and not picture.grayscale
    grey, colour = _patches(picture.rgb)
    # the sensor saw grey as (0.5, 1.0, 0.8): the camera's white balance makes it grey again; at its own
    # exposure (automatic brightening would lift this scene, whose brightest value is 0.5), on the sRGB curve
    assert np.ptp(grey) < 0.005
    np.testing.assert_allclose(grey, rawfiles.srgb_encode(rawfiles.GREY), atol=0.01)
    np.testing.assert_allclose(colour, rawfiles.srgb_encode(rawfiles.COLOUR), atol=0.01)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(picture.icc_profile))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def test_the_development_turns_the_picture_upright(tmp_path: Path) -> None:
    upright = imageio.read_image(rawfiles.make_dng(tmp_path / "a.dng"))
    portrait = imageio.read_image(rawfiles.make_dng(tmp_path / "b.dng", orientation=6))
    assert (portrait.width, portrait.height) == (64, 96)
    np.testing.assert_allclose(portrait.rgb, np.rot90(upright.rgb, k=-1), atol=1 / 255)
    assert imageio._orientation_of(portrait.exif) == 1  # nothing left to rotate a second time


@pytest.mark.parametrize("space", ["adobe", "prophoto"])
def test_wide_gamut_developments_carry_a_profile_that_gives_the_srgb_colours_back(tmp_path: Path, space: str) -> None:
    dng = rawfiles.make_dng(tmp_path / "wide.dng")
    srgb = raw.develop(dng)
    wide = raw.develop(dng, colour_space=space)
    assert not np.allclose(_patches(wide.rgb)[1], _patches(srgb.rgb)[1], atol=0.02)  # other numbers...
    profile = ImageCms.ImageCmsProfile(io.BytesIO(wide.icc_profile))
    assert raw.COLOUR_SPACES[space] in ImageCms.getProfileDescription(profile)
    as_srgb = ImageCms.profileToProfile(
        Image.fromarray((np.clip(wide.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)),
        profile,
        ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    for got, want in zip(_patches(np.asarray(as_srgb) / 255), _patches(srgb.rgb)):  # ...the same colours
        np.testing.assert_allclose(got, want, atol=0.012)


def test_upscaled_raw_is_a_16_bit_tiff_with_the_cameras_exif_and_a_profile(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dng = rawfiles.make_dng(tmp_path / "IMG_0002.DNG")
    assert main(["upscale", str(dng), "--model", str(model_file), "--device", "cpu"]) == 0
    out = tmp_path / "IMG_0002_x2.tif"  # "the same format" as a RAW file: 16-bit TIFF
    with Image.open(out) as img:
        assert img.size == (192, 128) and img.info.get("icc_profile")
    assert imageio.read_image(out).bit_depth == 16
    ifd0, exif = _exif_of_file(out)
    assert ifd0.get(271) == rawfiles.CAMERA_MAKE and ifd0.get(272) == rawfiles.CAMERA_MODEL
    assert exif.get(36867) == rawfiles.DATETIME_ORIGINAL and float(exif.get(33434)) == pytest.approx(1 / 125)
    assert float(exif.get(33437)) == pytest.approx(2.8)
    assert ifd0.get(274, 1) == 1 and exif.get(0xA002) == 192 and exif.get(0xA003) == 128
    assert imageio.read_image(dng).width == 96  # the original is still the DNG it was


def test_a_folder_of_raw_and_jpeg_files_goes_through_and_a_broken_raw_does_not_stop_it(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    rawfiles.make_dng(shoot / "IMG_0003.DNG")
    Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(shoot / "IMG_0004.JPG", quality=90)
    good = rawfiles.make_dng(tmp_path / "whole.dng")
    (shoot / "IMG_0005.DNG").write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # truncated
    (shoot / "IMG_0006.NEF").write_bytes(b"II*\x00 not a camera RAW file at all")
    out = tmp_path / "out"
    plan = plan_batch([shoot], out, BatchOptions(model=str(model_file)))
    raw_item = next(i for i in plan.items if i.source.name == "IMG_0003.DNG")
    assert raw_item.action == batch.WRITE and raw_item.output.name == "IMG_0003_x2.tif"
    assert raw.DEVELOPED in raw_item.note  # the preview says how RAW files are made into pictures
    assert not plan.raw_files  # no RAW file is skipped any more
    code = main(["upscale", str(shoot), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1  # two files failed
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0003_x2.tif", "IMG_0004_x2.JPG"]
    assert "IMG_0005.DNG" in err and "IMG_0006.NEF" in err and "not a camera RAW file LibRaw can read" in err
    assert "2 upscaled, 2 failed" in err


def test_broken_raw_files_get_a_message_naming_the_file(tmp_path: Path) -> None:
    good = rawfiles.make_dng(tmp_path / "good.dng", preview=False)
    data = good.read_bytes()
    cut = tmp_path / "cut.DNG"
    cut.write_bytes(data[: len(data) // 2])
    fake = tmp_path / "DSC_0001.ARW"
    fake.write_bytes(b"\x00" * 4096)
    for path in (cut, fake):
        with pytest.raises(imageio.ImageIOError) as info:
            imageio.read_image(path)
        assert path.name in str(info.value) and info.value.side == "input"
    # a RAW whose header claims more pixels than the limit (40000 x 30000) is refused before anything is unpacked
    huge = bytearray(data)
    with tifffile.TiffFile(good) as tif:
        for name, value in (("ImageWidth", 40_000), ("ImageLength", 30_000)):
            tag = tif.pages[0].tags[name]
            huge[tag.valueoffset : tag.valueoffset + 2] = struct.pack("<H", value)
    claim = tmp_path / "claims.dng"
    claim.write_bytes(bytes(huge))
    with pytest.raises(imageio.ImageIOError, match="claims.dng.*too large"):
        imageio.read_image(claim)


def test_without_rawpy_raw_files_get_advice_and_batches_skip_them(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw, "rawpy", None)
    (tmp_path / "in").mkdir()
    dng = rawfiles.make_dng(tmp_path / "in" / "IMG_0007.DNG")
    with pytest.raises(imageio.ImageIOError, match="pip install rawpy.*16-bit TIFF"):
        imageio.read_image(dng)
    assert not imageio.is_readable(dng) and ".dng" not in imageio.readable_extensions()
    plan = plan_batch([tmp_path / "in"], tmp_path / "out", BatchOptions(model=str(model_file)))
    assert [i.source.name for i in plan.raw_files] == ["IMG_0007.DNG"]


def test_auto_takes_the_paper_model_for_raw_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dng = rawfiles.make_dng(tmp_path / "IMG_0008.CR2")  # a TIFF-based container, named as Canon names them
    fmt = auto.sniff_format(dng)
    assert fmt == auto.CAMERA_RAW and not fmt.lossy
    models = tmp_path / "models"
    models.mkdir()
    for name in ("mlrn-x2", "mlrn-x2-photo"):
        registry.save_model(models / f"{name}.pt", tiny_model(2), info={})
    monkeypatch.setattr(auto.paths, "builtin_models_dir", lambda: models)
    choice = auto.choose_model(dng, 2)
    assert choice.name == "mlrn-x2" and not choice.photo
    assert choice.caption == "mlrn-x2 (Auto: camera RAW input, lossless)"


def test_the_embedded_preview_is_upright_and_knows_the_developed_size(tmp_path: Path) -> None:
    preview = raw.embedded_preview(rawfiles.make_dng(tmp_path / "p.dng", orientation=6))
    assert preview is not None and (preview.width, preview.height) == (64, 96)
    assert preview.rgb.dtype == np.uint8 and preview.rgb.shape == (24, 16, 3)
    assert raw.embedded_preview(rawfiles.make_dng(tmp_path / "n.dng", preview=False)) is None
    (tmp_path / "junk.NEF").write_bytes(b"junk")
    assert raw.embedded_preview(tmp_path / "junk.NEF") is None


def test_the_command_line_develops_into_the_colour_space_asked_for(tmp_path: Path, model_file: Path) -> None:
    dng = rawfiles.make_dng(tmp_path / "IMG_0009.NEF")  # any RAW extension: LibRaw reads what is inside
    out = tmp_path / "out"
    args = ["upscale", str(dng), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"]
    assert main([*args, "--raw-colour", "adobe", "--format", "png"]) == 0
    saved = imageio.read_image(out / "IMG_0009_x2.png")
    assert saved.bit_depth == 16  # PNG keeps 16 bit too
    profile = ImageCms.ImageCmsProfile(io.BytesIO(saved.icc_profile))
    assert "Adobe RGB" in ImageCms.getProfileDescription(profile)
    with pytest.raises(ValueError, match="RAW colour space"):
        BatchOptions(raw_colour="rec2020")
    # x4 as well: a 16-bit TIFF four times the development's size
    x4 = registry.save_model(tmp_path / "tiny-x4.pt", tiny_model(4), info={})
    assert (
        main(["upscale", str(dng), "-s", "4", "--model", str(x4), "--device", "cpu", "-o", str(tmp_path / "x4.tif")])
        == 0
    )
    big = imageio.read_image(tmp_path / "x4.tif")
    assert (big.width, big.height, big.bit_depth) == (384, 256, 16) and big.icc_profile
