"""Model "Auto": the photo model for lossy camera files, the paper model for lossless ones.

Every input is a real file written here by Pillow (and pillow-heif for HEIC, when installed); the
built-in models folder is the per-test empty one, filled by ``install_builtin`` with tiny real models
(the photo and the paper model get different weights, so which one ran shows in the pixels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlrn_core import auto, batch, imageio, registry, tiling
from mlrn_core.cli import main
from tests.helpers import textured_image

PAPER, PHOTO = "mlrn-x2", "mlrn-x2-photo"


def _rgb(h: int = 40, w: int = 56, seed: int = 0) -> Image.Image:
    return Image.fromarray(textured_image(h, w, seed=seed))


def _rgba(h: int = 40, w: int = 56) -> Image.Image:
    img = _rgb(h, w).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
    img.putalpha(Image.fromarray(alpha))
    return img


def _write(folder: Path, name: str, fmt: str, **kw) -> Path:
    path = folder / name
    _rgb(seed=len(name)).save(path, format=fmt, **kw)
    return path


# (file name, Pillow format, save options, expected label, lossy)
FORMATS = [
    ("photo.jpg", "JPEG", {"quality": 85}, "JPEG", True),
    ("photo-progressive.jpeg", "JPEG", {"quality": 90, "progressive": True, "subsampling": 0}, "JPEG", True),
    ("scan.png", "PNG", {}, "PNG", False),
    ("scan.tif", "TIFF", {}, "TIFF", False),
    ("scan-lzw.tif", "TIFF", {"compression": "tiff_lzw"}, "TIFF", False),
    ("scan-deflate.tiff", "TIFF", {"compression": "tiff_adobe_deflate"}, "TIFF", False),
    ("big.tif", "TIFF", {"big_tiff": True}, "TIFF", False),
    ("jpeg-in.tif", "TIFF", {"compression": "jpeg"}, "JPEG-compressed TIFF", True),
    ("big-jpeg-in.tif", "TIFF", {"compression": "jpeg", "big_tiff": True}, "JPEG-compressed TIFF", True),
    ("old.bmp", "BMP", {}, "BMP", False),
    ("lossy.webp", "WEBP", {"quality": 80}, "lossy WebP", True),
    ("lossless.webp", "WEBP", {"lossless": True}, "lossless WebP", False),
    ("phone.avif", "AVIF", {"quality": 70}, "AVIF", True),
]


@pytest.mark.parametrize(("name", "fmt", "kw", "label", "lossy"), FORMATS, ids=[f[0] for f in FORMATS])
def test_real_format_of_each_file(tmp_path: Path, name: str, fmt: str, kw: dict, label: str, lossy: bool) -> None:
    path = _write(tmp_path, name, fmt, **kw)
    quality = kw["quality"] if fmt == "JPEG" else None  # a JPEG's quality is read from its tables
    assert auto.sniff_format(path) == auto.SourceFormat(label, lossy, quality)


def test_format_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    jpeg_as_png = _write(tmp_path, "really-a-jpeg.png", "JPEG", quality=80)
    png_as_jpg = _write(tmp_path, "really-a-png.jpg", "PNG")
    assert auto.sniff_format(jpeg_as_png) == auto.SourceFormat("JPEG", True, 80)
    assert auto.sniff_format(png_as_jpg) == auto.SourceFormat("PNG", False)
    assert imageio.read_image(jpeg_as_png).source_format == "jpg"  # what the reader sees too


def test_webp_with_alpha_and_animation(tmp_path: Path) -> None:
    lossy_alpha, lossless_alpha, anim_lossy, anim_lossless = (tmp_path / f"{n}.webp" for n in "abcd")
    _rgba().save(lossy_alpha, quality=80)  # VP8X, ALPH, then the lossy VP8 bitstream
    _rgba().save(lossless_alpha, lossless=True)
    frames = [_rgb(seed=1), _rgb(seed=2)]
    frames[0].save(anim_lossy, save_all=True, append_images=frames[1:], quality=70)
    frames[0].save(anim_lossless, save_all=True, append_images=frames[1:], lossless=True)
    assert lossy_alpha.read_bytes()[12:16] == b"VP8X"
    assert anim_lossy.read_bytes()[12:16] == b"VP8X"
    assert auto.sniff_format(lossy_alpha).lossy and auto.sniff_format(anim_lossy).lossy
    assert not auto.sniff_format(lossless_alpha).lossy and not auto.sniff_format(anim_lossless).lossy


def test_heic_is_a_camera_format(tmp_path: Path) -> None:
    import pillow_heif  # a dependency: a missing one must fail, not skip

    pillow_heif.register_heif_opener()
    path = tmp_path / "IMG_0001.HEIC"
    _rgb().save(path, format="HEIF", quality=80)
    assert auto.sniff_format(path) == auto.SourceFormat("HEIC", True)


@pytest.mark.parametrize("quality", [10, 50, 75, 85, 90, 92, 93, 95, 97, 98, 100])
def test_jpeg_quality_is_read_from_the_quantisation_table(tmp_path: Path, quality: int) -> None:
    # Pillow (libjpeg) and OpenCV write the standard tables scaled by the quality: read back exactly
    path = _write(tmp_path, "q.jpg", "JPEG", quality=quality)
    assert auto.sniff_format(path).quality == quality
    import cv2

    cv_path = tmp_path / "cv.jpg"
    cv2.imwrite(str(cv_path), textured_image(40, 56, seed=1), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert auto.sniff_format(cv_path).quality == quality


def test_jpeg_quality_behind_a_large_exif_block_and_in_damaged_files(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: a 60 KB APP1 segment before the tables
    path = tmp_path / "camera.jpg"
    _rgb().save(path, format="JPEG", quality=96, exif=exif.tobytes())
    assert path.stat().st_size > 60_000
    assert auto.sniff_format(path) == auto.SourceFormat("JPEG", True, 96)
    # a camera-like table that is no IJG table: the nearest IJG quality
    custom = [max(1, round(v * 0.13)) for v in auto._STD_LUMA]
    assert auto.jpeg_quality_of_table(custom) in (93, 94)
    # cut inside the segments or a garbage length: still a JPEG (lossy), quality unknown
    data = path.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:300])
    assert auto.sniff_format(cut) == auto.SourceFormat("JPEG", True)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xdb\x00\x01" + bytes(100))
    assert auto.sniff_format(bad) == auto.SourceFormat("JPEG", True)


def test_nearly_lossless_jpegs_get_the_paper_model(tmp_path: Path, install_builtin) -> None:
    install_builtin(PHOTO, seed=1)
    paper_path = install_builtin(PAPER, seed=2)
    limit = auto.PAPER_FROM_JPEG_QUALITY[2]
    below = auto.choose_model(_write(tmp_path, "a.jpg", "JPEG", quality=limit - 1), 2)
    assert below.name == PHOTO and below.photo
    at = auto.choose_model(_write(tmp_path, "b.jpg", "JPEG", quality=limit), 2)
    assert (at.name, at.path, at.photo, at.fallback) == (PAPER, paper_path, False, False)
    assert at.caption == f"{PAPER} (Auto: JPEG input, quality {limit}, nearly lossless)"
    assert f"JPEGs of quality {limit} or more" in auto.describe(2)
    # lossy formats whose quality is not read (HEIC, WebP...) keep the photo model
    assert auto.choose_model(_write(tmp_path, "c.webp", "WEBP", quality=98), 2).name == PHOTO


def test_unknown_and_broken_files_count_as_lossless(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated_tiff = tmp_path / "cut.tif"
    truncated_tiff.write_bytes(b"II*\x00\xff\xff\x00\x00")  # the first directory lies past the end
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
    for p in (empty, text, video, tmp_path / "missing.jpg"):
        assert auto.sniff_format(p) == auto.UNKNOWN
    assert auto.sniff_format(truncated_tiff) == auto.SourceFormat("TIFF", False)


def test_auto_picks_the_photo_model_only_for_lossy_inputs(tmp_path: Path, install_builtin) -> None:
    photo_path, paper_path = install_builtin(PHOTO, seed=1), install_builtin(PAPER, seed=2)
    for name, fmt, kw, label, lossy in FORMATS:
        choice = auto.choose_model(_write(tmp_path, name, fmt, **kw), 2)
        assert (choice.name, choice.path, choice.photo, choice.fallback) == (
            (PHOTO, photo_path, True, False) if lossy else (PAPER, paper_path, False, False)
        ), name
        assert label in choice.reason
    assert auto.choose_model(_write(tmp_path, "x.jpg", "JPEG"), 2).caption == f"{PHOTO} (Auto: JPEG input, quality 75)"
    assert auto.choose_model(_write(tmp_path, "x.png", "PNG"), 2).caption == f"{PAPER} (Auto: PNG input, lossless)"
    jpeg_named_png = auto.choose_model(_write(tmp_path, "y.png", "JPEG"), 2)
    assert jpeg_named_png.name == PHOTO and jpeg_named_png.reason == "JPEG input, quality 75"


def test_without_the_photo_model_auto_falls_back_and_says_so(tmp_path: Path, install_builtin) -> None:
    install_builtin(PAPER)
    choice = auto.choose_model(_write(tmp_path, "a.jpg", "JPEG"), 2)
    assert choice.name == PAPER and choice.fallback and not choice.photo
    assert choice.caption == f"{PAPER} (Auto: JPEG input, quality 75; {PHOTO} is not installed)"
    lossless = auto.choose_model(_write(tmp_path, "a.png", "PNG"), 2)
    assert lossless.name == PAPER and not lossless.fallback
    assert "not installed" in auto.describe(2) and auto.available(2)
    assert auto.camera_base(2) == PAPER


def test_auto_never_uses_the_photo_model_for_lossless_inputs(tmp_path: Path, install_builtin) -> None:
    install_builtin("mlrn-x3-photo", scale=3)
    assert auto.choose_model(_write(tmp_path, "a.jpg", "JPEG"), 3).name == "mlrn-x3-photo"
    with pytest.raises(registry.ModelError, match=r"mlrn-x3 is not installed"):
        auto.choose_model(_write(tmp_path, "a.png", "PNG"), 3)
    with pytest.raises(registry.ModelError, match=r"neither mlrn-x4-photo nor mlrn-x4"):
        auto.choose_model(_write(tmp_path, "b.jpg", "JPEG"), 4)
    assert auto.camera_base(3) == "mlrn-x3-photo" and not auto.available(4)


def test_auto_is_a_reserved_model_name() -> None:
    for name in ("auto", "Auto", " AUTO "):
        with pytest.raises(registry.ModelError, match="automatic choice"):
            registry.validate_name(name)
    assert auto.is_auto("Auto") and not auto.is_auto(None) and not auto.is_auto("automobile")


# --------------------------------------------------------------------------------------------------
# batch and CLI
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder with a JPEG, a JPEG named .png, a PNG and a lossless WebP."""
    src = tmp_path / "in"
    src.mkdir()
    _write(src, "a.jpg", "JPEG", quality=85)
    _write(src, "b.png", "JPEG", quality=85)
    _write(src, "c.png", "PNG")
    _write(src, "d.webp", "WEBP", lossless=True)
    return src


def _records(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in batch.record_path(out).read_text().splitlines()]
    return {Path(r["input"]).name: r for r in rows}


def test_batch_runs_each_file_through_the_model_auto_picked(tmp_path: Path, mixed: Path, install_builtin) -> None:
    install_builtin(PHOTO, seed=1)
    install_builtin(PAPER, seed=2)
    out = tmp_path / "out"
    options = batch.BatchOptions(scale=2, model="auto", device="cpu")
    plan = batch.plan_batch([mixed], out, options)
    picked = {i.source.name: i.auto.name for i in plan.items}
    assert picked == {"a.jpg": PHOTO, "b.png": PHOTO, "c.png": PAPER, "d.webp": PAPER}
    lines = batch.plan_lines(plan.items)
    assert any("b.png" in line and f"[{PHOTO} (Auto: JPEG input, quality 85)]" in line for line in lines)
    assert batch.auto_summary(plan.items) == [
        f"{PHOTO} for 2 files (2 JPEG)",
        f"{PAPER} for 2 files (1 PNG, 1 lossless WebP)",
    ]

    models = batch.load_auto_models(plan.items)
    assert sorted(models) == [PAPER, PHOTO]
    summary = batch.run_batch(plan, options, models)
    assert len(summary.succeeded) == 4 and summary.model == "auto"
    rec = _records(out)
    assert {k: r["model"] for k, r in rec.items()} == picked
    assert rec["b.png"]["auto"] == "JPEG input, quality 85" and rec["c.png"]["auto"] == "PNG input, lossless"
    # the pixels are those of the model named: the JPEG through the photo model, the PNG through the paper one
    for name, model in (("a.jpg", PHOTO), ("c.png", PAPER)):
        expected = tiling.upscale_picture(models[model].model, imageio.read_image(mixed / name), device="cpu")
        got = imageio.read_image(out / f"{Path(name).stem}_x2{Path(name).suffix}")
        if name.endswith(".png"):
            assert np.array_equal(imageio.picture_to_uint8_rgb(got), imageio.picture_to_uint8_rgb(expected))
        else:  # written as JPEG again: close, not equal
            other = tiling.upscale_picture(models[PAPER].model, imageio.read_image(mixed / name), device="cpu")
            err = np.abs(got.rgb - expected.rgb).mean()
            assert err < np.abs(got.rgb - other.rgb).mean()


def test_batch_files_auto_cannot_serve_fail_and_the_rest_go_on(tmp_path: Path, mixed: Path, install_builtin) -> None:
    install_builtin(PHOTO)  # no paper model: the lossless files have no model
    out = tmp_path / "out"
    options = batch.BatchOptions(scale=2, model="auto", device="cpu")
    plan = batch.plan_batch([mixed], out, options)
    summary = batch.run_batch(plan, options, batch.load_auto_models(plan.items))
    assert sorted(r.item.source.name for r in summary.succeeded) == ["a.jpg", "b.png"]
    assert sorted(r.item.source.name for r in summary.failed) == ["c.png", "d.webp"]
    assert batch.auto_summary(plan.items)[1].startswith("2 files not upscaled: Auto uses mlrn-x2 for lossless")
    assert all("mlrn-x2 is not installed" in r.error for r in summary.failed)
    assert not (out / "c_x2.png").exists() and (out / "b_x2.png").exists()


def test_cli_auto_is_the_default_and_records_the_model_per_file(
    tmp_path: Path, mixed: Path, install_builtin, capsys: pytest.CaptureFixture[str]
) -> None:
    install_builtin(PHOTO, seed=1)
    install_builtin(PAPER, seed=2)
    assert main(["upscale", str(mixed), "--out-dir", str(tmp_path / "default"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "with model auto" in err and f"auto: {PHOTO} for 2 files (2 JPEG)" in err
    assert "b_x2.png" in err and f"s, {PHOTO}, CPU (" in err  # each file's line: its model and the path that ran
    assert main(["upscale", str(mixed), "--out-dir", str(tmp_path / "auto"), "--model", "auto", "--device", "cpu"]) == 0
    for out in ("default", "auto"):
        rec = _records(tmp_path / out)
        assert [rec[n]["model"] for n in ("a.jpg", "b.png", "c.png", "d.webp")] == [PHOTO, PHOTO, PAPER, PAPER]
    # a named model still runs every file
    assert main(["upscale", str(mixed), "--out-dir", str(tmp_path / "named"), "--model", PAPER, "--device", "cpu"]) == 0
    assert {r["model"] for r in _records(tmp_path / "named").values()} == {PAPER}


def test_cli_auto_fallback_is_reported(tmp_path: Path, mixed: Path, install_builtin, capsys) -> None:
    install_builtin(PAPER)
    assert main(["upscale", str(mixed / "a.jpg"), "--model", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"[{PAPER} (Auto: JPEG input, quality 85; {PHOTO} is not installed)]" in out
    assert f"model auto: {PHOTO} is not installed: 1 file from cameras uses {PAPER}" in out
    assert main(["upscale", str(mixed / "a.jpg"), "--device", "cpu"]) == 0
    assert f"{PHOTO} is not installed" in capsys.readouterr().err
    assert (mixed / "a_x2.jpg").exists()


def test_cli_auto_without_builtin_models_is_a_usage_error(tmp_path: Path, mixed: Path, capsys) -> None:
    assert main(["upscale", str(mixed), "--out-dir", str(tmp_path / "out"), "-s", "3"]) == 2
    err = capsys.readouterr().err
    assert "--model auto" in err and "mlrn-x3" in err and "--model" in err
    assert not (tmp_path / "out").exists()
