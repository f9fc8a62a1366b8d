"""Hostile and unusual inputs (issue 14): each case from the generated corpus in tests/hostile_corpus.py,
with the message the user gets and the promise that nothing is lost (no partial file, no output written
over another, originals untouched). Memory limits are measured: peak RSS of a child process running the
real ``mlrn upscale`` (getrusage of the child itself), never guessed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from mlrn_core import batch, imageio, registry, tiling
from mlrn_core.batch import BatchOptions, plan_batch, run_batch
from mlrn_core.cli import main
from mlrn_core.model import MLRN
from tests import hostile_corpus as corpus
from tests.fixtures_images import ARTIST
from tests.helpers import REPO, tiny_model

ONE_GB_KB = 1024 * 1024

# VmHWM is this process's own peak (ru_maxrss on Linux also counts the parent it was forked from)
_PEAK_SCRIPT = """
import resource, sys
from mlrn_core.cli import main

def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            return int(next(line for line in fh if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak

try:
    rc = main(sys.argv[1:])
finally:
    print(f"PEAK_KB {peak_kb()}", file=sys.stderr)
sys.exit(rc)
"""


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registry.save_model(tmp_path_factory.mktemp("model") / "tiny.pt", tiny_model(2), info={})


@pytest.fixture(scope="module")
def loaded(model_file: Path) -> registry.LoadedModel:
    return registry.load_model(str(model_file), 2)


def run_cli_measured(tmp_path: Path, *args: object, timeout: float = 180) -> tuple[int, str, int]:
    """Run ``mlrn ARGS`` in a child process; (exit status, stderr, peak RSS of the child in KiB)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MLRN_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
    assert peak, proc.stderr
    return proc.returncode, proc.stderr, peak[-1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def part_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def small_folder(root: Path, names: tuple[str, ...] = ("a.png", "b.png", "c.png")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(corpus.photo(16, 20, seed=k)).save(root / name)
    return root


# ------------------------------------------------------------------------------------------ memory bombs


def test_png_bomb_is_refused_before_decoding_under_1_gb(tmp_path: Path, model_file: Path) -> None:
    bomb = corpus.png_bomb(tmp_path / "bomb.png")  # 25000 x 25000: Pillow itself would only warn
    assert bomb.stat().st_size < 1000
    before = digest(bomb)
    out = tmp_path / "out.png"
    rc, err, peak_kb = run_cli_measured(tmp_path, "upscale", bomb, "-o", out, "--model", model_file, "--device", "cpu")
    assert rc == 1, err
    assert "bomb.png" in err and "too large (25000 x 25000 = 625 megapixels, the limit is 400 megapixels)" in err
    assert "DecompressionBombWarning" not in err and "Traceback" not in err
    assert peak_kb < ONE_GB_KB, f"peak RSS {peak_kb / 1024:.0f} MiB"
    assert not out.exists() and not part_files(tmp_path) and digest(bomb) == before


def test_pixel_limit_is_an_error_at_any_size_over_it(tmp_path: Path) -> None:
    for w, h in ((25_000, 25_000), (40_000, 40_000), (400_000_001, 1)):
        path = corpus.png_bomb(tmp_path / f"b{w}.png", w, h)
        with pytest.raises(imageio.ImageIOError, match="too large.*nothing was decoded"):
            imageio.read_image(path)


def test_hyper_parameter_bomb_is_refused_before_building_under_1_gb(tmp_path: Path) -> None:
    bomb = corpus.hparam_bomb_model(tmp_path / "huge.pt")  # a small file claiming 20000 channels
    photo = tmp_path / "p.png"
    Image.fromarray(corpus.photo()).save(photo)
    rc, err, peak_kb = run_cli_measured(tmp_path, "upscale", photo, "--model", bomb, "--device", "cpu")
    assert rc == 2, err
    assert "huge.pt" in err and "features=20000" in err and "Traceback" not in err
    assert peak_kb < ONE_GB_KB, f"peak RSS {peak_kb / 1024:.0f} MiB"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == ["p.png"]


def test_hyper_parameters_are_checked_against_the_weights_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = corpus.hparam_bomb_model(tmp_path / "wide.pt", features=256)  # within bounds, but not its weights
    built: list[int] = []
    real_init = MLRN.__init__

    def spy(self, **kw):
        if torch.empty(0).device.type != "meta":
            built.append(kw.get("features", 32))
        real_init(self, **kw)

    monkeypatch.setattr(MLRN, "__init__", spy)
    expected = r"wide.pt.*'head.weight' is \[256, 3, 3, 3\].*stored weights are \[8"
    with pytest.raises(registry.ModelError, match=expected):
        registry.load_model(str(wide))
    assert built == []  # only the meta-device reference was made: nothing allocated for 256 channels


def test_archive_declaring_more_than_a_model_holds_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    monkeypatch.setattr(registry, "MAX_MODEL_BYTES", 4_000_000)  # 1 GB in use; smaller here to stay fast
    path = tmp_path / "zipbomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", b"\0" * 5_000_000)  # 5 MB of zeros in a few kB
    assert path.stat().st_size < 50_000
    loads: list[Path] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]))
    with pytest.raises(registry.ModelError, match="zipbomb.pt.*declares 5 MB of data.*limit 4 MB"):
        registry.read_model_file(path)
    assert loads == []  # refused before torch read anything


# ---------------------------------------------------------------------------- outputs under concurrency


def test_create_if_absent_two_writers_one_name_never_lose_a_file(tmp_path: Path) -> None:
    target = tmp_path / "same.png"
    pictures = [imageio.picture_from_array(corpus.photo(seed=k)) for k in range(6)]
    start = threading.Barrier(len(pictures))
    outcome: dict[int, str] = {}

    def write(k: int) -> None:
        start.wait()
        try:
            imageio.write_image(pictures[k], target)
            outcome[k] = "ok"
        except imageio.OutputExistsError as exc:
            outcome[k] = str(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(len(pictures))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [k for k, v in outcome.items() if v == "ok"]
    assert len(winners) == 1
    for k, message in outcome.items():
        if k != winners[0]:
            assert "same.png" in message and "already exists (it was not replaced)" in message
    back = np.asarray(Image.open(target))
    assert np.array_equal(back, corpus.photo(seed=winners[0]))  # the winner's pixels, whole
    assert not part_files(tmp_path)


def test_a_file_appearing_while_encoding_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "late.png"
    real = imageio._ENCODERS["png"]

    def slow_encoder(fp, job):
        target.write_bytes(b"written by another program meanwhile")
        real(fp, job)

    monkeypatch.setitem(imageio._ENCODERS, "png", slow_encoder)
    with pytest.raises(imageio.OutputExistsError, match="late.png"):
        imageio.write_image(imageio.picture_from_array(corpus.photo()), target)
    assert target.read_bytes() == b"written by another program meanwhile"
    assert not part_files(tmp_path)


@pytest.mark.parametrize("on_exists", ["skip", "rename"])
def test_batch_never_replaces_an_output_another_run_wrote_meanwhile(
    tmp_path: Path, loaded: registry.LoadedModel, monkeypatch: pytest.MonkeyPatch, on_exists: str
) -> None:
    src = small_folder(tmp_path / "in", ("a.png", "b.png"))
    out = tmp_path / "out"
    options = BatchOptions(on_exists=on_exists)
    plan = plan_batch([src], out, options)
    assert [i.action for i in plan] == ["write", "write"]
    real_up = tiling.upscale_picture

    def other_run_finishes_first(model, picture, **kw):
        result = real_up(model, picture, **kw)
        if picture.path.name == "a.png":
            (out / "a_x2.png").write_bytes(b"the other run's result")
        return result

    monkeypatch.setattr(tiling, "upscale_picture", other_run_finishes_first)
    summary = run_batch(plan, options, loaded)
    assert (out / "a_x2.png").read_bytes() == b"the other run's result"  # never replaced
    rows = [json.loads(s) for s in batch.record_path(out).read_text(encoding="utf-8").splitlines()]
    oks = [r["output"] for r in rows if r["status"] == "ok"]
    assert len(oks) == len(set(oks))
    a = next(r for r in summary.results if r.item.source.name == "a.png")
    if on_exists == "skip":
        assert a.status == batch.SKIPPED and "appeared while this file was upscaled" in a.error
    else:
        assert a.status == batch.OK and a.output == out / "a_x2 (1).png"
    assert not part_files(out)


def test_two_overlapping_cli_runs_never_lose_an_output(tmp_path: Path, model_file: Path) -> None:
    src = small_folder(tmp_path / "in", tuple(f"p{k}.png" for k in range(4)))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # this MLRN_HOME: the record is found
    cmd = [sys.executable, "-m", "mlrn_core.cli", "upscale", str(src), "--out-dir", str(out), "--model",
           str(model_file), "--device", "cpu"]  # fmt: skip
    runs = [subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [r.communicate(timeout=300)[1] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], errs
    rows = [json.loads(s) for s in batch.record_path(out).read_text(encoding="utf-8").splitlines()]
    oks = [r["output"] for r in rows if r["status"] == "ok"]
    assert sorted(oks) == sorted(str(out / f"p{k}_x2.png") for k in range(4))  # each output once: no loss
    for k in range(4):
        assert imageio.read_image(out / f"p{k}_x2.png").width == 40
    assert not part_files(out)


# ------------------------------------------------------------------------------ per-file planning errors


def test_an_over_long_output_name_fails_alone_and_the_rest_runs(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_stem = "n" * 250  # 254 bytes with '.png' (allowed); '_x2' makes the output name 257 bytes
    src = small_folder(tmp_path / "in", ("a.png", f"{long_stem}.png", "c.png"))
    out = tmp_path / "out"
    rc = main(["upscale", str(src), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "c_x2.png"]
    assert "file name too long for the file system: use a shorter name, suffix or folder" in err
    assert f"{long_stem}.png" in err and "Traceback" not in err
    # a rerun (the documented way to resume) skips what is done and reports the same one file
    rc = main(["upscale", str(src), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    assert rc == 1 and "file name too long" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_searched_fails_alone(
    tmp_path: Path, loaded: registry.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in"
    small_folder(src / "locked", ("x.png",))
    small_folder(src / "open", ("y.png",))
    out = tmp_path / "out"
    (out / "locked").mkdir(parents=True)
    real_is_dir = Path.is_dir

    def is_dir(self: Path) -> bool:  # as a folder without search (x) permission answers (root ignores chmod)
        if self.parent == out / "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    options = BatchOptions(recursive=True)
    plan = plan_batch([src], out, options)
    monkeypatch.setattr(Path, "is_dir", real_is_dir)
    locked = next(i for i in plan if i.source.name == "x.png")
    assert locked.action == batch.ERROR and "output folder is not writable" in locked.note
    summary = run_batch(plan, options, loaded)
    assert [r.status for r in summary.results if r.item.source.name == "y.png"] == [batch.OK]
    assert [r.status for r in summary.results if r.item.source.name == "x.png"] == [batch.FAILED]


def test_recursive_run_reports_subfolders_it_cannot_read(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    small_folder(src, ("top.png",))
    small_folder(src / "private", ("hidden.png",))
    real_scandir = os.scandir

    def scandir(path=None):
        if path is not None and Path(path) == src / "private":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "out"
    rc = main(["upscale", str(src), "-r", "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1  # not a silent exit 0
    assert f"FAILED  {src / 'private'}: cannot read this input folder (permission denied" in err
    assert (out / "top_x2.png").exists()


def test_output_folder_is_checked_before_the_picture_is_upscaled(
    tmp_path: Path, loaded: registry.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    small_folder(src / "sub", ("b.png",))
    out = tmp_path / "out"
    real_open = os.open

    def fake_open(path, flags, mode=0o777, **kw):  # 'sub' behaves like a read-only folder
        if Path(path).parent == out / "sub" and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    upscaled: list[str] = []
    real_up = tiling.upscale_picture

    def spy(model, picture, **kw):
        upscaled.append(picture.path.name)
        return real_up(model, picture, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(tiling, "upscale_picture", spy)
    options = BatchOptions(recursive=True)
    summary = run_batch(plan_batch([src], out, options), options, loaded)
    b = next(r for r in summary.results if r.item.source.name == "b.png")
    assert b.status == batch.FAILED
    assert b.error == (
        f"output folder '{out / 'sub'}': permission denied: the output folder is not writable; "
        "choose another output folder"
    )
    assert upscaled == ["a.png"]  # b.png was never read or upscaled
    assert (out / "a_x2.png").exists() and not part_files(out)


def test_a_record_that_cannot_be_written_is_said_so(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    out = tmp_path / "out"
    record = batch.record_path(out)
    record.mkdir(parents=True)  # the record's name is taken by a folder
    rc = main(["upscale", str(src), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0 and (out / "a_x2.png").exists()
    assert f"the batch record '{record}' cannot be written" in err
    assert f"record: {record}" not in err


def test_write_failure_names_the_output_and_what_to_do(
    tmp_path: Path, loaded: registry.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = small_folder(tmp_path / "in", ("a.png",))
    out = tmp_path / "out"

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.os, "link", full)
    summary = run_batch(plan_batch([src], out, BatchOptions()), BatchOptions(), loaded)
    assert summary.results[0].error == (
        f"output '{out / 'a_x2.png'}': disk is full: free some space or choose an output folder on another disk"
    )
    assert not part_files(out) and not (out / "a_x2.png").exists()


# ---------------------------------------------------------------------------------------- model messages


def test_model_file_messages_are_whole_and_say_what_to_do(tmp_path: Path) -> None:
    import re

    cases = {
        corpus.pickle_with_code(tmp_path / "evil.pt"): r"contains program code or objects that are not plain "
        r"weights \(Unsupported global: GLOBAL (builtins\.)?print\), so it was not loaded \(loading it could run "
        r"that code\)\. Use model files only from sources you trust",
        corpus.random_bytes(tmp_path / "noise.pt"): r"is not a PyTorch model file at all \(random or foreign "
        r"bytes\); pick an MLRN model file \(\.pt\)",
        corpus.nan_model(tmp_path / "nan.pt"): r"its weights contain NaN or infinite values",
    }
    for path, expected in cases.items():
        with pytest.raises(registry.ModelError) as info:
            registry.load_model(str(path))
        assert f"'{path.name}'" in str(info.value) and re.search(expected, str(info.value)), str(info.value)


def test_unusable_files_in_the_user_models_folder_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlrn_core import paths

    folder = paths.user_models_dir()
    corpus.random_bytes(folder / "broken.pt")
    try:
        assert main(["models"]) == 0
        err = capsys.readouterr().err
        assert f"cannot use {folder / 'broken.pt'}" in err and "not a PyTorch model file at all" in err
        photo = tmp_path / "p.png"
        Image.fromarray(corpus.photo()).save(photo)
        assert main(["upscale", str(photo), "--model", "broken"]) == 2
        err = capsys.readouterr().err
        assert "no model named" not in err and "'broken.pt' cannot be used" in err
    finally:
        (folder / "broken.pt").unlink()


# ------------------------------------------------------------------------------------- point 8 of issue


@pytest.mark.builtin_models
def test_images_one_or_two_pixels_thin_keep_their_colours(tmp_path: Path) -> None:
    model = registry.load_model(None, 2)
    src = tmp_path / "in"
    src.mkdir()
    for h, w in ((1, 40), (2, 40), (40, 1), (40, 2), (1, 1)):
        corpus.thin_png(src / f"t{h}x{w}.png", h, w)
    summary = run_batch(plan_batch([src], tmp_path / "out", BatchOptions()), BatchOptions(), model)
    assert len(summary.succeeded) == 5
    for r in summary.succeeded:
        out = np.asarray(Image.open(r.output)).astype(int)
        assert np.abs(out - np.array([204, 77, 26])).max() <= 3, (r.output.name, out.reshape(-1, 3).mean(0))


def test_a_32_bit_float_tiff_is_read(tmp_path: Path) -> None:
    rgb = corpus.float_tiff(tmp_path / "hdr.tif")
    pic = imageio.read_image(tmp_path / "hdr.tif")
    assert pic.bit_depth == 16 and not pic.grayscale
    assert np.allclose(pic.rgb, rgb, atol=1e-6)


def test_animated_webp_says_only_the_first_frame_is_upscaled(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    src = tmp_path / "in"
    src.mkdir()
    corpus.animated_webp(src / "anim.webp", frames=3)
    summary = run_batch(plan_batch([src], tmp_path / "out", BatchOptions()), BatchOptions(), loaded)
    (result,) = summary.results
    assert result.status == batch.OK
    assert any("animated (3 frames): only the first frame is upscaled" in w for w in result.warnings)


def test_an_all_nan_network_writes_nothing_and_says_so(tmp_path: Path) -> None:
    net = tiny_model(2)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    src = small_folder(tmp_path / "in", ("a.png",))
    out = tmp_path / "out"
    summary = run_batch(plan_batch([src], out, BatchOptions()), BatchOptions(), net)
    (result,) = summary.results
    assert result.status == batch.FAILED and "invalid values (NaN or infinity), so nothing was written" in result.error
    assert not (out / "a_x2.png").exists() and not part_files(out)


def test_unfinished_files_of_a_killed_run_are_cleaned_up(tmp_path: Path, loaded: registry.LoadedModel) -> None:
    import fcntl

    src = small_folder(tmp_path / "in", ("a.png",))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".b_x2.png.0123456789ab.part"  # left by a run killed with -9
    stale.write_bytes(b"half an image")
    busy = out / ".c_x2.png.ba9876543210.part"  # being written right now by another run
    busy.write_bytes(b"being written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(busy, (old, old))
    with open(busy, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        summary = run_batch(plan_batch([src], out, BatchOptions()), BatchOptions(), loaded)
        assert summary.results[0].status == batch.OK
        assert not stale.exists() and busy.exists()


def test_output_file_that_is_a_folder_is_a_usage_error(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "p.png"
    Image.fromarray(corpus.photo()).save(photo)
    (tmp_path / "x.png").mkdir()
    assert main(["upscale", str(photo), "-o", str(tmp_path / "x.png"), "--model", str(model_file)]) == 2
    assert "output file" in capsys.readouterr().err and "is a folder" in capsys.readouterr().err + "is a folder"


def test_negative_threads_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["upscale", str(tmp_path), "--threads", "-3"])
    assert info.value.code == 2
    assert "threads must be 0 (automatic) or a positive number, got '-3'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- formats and RAW


def test_files_named_like_camera_raw_that_are_not_get_a_clear_message(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TIFF (or anything) named .CR2/.NEF is developed as RAW (tests/test_raw.py has real ones), fails with a
    message naming the file and what to do, and the rest of the folder is upscaled."""
    raw = corpus.fake_raw(tmp_path / "IMG_0001.CR2")
    with pytest.raises(imageio.ImageIOError, match="IMG_0001.CR2.*not a camera RAW file.*16-bit TIFF"):
        imageio.read_image(raw)
    assert main(["upscale", str(raw), "--model", str(model_file), "--device", "cpu"]) == 1
    assert "not a camera RAW file LibRaw can read" in capsys.readouterr().err
    folder = tmp_path / "shoot"
    small_folder(folder, ("a.jpg.png",))
    corpus.fake_raw(folder / "DSC_0002.NEF")
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "--out-dir", str(out), "--model", str(model_file), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "1 upscaled, 1 failed" in err and "DSC_0002.NEF" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg_x2.png"]


@pytest.mark.parametrize("ext", [".heic", ".avif"])
def test_heic_and_avif_open_and_save_with_their_metadata(tmp_path: Path, ext: str) -> None:
    src = corpus.photo_with_xmp_iptc(tmp_path / "phone.jpg")
    pic = imageio.read_image(src)
    rgba = np.dstack([corpus.photo(), np.full((24, 32), 255, np.uint8)])
    rgba[:, :8, 3] = 0
    alpha_pic = imageio.picture_from_array(rgba)
    out = imageio.write_image(pic.with_pixels(alpha_pic.rgb, alpha_pic.alpha), tmp_path / f"phone{ext}")
    back = imageio.read_image(out)
    assert back.source_format == ext.lstrip(".").replace("heif", "heic")
    assert (back.width, back.height) == (32, 24) and back.alpha is not None
    assert back.alpha[:, :8].max() < 0.05 and back.alpha[:, 12:].min() > 0.95
    assert np.abs(back.rgb[:, 12:] - alpha_pic.rgb[:, 12:]).mean() < 0.03  # lossy, but the same picture
    assert back.icc_profile == pic.icc_profile
    assert Image.Exif().load(back.exif) is None or True
    exif = Image.Exif()
    exif.load(back.exif)
    assert exif.get(0x013B) == ARTIST
    xmp, _iptc = corpus.read_xmp_iptc(out)
    assert xmp["Xmp.dc.subject"] == corpus.KEYWORDS and xmp["Xmp.xmp.Rating"] == corpus.RATING
    assert xmp["Xmp.dc.creator"] == corpus.IPTC_BYLINE  # IPTC has no place in HEIF: kept in the XMP


# --------------------------------------------------------------------------------------- XMP and IPTC


@pytest.mark.parametrize("ext", [".jpg", ".tif", ".png", ".webp", ".heic", ".avif"])
def test_xmp_and_iptc_survive_mlrn_upscale(tmp_path: Path, model_file: Path, ext: str) -> None:
    src = corpus.photo_with_xmp_iptc(tmp_path / "lightroom.jpg")
    out = tmp_path / f"up{ext}"
    assert main(["upscale", str(src), "-o", str(out), "--model", str(model_file), "--device", "cpu"]) == 0
    xmp, iptc = corpus.read_xmp_iptc(out)
    assert xmp["Xmp.dc.subject"] == corpus.KEYWORDS
    assert xmp["Xmp.xmp.Rating"] == corpus.RATING
    assert xmp["Xmp.dc.rights"] == {'lang="x-default"': corpus.COPYRIGHT}
    assert xmp["Xmp.lr.hierarchicalSubject"] == ["places|beach"]
    if ext in (".jpg", ".tif", ".png"):
        assert iptc["Iptc.Application2.Keywords"] == corpus.IPTC_KEYWORDS
        assert iptc["Iptc.Application2.Byline"] == corpus.IPTC_BYLINE
        assert iptc["Iptc.Application2.Caption"] == corpus.IPTC_CAPTION
    else:  # no IPTC block in these formats: its fields are in the XMP (the XMP's own values win)
        assert xmp["Xmp.dc.creator"] == corpus.IPTC_BYLINE
        assert xmp["Xmp.dc.description"] == {'lang="x-default"': corpus.IPTC_CAPTION}
    back = imageio.read_image(out)  # and read back, so a second upscale keeps them too
    assert back.xmp is not None and "places|beach" in back.xmp
    assert (back.iptc is not None) == (ext in (".jpg", ".tif", ".png"))
    exif = Image.Exif()
    exif.load(back.exif)
    assert exif.get(0x013B) == ARTIST


def test_tiff_output_keeps_every_exif_tag_xmp_and_iptc(tmp_path: Path, model_file: Path) -> None:
    import pyexiv2

    src = corpus.photo_with_xmp_iptc(tmp_path / "rich.jpg")
    meta = pyexiv2.ImageData(src.read_bytes())
    meta.modify_exif(
        {
            "Exif.Image.Make": "Fujifilm",
            "Exif.Image.Model": "X-T5",
            "Exif.Image.Copyright": "Ada",
            "Exif.Photo.FNumber": "28/10",
            "Exif.Photo.ExposureTime": "1/250",
            "Exif.Photo.ISOSpeedRatings": "400",
            "Exif.Photo.LensModel": "XF23mmF1.4 R LM WR",
            "Exif.GPSInfo.GPSLatitudeRef": "N",
            "Exif.GPSInfo.GPSLatitude": "48/1 51/1 2400/100",
        }
    )
    src.write_bytes(meta.get_bytes())
    meta.close()
    out = tmp_path / "rich.tif"
    assert main(["upscale", str(src), "-o", str(out), "--model", str(model_file), "--device", "cpu"]) == 0
    before = pyexiv2.ImageData(src.read_bytes())
    after = pyexiv2.ImageData(out.read_bytes())
    try:
        old, new = before.read_exif(), after.read_exif()
        # everything but what describes the file's own layout (size, orientation, offsets, JPEG thumbnail)
        layout = (
            "Exif.Photo.PixelXDimension", "Exif.Photo.PixelYDimension", "Exif.Image.Orientation",
            "Exif.Image.ExifTag", "Exif.Image.GPSTag",
        )  # fmt: skip

        def value(text: str) -> object:  # rationals may be stored reduced (28/10 -> 14/5)
            try:
                return [Fraction(part) for part in text.split()]
            except (ValueError, ZeroDivisionError):
                return text

        lost = {
            k: (v, new.get(k))
            for k, v in old.items()
            if k not in layout and not k.startswith("Exif.Thumbnail") and value(new.get(k, "")) != value(v)
        }
        assert lost == {}
        assert after.read_xmp()["Xmp.dc.subject"] == corpus.KEYWORDS
        assert after.read_iptc() == before.read_iptc()
        assert after.read_icc() == before.read_icc()
    finally:
        before.close()
        after.close()


# --- PNG image data that stops early (issue 33, item 2) ----------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(rows: list[bytes], width: int, height: int, bits: int, colour: int, interlace: int = 0) -> bytes:
    """A PNG whose IDAT holds exactly ``rows`` (each with its filter byte), whatever the header says."""

    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, interlace)
    idat = zlib.compress(b"".join(rows))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _rows(a: np.ndarray) -> list[bytes]:
    return [b"\x00" + a[y].astype(">u2" if a.dtype == np.uint16 else np.uint8).tobytes() for y in range(a.shape[0])]


def _adam7_rows(a: np.ndarray) -> list[bytes]:
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    out: list[bytes] = []
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            out += _rows(sub)
    return out


@pytest.mark.parametrize("bits", [8, 16])
def test_a_png_whose_image_data_stops_early_is_refused_not_filled_with_black(tmp_path, bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    a = np.random.default_rng(bits).integers(0, 2**bits, (64, 80, 3), dtype=np.int64).astype(dtype)
    whole = tmp_path / "whole.png"
    whole.write_bytes(_png(_rows(a), 80, 64, bits, 2))
    picture = imageio.read_image(whole)
    assert picture.bit_depth == bits and np.array_equal(np.rint(picture.rgb * (2**bits - 1)).astype(dtype), a)
    half = tmp_path / "half.png"
    half.write_bytes(_png(_rows(a)[:32], 80, 64, bits, 2))
    with pytest.raises(imageio.ImageIOError, match="truncated: its image data ends after 32 of its 64 rows"):
        imageio.read_image(half)
    with pytest.raises(imageio.ImageIOError, match="truncated"):
        imageio.read_image_for_display(half)


def test_an_interlaced_png_is_whole_or_refused_by_the_same_count(tmp_path):
    a = np.random.default_rng(7).integers(0, 256, (37, 29, 3), dtype=np.uint8)  # sizes that leave passes short
    whole = tmp_path / "adam7.png"
    whole.write_bytes(_png(_adam7_rows(a), 29, 37, 8, 2, interlace=1))
    assert np.array_equal(np.asarray(Image.open(whole)), a)  # the file is right: Pillow reads it back
    assert np.array_equal(np.rint(imageio.read_image(whole).rgb * 255).astype(np.uint8), a)
    cut = tmp_path / "adam7-cut.png"
    cut.write_bytes(_png(_adam7_rows(a)[:-3], 29, 37, 8, 2, interlace=1))
    with pytest.raises(imageio.ImageIOError, match=r"truncated: its image data ends after \d+% of its pixels"):
        imageio.read_image(cut)


def test_a_tiny_png_claiming_a_huge_size_is_refused_before_anything_is_allocated(tmp_path):
    claim = tmp_path / "claim.png"
    claim.write_bytes(_png([b"\x00" + bytes(20000)] * 3, 20000, 20000, 8, 0))  # 3 rows of 20000 declared
    with pytest.raises(imageio.ImageIOError, match="ends after 3 of its 20000 rows"):
        imageio.read_image(claim)


def test_a_phone_jpeg_with_a_gain_map_is_not_called_animated(tmp_path, caplog):
    """Issue 33, item 7: an iPhone JPEG with an HDR gain map (an MPO file) was called 'animated'."""
    rng = np.random.default_rng(9)
    photo = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    gain_map = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    photo.save(tmp_path / "IMG_0001.jpg", format="MPO", save_all=True, append_images=[gain_map])
    with caplog.at_level("WARNING"):
        picture = imageio.read_image(tmp_path / "IMG_0001.jpg")
    assert (picture.width, picture.height) == (60, 40) and picture.source_format == "jpg"
    text = caplog.text
    assert "animated" not in text and "1 more image after the photo (such as an HDR gain map" in text
    assert "that one is not kept in the output" in text


def test_png_colour_chunks_without_icc_that_differ_from_srgb_are_named(tmp_path, caplog):
    """Issue 33, item 7: PNG gAMA/cHRM without ICC were dropped silently."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(tmp_path / "plain.png")
    data = (tmp_path / "plain.png").read_bytes()
    srgb_gamma = chunk(b"gAMA", struct.pack(">I", 45455))
    linear = chunk(b"gAMA", struct.pack(">I", 100000))
    (tmp_path / "srgb.png").write_bytes(data[:33] + srgb_gamma + data[33:])
    (tmp_path / "linear.png").write_bytes(data[:33] + linear + data[33:])
    with caplog.at_level("WARNING"):
        imageio.read_image(tmp_path / "srgb.png")
    assert "gAMA" not in caplog.text  # the usual sRGB-like gamma changes nothing: no word
    with caplog.at_level("WARNING"):
        imageio.read_image(tmp_path / "linear.png")
    assert "linear.png describes its colours with gamma 1 (gAMA) and no ICC profile" in caplog.text


# ------------------------------------------------------------------ TIFF variants Pillow cannot read (tifffile)


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx / (w - 1), yy / (h - 1), (xx + yy) / (w + h - 2)], axis=2)


@pytest.mark.parametrize(
    "name, write, want_gray, want_alpha",
    [
        ("float16_rgb", lambda f, g: tifffile.imwrite(f, g.astype(np.float16), photometric="rgb"), False, False),
        (
            "bigtiff_float32",
            lambda f, g: tifffile.imwrite(f, g.astype(np.float32), photometric="rgb", bigtiff=True),
            False,
            False,
        ),
        ("uint32_gray", lambda f, g: tifffile.imwrite(f, (g[:, :, 0] * 4294967295).astype(np.uint32)), True, False),
        (
            "gray_alpha16",
            lambda f, g: tifffile.imwrite(
                f,
                (np.dstack([g[:, :, 0], g[:, :, 1]]) * 65535).astype(np.uint16),
                photometric="minisblack",
                extrasamples=[2],
            ),
            True,
            True,
        ),
        (
            "cmyk_alpha",
            lambda f, g: tifffile.imwrite(
                f,
                (np.dstack([1 - g, np.zeros(g.shape[:2]), g[:, :, 1]]) * 255).astype(np.uint8),
                photometric="separated",
                extrasamples=[2],
            ),
            False,
            True,
        ),
    ],
)
def test_tiff_variants_pillow_refuses_are_read(tmp_path: Path, name, write, want_gray, want_alpha) -> None:
    """Issue 33 item 7: these were refused as 'not an image file'; tifffile reads them now."""
    g = _gradient()
    path = tmp_path / f"{name}.tif"
    write(path, g)
    picture = imageio.read_image(path)
    assert (picture.width, picture.height) == (32, 24) and picture.grayscale == want_gray
    assert (picture.alpha is not None) == want_alpha
    want = g[:, :, 0] if want_gray else g  # CMYK (1-g, K=0) is RGB g again
    got = picture.rgb[:, :, 0] if want_gray else picture.rgb
    np.testing.assert_allclose(got, want, atol=2 / 255)
    if want_alpha:
        np.testing.assert_allclose(picture.alpha, g[:, :, 1], atol=2 / 255)


def test_a_tiff_whose_first_page_is_a_thumbnail_upscales_the_photo(tmp_path: Path, caplog) -> None:
    g = (_gradient(48, 64) * 255).astype(np.uint8)
    path = tmp_path / "with_preview.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(g[::4, ::4], photometric="rgb", subfiletype=1)  # the preview first, as some scanners write
        tif.write(g, photometric="rgb")
    with caplog.at_level("WARNING", logger="mlrn_core.imageio"):
        picture = imageio.read_image(path)
    assert (picture.width, picture.height) == (64, 48)
    np.testing.assert_allclose(picture.rgb * 255, g, atol=1)
    assert "first page is a small preview" in caplog.text


# ------------------------------------------------------------------ a file can claim only what its bytes hold


def _padded_png(path: Path, extra_bytes: int) -> Path:
    """A valid 40x56 PNG followed by ``extra_bytes`` of zeros (a sparse file: it costs no disk)."""
    Image.fromarray(corpus.photo(56, 40)).save(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size + extra_bytes)
    return path


def test_a_small_picture_followed_by_gigabytes_is_not_read_whole(tmp_path: Path) -> None:
    """Issue 33 item 4: a 40x56 PNG followed by 3 GB of zeros was read whole into memory (3.3 GB)."""
    padded = _padded_png(tmp_path / "padded.png", 3 << 30)
    with pytest.raises(imageio.ImageIOError, match=r"padded.png.*3,221 MB.*40 x 56.*not read"):
        imageio.read_image(padded)
    # the same picture with a little trailing data (under the big-file threshold) still reads
    assert imageio.read_image(_padded_png(tmp_path / "small_pad.png", 1 << 20)).width == 40


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_batch_with_a_fifo_a_bad_name_and_a_padded_file_finishes_under_1_gb(tmp_path: Path, model_file) -> None:
    """Issue 33's 'done when': the good images are upscaled, the others reported, peak under 1 GB."""
    folder = small_folder(tmp_path / "in", ("a.png", "b.png"))
    _padded_png(folder / "padded.png", 3 << 30)
    os.mkfifo(folder / "pipe.png")
    bad_name = os.fsdecode(b"caf\xe9.png")
    Image.fromarray(corpus.photo(16, 20, seed=9)).save(folder / bad_name)
    out = tmp_path / "out"
    code, err, peak_kb = run_cli_measured(
        tmp_path, "upscale", folder, "--out-dir", out, "--model", model_file, "--device", "cpu"
    )
    assert code == 1, err  # one file failed (the padded one); the FIFO is reported as not a regular file
    assert sorted(os.fsencode(p.name) for p in out.iterdir()) == sorted([b"a_x2.png", b"b_x2.png", b"caf\xe9_x2.png"])
    assert "padded.png" in err and "not picture data" in err
    assert peak_kb < 1 << 20, f"peak RSS {peak_kb / 1024:.0f} MiB"


def _png_with_chunk_before_idat(ctype: bytes, payload: bytes, crc: int | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(corpus.photo(12, 16)).save(buf, "PNG")
    png = buf.getvalue()
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF if crc is None else crc
    return png[:33] + struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc) + png[33:]


def test_a_png_with_a_damaged_or_huge_text_chunk_is_read_and_says_what_was_dropped(tmp_path: Path, caplog) -> None:
    """Issue 33 item 7: a valid PNG with a bad text-chunk checksum, or a 50 MB compressed text, was 'damaged'."""
    bad_crc = tmp_path / "bad_crc.png"
    bad_crc.write_bytes(_png_with_chunk_before_idat(b"tEXt", b"Comment\x00hello", crc=0))
    huge = tmp_path / "huge_text.png"
    huge.write_bytes(_png_with_chunk_before_idat(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * (50 << 20))))
    with caplog.at_level("WARNING", logger="mlrn_core.imageio"):
        for path in (bad_crc, huge):
            picture = imageio.read_image(path)
            np.testing.assert_array_equal(np.round(picture.rgb * 255).astype(np.uint8), corpus.photo(12, 16))
    assert "a tEXt chunk whose checksum is wrong dropped" in caplog.text
    assert "a zTXt chunk holding more than 1 MB of text dropped" in caplog.text
    # the image data itself is still checked: a damaged IDAT is not waved through
    broken = bytearray(_png_with_chunk_before_idat(b"tEXt", b"a\x00b"))
    idat = broken.index(b"IDAT")
    broken[idat + 10] ^= 0xFF
    (tmp_path / "bad_idat.png").write_bytes(bytes(broken))
    with pytest.raises(imageio.ImageIOError, match="bad_idat.png"):
        imageio.read_image(tmp_path / "bad_idat.png")


def test_a_16_bit_gray_png_keeps_its_transparency_key_and_a_cielab_tiff_gains_no_alpha(tmp_path: Path) -> None:
    """Issue 33 items 6 and 7: the tRNS key of a 16-bit gray PNG was lost; a CIELab TIFF gained an alpha."""
    import cv2
    from PIL import ImageCms

    gray16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    png = cv2.imencode(".png", gray16)[1].tobytes()
    keyed = tmp_path / "keyed16.png"
    keyed.write_bytes(
        png[:33]
        + struct.pack(">I", 2)
        + b"tRNS"
        + struct.pack(">H", 3000)
        + struct.pack(">I", zlib.crc32(b"tRNS" + struct.pack(">H", 3000)) & 0xFFFFFFFF)
        + png[33:]
    )
    picture = imageio.read_image(keyed)
    assert picture.bit_depth == 16 and picture.grayscale and picture.alpha is not None
    clear = gray16 == 3000
    assert clear.sum() == 1 and np.all(picture.alpha[clear] == 0) and np.all(picture.alpha[~clear] == 1)
    out = tmp_path / "keyed16_out.png"
    imageio.write_image(picture, out)
    back = imageio.read_image(out)
    assert back.bit_depth == 16 and back.alpha is not None and np.all(back.alpha[clear] == 0)

    rgb = Image.fromarray(np.full((16, 16, 3), (200, 100, 50), np.uint8))
    to_lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    ImageCms.applyTransform(rgb, to_lab).save(tmp_path / "lab.tif")
    lab = imageio.read_image(tmp_path / "lab.tif")
    assert lab.alpha is None
    np.testing.assert_allclose(lab.rgb[0, 0] * 255, (200, 100, 50), atol=2)


def test_a_10_bit_heic_keeps_its_depth(tmp_path: Path) -> None:
    """Issue 33 item 7: 10-bit HEIC became 8 bit silently; it is a 16-bit picture now (PNG/TIFF keep it)."""
    pillow_heif = pytest.importorskip("pillow_heif")
    yy, xx = np.mgrid[0:48, 0:64]
    # a ramp of one 10-bit step (64 in 16 bits) a column: 8 bits would keep a quarter of its levels
    deep = np.stack([20000 + xx * 64, yy * 1300, (xx + yy) * 500], axis=2).astype(np.uint16)
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=deep.tobytes())
    path = tmp_path / "deep.heic"
    heif.save(path, quality=-1, chroma=444)  # lossless, 10 bit
    picture = imageio.read_image(path)
    assert picture.bit_depth == 16 and (picture.width, picture.height) == (64, 48)
    levels = np.unique(np.round(picture.rgb[24, :, 0] * 65535).astype(np.int64))
    assert len(levels) > 40  # 8 bits keep 17 of the 64 levels of the row...
    np.testing.assert_allclose(picture.rgb * 65535, deep, atol=65535 / 1023 * 4)  # ...and the 10-bit values
    out = tmp_path / "deep.png"
    imageio.write_image(picture, out)
    assert imageio.read_image(out).bit_depth == 16


def test_a_jpeg_damaged_mid_image_is_upscaled_with_a_warning(tmp_path: Path, caplog) -> None:
    """Issue 33 item 7: a JPEG corrupt in the middle of its image data was upscaled without a word."""
    good = tmp_path / "good.jpg"
    Image.fromarray(corpus.photo(120, 160)).save(good, quality=90)
    data = bytearray(good.read_bytes())
    sos = data.index(b"\xff\xda")
    mid = sos + (len(data) - sos) // 2
    data[mid : mid + 100] = b"\x00" * 100
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="mlrn_core.imageio"):
        imageio.read_image(good)
        assert "damaged" not in caplog.text  # a whole JPEG says nothing
        imageio.read_image(damaged)
    assert "damaged.jpg: its image data is damaged (libjpeg: Corrupt JPEG data" in caplog.text


# ------------------------------------------------------ memory a valid picture needs: told before the work starts


def test_a_picture_that_needs_more_memory_than_is_free_fails_alone_before_it_is_read(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 33 item 6: a valid 20000 x 20000 gray PNG (450 KB) peaked at 7.1 GB with no warning. Here the
    free memory is made small instead: a 2000 x 2000 picture needs ~160 MB at x2, a 20 x 16 one ~64 MB."""
    from mlrn_core import memory

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((2000, 2000), np.uint8)).save(folder / "big.png")
    small_folder(folder, ("small.png",))
    monkeypatch.setattr(memory, "available_bytes", lambda: 100 << 20)
    out = tmp_path / "out"
    options = BatchOptions(model=str(model_file), device="cpu")
    summary = run_batch(plan_batch([folder], out, options), options, registry.load_model(str(model_file), 2))
    failed = {r.item.source.name: r.error for r in summary.results if r.status == batch.FAILED}
    assert list(failed) == ["big.png"]
    assert "2000 x 2000 picture x2 needs about 0.2 GB of memory, and 0.1 GB are free" in failed["big.png"]
    assert [p.name for p in out.iterdir() if p.suffix == ".png"] == ["small_x2.png"]
    # the model behind it: the decoded float picture and the uint8 output, plus bounded working memory
    assert memory.upscale_bytes(20000, 20000, 2) > 9.6e9 and memory.view_bytes(100, 100, 2) > memory.upscale_bytes(
        100, 100, 2
    )
    assert memory.shortfall(50 << 20, 10, 10, 2) is None  # what fits in the free memory starts
