"""Tests for the batch engine (mlrn_core.batch) and ``mlrn upscale``, end to end on the fixture folder.

The model is a tiny MLRN whose network branch is zeroed, so it computes an exact bicubic upscale
(``image_skip``): pixels can be checked (rotation, alpha, gray, 16 bit) and runs take milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mlrn_core import batch, distributed, imageio, registry, tiling
from mlrn_core.batch import BatchError, BatchOptions, plan_batch, run_batch
from mlrn_core.cli import main
from mlrn_core.model import DIV2K_RGB_MEAN, MLRN
from tests.fixtures_images import ARTIST, DATETIME_ORIGINAL, MARKER_RGB, H, W, make_fixture_folder

TAG_ORIENTATION, TAG_ARTIST, TAG_EXIF_IFD = 0x0112, 0x013B, 0x8769
TAG_DATETIME_ORIGINAL, TAG_PIXEL_X, TAG_PIXEL_Y = 0x9003, 0xA002, 0xA003
BAD = {"truncated.jpg": "truncated", "empty.png": "empty", "notes.png": "not an image"}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny convolutions run far faster on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def bicubic_mlrn(scale: int = 2) -> MLRN:
    """A tiny MLRN that outputs exactly the bicubic upscale of its input."""
    torch.manual_seed(0)
    net = MLRN(scale=scale, features=8, blocks=1, image_skip=True)
    with torch.no_grad():
        net.tail.weight.zero_()
        net.tail.bias.copy_(-torch.tensor(DIV2K_RGB_MEAN))
    return net.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registry.save_model(tmp_path_factory.mktemp("model") / "tiny.pt", bicubic_mlrn(), info={})


@pytest.fixture(scope="module")
def loaded(model_file: Path) -> registry.LoadedModel:
    return registry.load_model(str(model_file), 2)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    make_fixture_folder(folder)
    return folder


@pytest.fixture(scope="module")
def folder_run(fixture_dir: Path, model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI run over the whole fixture folder (recursive), shared by the fidelity tests."""
    out = tmp_path_factory.mktemp("run") / "out"
    rc = main(["upscale", str(fixture_dir), "-r", "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    lines = [json.loads(s) for s in batch.record_path(out).read_text(encoding="utf-8").splitlines()]
    return {"rc": rc, "out": out, "sidecar": {Path(r["input"]).name: r for r in lines}, "lines": lines}


def cli(*args: object) -> int:
    return main(["upscale", *map(str, args)])


def exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as im:
        return im.getexif()


def small_folder(root: Path, names: tuple[str, ...] = ("a.png", "b.png", "c.png"), size: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(root / name)
    return root


def no_part_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


# --------------------------------------------------------------------------- one run over the fixtures


def test_folder_run_exit_status_and_sidecar(folder_run: dict, fixture_dir: Path) -> None:
    assert folder_run["rc"] == 1  # three bad files failed
    side = folder_run["sidecar"]
    every = sorted(p.name for p in fixture_dir.rglob("*") if p.is_file())
    assert sorted(side) == every  # one line per file, no more
    assert len(folder_run["lines"]) == len(every)
    for name, reason in BAD.items():
        assert side[name]["status"] == "failed" and reason in side[name]["error"].lower(), side[name]
        assert side[name]["output"] is None
    for row in folder_run["lines"]:
        assert set(row) >= {"input", "output", "status", "model", "scale", "device", "seconds", "error"}
        assert row["model"] == "tiny" and row["scale"] == 2 and row["device"].startswith("CPU")
        if row["status"] == "ok":
            assert Path(row["output"]).is_file() and row["error"] is None
    assert sum(r["status"] == "ok" for r in folder_run["lines"]) == len(every) - len(BAD)
    assert no_part_files(folder_run["out"])


def test_subfolders_mirrored_and_non_ascii_name(folder_run: dict) -> None:
    out = folder_run["out"]
    assert (out / "sub" / "deeper" / "nested_x2.png").is_file()
    assert (out / "Été à Zürich 01_x2.jpg").is_file()
    with Image.open(out / "Été à Zürich 01_x2.jpg") as im:
        assert im.size == (2 * W, 2 * H)
        assert im.getexif()[TAG_ARTIST] == ARTIST


def test_exif_orientation_applied_and_reset(folder_run: dict) -> None:
    path = folder_run["out"] / "rotated_orientation6_x2.jpg"
    with Image.open(path) as im:
        assert im.size == (2 * H, 2 * W)  # upright: the 40x30 stored picture is 30 wide, 40 high
        assert im.info["dpi"] == pytest.approx((300, 300))
        rgb = np.asarray(im.convert("RGB")).astype(int)
        exif = im.getexif()
    assert exif.get(TAG_ORIENTATION, 1) == 1
    assert exif[TAG_ARTIST] == ARTIST
    sub = exif.get_ifd(TAG_EXIF_IFD)
    assert sub[TAG_DATETIME_ORIGINAL] == DATETIME_ORIGINAL
    assert (sub[TAG_PIXEL_X], sub[TAG_PIXEL_Y]) == (2 * H, 2 * W)
    # orientation 6 turns the stored top-left marker to the top-right corner
    assert np.abs(rgb[4, -5] - MARKER_RGB).max() < 40
    assert np.abs(rgb[-5, 4] - 128).max() < 20


def test_icc_profile_embedded_unchanged(folder_run: dict, fixture_dir: Path) -> None:
    for src, name in (("with_icc.jpg", "with_icc_x2.jpg"), ("picture.webp", "picture_x2.webp")):
        with Image.open(fixture_dir / src) as im:
            icc = im.info["icc_profile"]
        with Image.open(folder_run["out"] / name) as im:
            assert im.info.get("icc_profile") == icc, name
    with Image.open(folder_run["out"] / "with_icc_x2.jpg") as im:
        assert im.info["dpi"] == pytest.approx((240, 240))


@pytest.mark.parametrize("name", ["rgb16_x2.png", "rgb16_x2.tif"])
def test_16_bit_in_16_bit_out(folder_run: dict, fixture_dir: Path, name: str) -> None:
    out = cv2.imread(str(folder_run["out"] / name), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (2 * H, 2 * W, 3)
    assert np.count_nonzero(out % 257) > out.size // 2  # real 16-bit values, not 8-bit ones scaled up
    src = cv2.imread(str(fixture_dir / name.replace("_x2", "")), cv2.IMREAD_UNCHANGED).astype(np.float32)
    up = cv2.resize(src, (2 * W, 2 * H), interpolation=cv2.INTER_CUBIC)
    inner = (slice(4, -4), slice(4, -4))  # borders differ by padding convention
    assert np.abs(out[inner].astype(np.float32) - np.clip(up[inner], 0, 65535)).mean() < 400


def test_alpha_kept_and_upscaled_smoothly(folder_run: dict) -> None:
    with Image.open(folder_run["out"] / "soft_alpha_x2.png") as im:
        assert im.mode == "RGBA" and im.size == (2 * W, 2 * H)
        alpha = np.asarray(im)[:, :, 3].astype(int)
    row = alpha[H]
    assert row[0] <= 5 and row[-1] >= 250
    assert np.all(np.diff(row) >= -1)  # a smooth ramp, no jaggies or halos
    assert np.abs(alpha - alpha[:1]).max() <= 1  # the gradient is horizontal only
    with Image.open(folder_run["out"] / "palette_transparent_x2.png") as im:
        assert im.mode == "RGBA"


def test_grayscale_stays_grayscale(folder_run: dict) -> None:
    with Image.open(folder_run["out"] / "gray_x2.png") as im:
        assert im.mode == "L" and im.size == (2 * W, 2 * H)
        assert im.info["dpi"] == pytest.approx((72, 72), abs=0.05)  # PNG stores pixels per metre


def test_grayscale_stays_gray_even_if_the_network_tints_it(tmp_path: Path) -> None:
    torch.manual_seed(3)
    path = registry.save_model(tmp_path / "random.pt", MLRN(scale=2, features=8, blocks=1), info={})
    src = small_folder(tmp_path / "in", ("g.png",))
    Image.open(src / "g.png").convert("L").save(src / "g.png")
    assert cli(src, "--out-dir", tmp_path / "out", "--model", path, "--device", "cpu") == 0
    with Image.open(tmp_path / "out" / "g_x2.png") as im:
        assert im.mode == "L"


def test_palette_and_cmyk_become_rgb(folder_run: dict) -> None:
    with Image.open(folder_run["out"] / "palette_x2.png") as im:
        assert im.mode == "RGB"
    with Image.open(folder_run["out"] / "cmyk_x2.jpg") as im:
        assert im.mode == "RGB"
        r, g, b = np.asarray(im)[H, W].astype(int)
    assert r < 60 and g > 180 and b > 180  # cyan
    assert "CMYK" in " ".join(folder_run["sidecar"]["cmyk.jpg"]["warnings"])


def test_bad_files_are_named_with_reason_and_batch_goes_on(
    tmp_path: Path, fixture_dir: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "z.png"))
    shutil.copy(fixture_dir / "truncated.jpg", src / "m.jpg")
    (src / "empty.png").write_bytes(b"")
    rc = cli(src, "--out-dir", tmp_path / "out", "--model", model_file, "--device", "cpu")
    err = capsys.readouterr().err
    assert rc == 1
    assert (tmp_path / "out" / "a_x2.png").is_file() and (tmp_path / "out" / "z_x2.png").is_file()
    assert f"{src / 'm.jpg'}: file is truncated" in err
    assert f"{src / 'empty.png'}: file is empty" in err
    assert "2 upscaled, 2 failed" in err


# --------------------------------------------------------------------------- safety


def test_rerun_with_skip_does_only_what_is_missing(tmp_path: Path, model_file: Path) -> None:
    src, out = small_folder(tmp_path / "in"), tmp_path / "out"
    assert cli(src, "--out-dir", out, "--model", model_file, "--device", "cpu") == 0
    (out / "b_x2.png").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert cli(src, "--out-dir", out, "--model", model_file, "--device", "cpu") == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png") if p.name != "b_x2.png"} == before
    assert (out / "b_x2.png").is_file()
    rows = [json.loads(s) for s in batch.record_path(out).read_text().splitlines()]
    second = {Path(r["input"]).name: r["status"] for r in rows[3:]}
    assert second == {"a.png": "skipped", "b.png": "ok", "c.png": "skipped"} and len(rows) == 6


def test_rename_and_overwrite(tmp_path: Path, model_file: Path) -> None:
    src, out = small_folder(tmp_path / "in", ("a.png",)), tmp_path / "out"
    args = (src, "--out-dir", out, "--model", model_file, "--device", "cpu")
    assert cli(*args) == 0
    first = (out / "a_x2.png").read_bytes()
    assert cli(*args, "--on-exists", "rename") == 0
    assert cli(*args, "--on-exists", "rename") == 0
    assert (out / "a_x2 (1).png").read_bytes() == first and (out / "a_x2 (2).png").is_file()
    os.utime(out / "a_x2.png", ns=(0, 0))
    assert cli(*args, "--on-exists", "overwrite") == 0
    assert (out / "a_x2.png").stat().st_mtime_ns > 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_x2 (1).png", "a_x2 (2).png", "a_x2.png"]


def test_refuses_out_dir_that_is_an_input_folder(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_folder(tmp_path / "in")
    before = sorted(src.iterdir())
    assert cli(src, "--out-dir", src, "--model", model_file, "--suffix", "") == 2
    assert "is the input folder" in capsys.readouterr().err
    assert sorted(src.iterdir()) == before


def test_refuses_to_write_over_an_input(tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    data = (src / "a.png").read_bytes()
    assert cli(src / "a.png", "-o", src / "a.png", "--model", model_file) == 2
    assert cli(src / "a.png", "--suffix", "", "--model", model_file) == 2
    # a_x2.png next to a.png would replace the input file of that name
    shutil.copy(src / "b.png", src / "a_x2.png")
    assert cli(src / "a.png", src / "a_x2.png", "--out-dir", src, "--model", model_file) == 2
    err = capsys.readouterr().err
    assert err.count("would be written over the input") == 3
    assert (src / "a.png").read_bytes() == data and (src / "a_x2.png").read_bytes() == (src / "b.png").read_bytes()
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_x2.png", "b.png"]


def test_out_dir_inside_input_is_not_scanned(tmp_path: Path, model_file: Path) -> None:
    src = small_folder(tmp_path / "in")
    out = src / "upscaled"
    for _ in range(2):
        assert cli(src, "-r", "--out-dir", out, "--model", model_file, "--device", "cpu") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png", "c_x2.png"]
    plan = plan_batch([src], out, BatchOptions(recursive=True))
    assert all(item.action == batch.SKIP for item in plan)


def test_usage_errors(tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    assert cli(src, "--model", model_file) == 2  # a folder needs --out-dir
    assert cli(src / "a.png", src / "b.png", "--model", model_file) == 2
    assert cli(src / "a.png", src / "b.png", "-o", tmp_path / "x.png", "--model", model_file) == 2
    assert cli(src, "-o", tmp_path / "x.png", "--model", model_file) == 2
    assert cli(tmp_path / "missing.png", "--model", model_file) == 2
    assert cli(src / "a.png", "-s", "3", "--model", model_file) == 2  # an x2 model
    assert cli(src / "a.png", "-o", tmp_path / "x.gif", "--model", model_file) == 2
    assert cli(src / "a.png", "--model", tmp_path / "nope.pt") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 8 and all(line.startswith("mlrn upscale: ") for line in err)
    assert "give --out-dir" in err[0] and "missing.png" in err[4] and "x3" in err[5]
    with pytest.raises(SystemExit) as exc:
        cli(src / "a.png", "--quality", "0", "--model", model_file)
    assert exc.value.code == 2
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "b.png"]


def test_single_file_next_to_it_and_dash_o(tmp_path: Path, model_file: Path) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    assert cli(src / "a.png", "--model", model_file, "--device", "cpu") == 0
    assert (src / "a_x2.png").is_file() and not (src / batch.SIDECAR_NAME).exists()
    assert cli(src / "a.png", "-o", tmp_path / "o" / "big.jpg", "--model", model_file, "--quality", "80") == 0
    with Image.open(tmp_path / "o" / "big.jpg") as im:
        assert im.format == "JPEG" and im.size == (56, 48)


def test_cancel_stops_after_a_tile_and_leaves_nothing_partial(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png", "c.png"), size=48)
    out = tmp_path / "out"
    options = BatchOptions(tile=32, model=str(loaded.path))
    plan = plan_batch([src], out, options)
    calls: list[batch.BatchProgress] = []

    def cancel() -> bool:  # stop in the middle of the second file
        return any(p.position == 2 and p.tiles_done >= 3 for p in calls)

    summary = run_batch(plan, options, loaded, progress=calls.append, cancel=cancel)
    assert summary.cancelled and summary.not_started == 1
    assert [r.status for r in summary.results] == [batch.OK, batch.CANCELLED]
    assert max(p.tiles_done for p in calls if p.position == 2) == 3  # stopped right after the tile
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png"]
    assert no_part_files(tmp_path)
    assert "cancelled" in summary.describe()
    # the next run (skip) finishes the rest
    summary = run_batch(plan_batch([src], out, options), options, loaded)
    assert [r.status for r in summary.results] == [batch.SKIPPED, batch.OK, batch.OK]


def test_ctrl_c_stops_after_the_current_tile(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"), size=48)
    real = tiling.TileRunner.run
    tiles = []

    def run(self, lr):
        tiles.append(1)
        if len(tiles) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during the second tile
        return real(self, lr)

    monkeypatch.setattr(tiling.TileRunner, "run", run)
    rc = cli(src, "--out-dir", tmp_path / "out", "--model", model_file, "--tile", "32", "--device", "cpu")
    assert rc == 130 and len(tiles) == 2
    err = capsys.readouterr().err
    assert "SIGINT: stopping after the current tile" in err and "cancelled: 0 upscaled" in err
    out = tmp_path / "out"
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []  # nothing partial
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_progress_reports_files_tiles_and_eta(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"), size=64)
    options = BatchOptions(tile=32)
    reports: list[batch.BatchProgress] = []
    summary = run_batch(plan_batch([src], tmp_path / "out", options), options, loaded, progress=reports.append)
    assert len(summary.succeeded) == 2
    assert all(p.total == 2 for p in reports)
    assert [p.fraction for p in reports] == sorted(p.fraction for p in reports)
    assert reports[-1].fraction == 1.0 and reports[-1].eta_s == pytest.approx(0.0, abs=1e-6)
    assert any(p.tiles_total > 1 and 0 < p.item_fraction < 1 and p.eta_s is not None for p in reports)


def test_prefetch_on_and_off_give_identical_files(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png", "c.png"))
    for prefetch in (True, False):
        options = BatchOptions(prefetch=prefetch)
        summary = run_batch(plan_batch([src], tmp_path / str(prefetch), options), options, loaded)
        assert len(summary.succeeded) == 3
    for name in ("a_x2.png", "b_x2.png", "c_x2.png"):
        assert (tmp_path / "True" / name).read_bytes() == (tmp_path / "False" / name).read_bytes()


def test_failures_while_upscaling_and_writing_do_not_stop_the_batch(
    tmp_path: Path, loaded: registry.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png", "c.png"))
    real_up, real_write = tiling.upscale_picture, imageio.write_image

    def upscale(model, picture, **kw):
        if picture.path.name == "a.png":
            raise MemoryError
        return real_up(model, picture, **kw)

    def write(picture, path, *a, **kw):
        if Path(path).name == "b_x2.png":
            raise imageio.ImageIOError(path, "disk is full", "write")
        return real_write(picture, path, *a, **kw)

    monkeypatch.setattr(tiling, "upscale_picture", upscale)
    monkeypatch.setattr(imageio, "write_image", write)
    options = BatchOptions()
    summary = run_batch(plan_batch([src], tmp_path / "out", options), options, loaded)
    assert [(r.item.source.name, r.status, r.error) for r in summary.results] == [
        ("a.png", "failed", "out of memory while upscaling (try a smaller tile size)"),
        ("b.png", "failed", f"output '{tmp_path / 'out' / 'b_x2.png'}': disk is full"),
        ("c.png", "ok", None),
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_x2.png"]


def test_format_conversion_and_what_it_cannot_hold(tmp_path: Path, fixture_dir: Path, model_file: Path) -> None:
    out = tmp_path / "out"
    files = [fixture_dir / n for n in ("soft_alpha.png", "rgb16.png", "with_icc.jpg")]
    assert cli(*files, "--format", "jpg", "--quality", "90", "--out-dir", out, "--model", model_file) == 0
    rows = {Path(r["input"]).name: r for r in map(json.loads, batch.record_path(out).read_text().splitlines())}
    assert "alpha" in " ".join(rows["soft_alpha.png"]["warnings"]).lower()
    assert "16-bit" in " ".join(rows["rgb16.png"]["warnings"])
    assert "warnings" not in rows["with_icc.jpg"]
    for name in ("soft_alpha_x2.jpg", "rgb16_x2.jpg", "with_icc_x2.jpg"):
        with Image.open(out / name) as im:
            assert im.format == "JPEG" and im.mode == "RGB"


def test_two_sources_with_one_output_name_are_told_apart(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    Image.open(src / "a.png").save(src / "a.jpg")
    options = BatchOptions(fmt="png")
    plan = plan_batch([src], tmp_path / "out", options)
    assert [(i.source.name, i.output.name, i.action) for i in plan] == [
        ("a.jpg", "a_x2.png", "write"),
        ("a.png", "a_x2 (1).png", "write"),
    ]
    assert len(run_batch(plan, options, loaded).succeeded) == 2
    # and deterministically so: a rerun skips both
    assert [i.action for i in plan_batch([src], tmp_path / "out", options)] == ["skip", "skip"]


def test_an_output_that_appears_after_planning_is_not_overwritten(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    theirs = b"made by someone else meanwhile"
    for policy in ("skip", "rename"):
        out = tmp_path / policy
        options = BatchOptions(on_exists=policy, sidecar=False)
        plan = plan_batch([src], out, options)
        assert [i.action for i in plan] == ["write", "write"]
        out.mkdir()
        (out / "a_x2.png").write_bytes(theirs)
        summary = run_batch(plan, options, loaded)
        assert (out / "a_x2.png").read_bytes() == theirs
        if policy == "skip":
            assert [r.status for r in summary.results] == ["skipped", "ok"]
            assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
        else:
            assert [r.output.name for r in summary.results] == ["a_x2 (1).png", "b_x2.png"]


def test_plan_preview_actions(tmp_path: Path) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    (src / "notes.txt").write_text("x")
    (src / ".hidden.png").write_bytes(b"")
    (src / "sub").mkdir()
    (src / "sub" / "c.png").write_bytes((src / "a.png").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_x2.png").write_bytes(b"old")
    plan = plan_batch([src], out, BatchOptions())
    assert [(i.relative.as_posix(), i.action) for i in plan] == [
        ("a.png", "skip"),
        ("b.png", "write"),
        ("notes.txt", "unsupported"),
    ]
    assert plan.describe() == "1 to write, 1 skip (exist), 1 unsupported"
    plan = plan_batch([src, src / "a.png"], out, BatchOptions(recursive=True, on_exists="rename", suffix="-big"))
    assert [(i.relative.as_posix(), i.describe()) for i in plan] == [
        ("a.png", "write"),
        ("b.png", "write"),
        ("notes.txt", "unsupported ('.txt' files)"),
        ("sub/c.png", "write"),
    ]
    assert plan.items[0].output == out / "a-big.png"
    assert (
        plan_batch([src / "a.png"], out, BatchOptions(on_exists="rename")).items[0].describe()
        == "rename -> a_x2 (1).png"
    )


def test_unsupported_files_are_reported_not_failed(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    (src / "layers.psd").write_bytes(b"8BPS")
    assert main(["-v", "upscale", str(src), "--out-dir", str(tmp_path / "out"), "--model", str(model_file)]) == 0
    err = capsys.readouterr().err
    assert "1 upscaled, 0 failed, 1 unsupported" in err and "layers.psd: unsupported file type" in err


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = small_folder(tmp_path / "in")
    assert cli(src, "--out-dir", tmp_path / "out", "--dry-run", "-s", "3") == 0  # no model needed
    out = capsys.readouterr().out
    assert "a_x3.png" in out and "3 files: 3 to write" in out
    assert not (tmp_path / "out").exists()


def test_options_are_validated() -> None:
    for bad in ({"scale": 5}, {"fmt": "gif"}, {"on_exists": "ask"}, {"quality": 0}, {"tile": 8}, {"suffix": "a/b"}):
        with pytest.raises(ValueError):
            BatchOptions(**bad)
    with pytest.raises(BatchError, match="does not exist"):
        plan_batch(["/no/such/folder"], None, BatchOptions())
    with pytest.raises(BatchError, match="output folder is needed"):
        plan_batch([Path(__file__).parent], None, BatchOptions())


def test_shard_and_env() -> None:
    items = tuple(batch.BatchItem(i, Path(f"{i}.png"), Path(f"o{i}.png"), batch.WRITE) for i in range(7))
    plan = batch.BatchPlan(items)
    shards = [plan.shard(r, 3) for r in range(3)]
    assert sorted(i.index for s in shards for i in s) == list(range(7))
    assert [i.index for i in shards[1]] == [1, 4]
    assert distributed.from_env({}) == distributed.Dist(0, 1, 0)
    assert distributed.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == distributed.Dist(1, 2, 1)
    with pytest.raises(distributed.TorchrunError, match="RANK=2, WORLD_SIZE=2"):
        distributed.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(distributed.TorchrunError, match="cannot read"):
        distributed.from_env({"WORLD_SIZE": "two"})
    assert distributed.device_for("cpu", distributed.Dist(1, 2, 1)) == torch.device("cpu")


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["upscale", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--scale",
        "--output",
        "--out-dir",
        "--model",
        "--device",
        "--tile",
        "--format",
        "--quality",
        "--recursive",
        "--suffix",
        "--on-exists",
        "--dry-run",
        "--no-prefetch",
        "--threads",
        "exit status",
        "the folder's record",
    ):
        assert option in text, option
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "upscale" in capsys.readouterr().out


def test_the_record_is_kept_out_of_the_photos_and_the_summary_says_where(
    tmp_path: Path, model_file: Path, capsys
) -> None:
    from mlrn_core import paths

    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    out = tmp_path / "client delivery"
    assert cli(src, "--out-dir", out, "--model", model_file, "--device", "cpu") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]  # the photos only
    record = batch.record_path(out)
    assert record.parent == paths.user_data_dir() / "batch-records" and record.name.startswith("client delivery-")
    assert [json.loads(s)["status"] for s in record.read_text().splitlines()] == ["ok", "ok"]
    assert f"record: {record}" in capsys.readouterr().err
    # another folder of the same name elsewhere gets its own record
    assert batch.record_path(tmp_path / "x" / "client delivery") != record


def test_cli_precision_is_forced_or_refused_with_a_reason(tmp_path, model_file, capsys):
    src = small_folder(tmp_path / "in", ("a.png",), size=40) / "a.png"
    assert cli(src, "-o", tmp_path / "exact.png", "--model", model_file, "--device", "cpu", "--precision", "fp32") == 0
    assert "fp32" in capsys.readouterr().err
    loaded = registry.load_model(str(model_file), 2)
    expected = tiling.upscale_array(
        loaded.model, imageio.read_image(src).rgb, device="cpu", precision="fp32", dtype=np.uint8
    )
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "exact.png")), expected)
    rc = cli(src, "-o", tmp_path / "half.png", "--model", model_file, "--device", "cpu", "--precision", "fp16")
    assert rc != 0 and "fp16 is for GPUs" in capsys.readouterr().err
    assert not (tmp_path / "half.png").exists()


def test_cli_quality_best_is_the_self_ensemble_and_a_number_is_still_the_jpeg_quality(tmp_path, capsys):
    torch.manual_seed(3)  # an untrained net: no symmetry, so each of the 8 passes differs
    model_path = registry.save_model(tmp_path / "rough.pt", MLRN(scale=2, features=8, blocks=1).eval(), info={})
    src = small_folder(tmp_path / "in", ("a.png",), size=40) / "a.png"
    common = ("--model", model_path, "--device", "cpu", "--precision", "fp32")
    assert cli(src, "-o", tmp_path / "best.png", "--quality", "best", *common) == 0
    assert "best quality" in capsys.readouterr().err
    assert cli(src, "-o", tmp_path / "normal.png", "--quality", "normal", *common) == 0
    net = registry.load_model(str(model_path), 2).model
    rgb = imageio.read_image(src).rgb
    best = np.asarray(Image.open(tmp_path / "best.png"))
    normal = np.asarray(Image.open(tmp_path / "normal.png"))
    kw = {"device": "cpu", "precision": "fp32", "dtype": np.uint8}
    np.testing.assert_array_equal(best, tiling.upscale_array(net, rgb, ensemble=True, **kw))
    np.testing.assert_array_equal(normal, tiling.upscale_array(net, rgb, **kw))
    assert np.abs(best.astype(int) - normal).max() > 2
    # the record of a folder batch says which quality made the files
    out = tmp_path / "folder"
    assert cli(src.parent, "--out-dir", out, "--quality", "best", *common) == 0
    rows = [json.loads(s) for s in batch.record_path(out).read_text(encoding="utf-8").splitlines()]
    assert [r["quality"] for r in rows] == ["best"]
    # a number is the JPEG quality, as before; both can be given; anything else is refused with the choices
    for args in (("--quality", "best", "--quality", "60"), ("--quality", "best", "--jpeg-quality", "60")):
        dest = tmp_path / f"q{len(args)}-{args[-2]}.jpg"
        assert cli(src, "-o", dest, *args, *common) == 0
        assert "best quality" in capsys.readouterr().err
        with Image.open(dest) as im:
            q60 = im.quantization[0][0]
    with Image.open(tmp_path / "best.png") as im:
        im.convert("RGB").save(tmp_path / "ref60.jpg", quality=60)
    with Image.open(tmp_path / "ref60.jpg") as im:
        assert q60 == im.quantization[0][0]
    with pytest.raises(SystemExit) as exc:
        cli(src, "-o", tmp_path / "x.png", "--quality", "great", *common)
    assert exc.value.code == 2
    assert "expected normal, best or a JPEG/WebP quality" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux file systems take names that are not UTF-8")
def test_a_name_that_is_not_utf8_does_not_stop_the_batch_and_is_recorded_exactly(tmp_path, model_file):
    """Issue 33, item 3: the record writer failed on such a name and the rest of the folder was never done."""
    src = small_folder(tmp_path / "in", ("a.png", "z.png"))
    odd = os.fsencode(src) + b"/caf\xe9.png"
    shutil.copyfile(src / "a.png", odd)
    out = tmp_path / "out"
    assert cli(src, "--out-dir", out, "--model", model_file) == 0
    assert sorted(os.listdir(os.fsencode(out))) == [b"a_x2.png", b"caf\xe9_x2.png", b"z_x2.png"]
    raw = batch.record_path(out).read_bytes()
    raw.decode("utf-8")  # the record stays UTF-8
    rows = [json.loads(s) for s in raw.decode("utf-8").splitlines()]
    assert sorted(os.fsencode(r["input"]) for r in rows) == sorted(
        [odd, os.fsencode(src / "a.png"), os.fsencode(src / "z.png")]
    )
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs FIFOs and /dev/zero")
def test_a_fifo_and_a_link_to_a_device_named_like_images_are_reported_not_read(tmp_path, model_file):
    """Issue 33, item 4: a FIFO hung the batch (and --dry-run) and a link to /dev/zero grew memory without end."""
    import subprocess

    src = small_folder(tmp_path / "in", ("a.png", "z.png"))
    os.mkfifo(src / "pipe.png")
    (src / "zero.png").symlink_to("/dev/zero")
    out = tmp_path / "out"
    base = [
        sys.executable,
        "-m",
        "mlrn_core.cli",
        "upscale",
        str(src),
        "--out-dir",
        str(out),
        "--model",
        str(model_file),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    dry = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, timeout=120, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "pipe.png" in dry.stdout and "FIFO (named pipe)" in dry.stdout and "device" in dry.stdout
    run = subprocess.run(base, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr  # the unsupported files are reported, the good ones upscaled
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "z_x2.png"]
    # read directly, they are refused with the reason, at once
    with pytest.raises(imageio.ImageIOError, match="FIFO"):
        imageio.read_image(src / "pipe.png")
    with pytest.raises(imageio.ImageIOError, match="a device"):
        imageio.read_image(src / "zero.png")


def test_counts_are_said_in_the_right_number(tmp_path, model_file, capsys):
    """Issue 34, item 5: '1 files: 1 to write'."""
    from mlrn_core.terminal import plural

    assert (plural(0, "file"), plural(1, "file"), plural(2, "file")) == ("0 files", "1 file", "2 files")
    src = small_folder(tmp_path / "in", ("a.png",))
    assert cli(src / "a.png", "--out-dir", tmp_path / "o", "--model", model_file, "--dry-run") == 0
    assert "1 file: 1 to write" in capsys.readouterr().out
    assert cli(src / "a.png", "--out-dir", tmp_path / "o", "--model", model_file) == 0
    assert "upscaling 1 of 1 file x2" in capsys.readouterr().err


def test_an_output_path_under_a_file_says_which_file_is_in_the_way(tmp_path, model_file, capsys):
    """Issue 33, item 7: '-o afile/out.png' said the name 'already exists'."""
    src = small_folder(tmp_path / "in", ("a.png",)) / "a.png"
    (tmp_path / "afile").write_text("a file, not a folder")
    for out in (tmp_path / "afile" / "out.png", tmp_path / "afile" / "sub" / "out.png"):
        assert cli(src, "-o", out, "--model", model_file) == 1
        err = capsys.readouterr().err
        assert f"'{tmp_path / 'afile'}' is a file, not a folder; choose another output path" in err
    assert (tmp_path / "afile").read_text() == "a file, not a folder"


def test_same_format_keeps_a_lossless_webp_lossless(tmp_path, model_file):
    from mlrn_core.auto import sniff_format

    src = tmp_path / "in"
    src.mkdir()
    rgb = np.random.default_rng(2).integers(0, 256, (24, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "l.webp", lossless=True)
    Image.fromarray(rgb).save(src / "q.webp", quality=80)
    assert cli(src, "--out-dir", tmp_path / "out", "--model", model_file, "--jpeg-quality", "70") == 0
    assert sniff_format(tmp_path / "out" / "l_x2.webp").label == "lossless WebP"
    assert sniff_format(tmp_path / "out" / "q_x2.webp").label == "lossy WebP"
