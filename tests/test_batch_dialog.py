"""The Batch Export dialog, driven through its real widgets with pytest-qt (offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app.batch_dialog import COL_STATUS, BatchExportDialog  # noqa: E402
from mlrn_core import batch, registry, tiling  # noqa: E402
from mlrn_core.model import MLRN  # noqa: E402


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return registry.save_model(tmp_path_factory.mktemp("model") / "tiny.pt", MLRN(scale=2, features=8, blocks=1))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny convolutions run far faster on one thread, above all on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))


def photos(folder: Path, names: tuple[str, ...] = ("a.png", "b.png"), size: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def make_dialog(qtbot, inputs: list[Path], out: Path, model: Path | None) -> BatchExportDialog:
    dlg = BatchExportDialog(inputs, scale=2, model=str(model) if model else None)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.out_dir_edit.setText(str(out))
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.refresh_preview()
    return dlg


def test_preview_rows_follow_the_options(qtbot, tmp_path: Path, model_file: Path) -> None:
    src = photos(tmp_path / "in")
    (src / "notes.txt").write_text("not a picture")
    photos(src / "sub", ("c.png",))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_x2.png").write_bytes(b"older output")
    dlg = make_dialog(qtbot, [src], out, model_file)
    assert not dlg.isModal()
    assert [r[:2] for r in dlg.preview_rows()] == [
        ("a.png", "skip (exists)"),
        ("b.png", "write"),
        ("notes.txt", "unsupported ('.txt' files)"),
    ]
    assert dlg.preview_rows()[1][2] == str(out / "b_x2.png")
    assert dlg.plan_label.text() == "3 files: 1 to write, 1 skip (exist), 1 unsupported"
    assert dlg.start_button.isEnabled()

    dlg.on_exists_combo.setCurrentIndex(dlg.on_exists_combo.findData("rename"))
    dlg.recursive_check.setChecked(True)
    qtbot.waitUntil(lambda: len(dlg.preview_rows()) == 4)
    rows = dlg.preview_rows()
    assert rows[0][1] == "rename -> a_x2 (1).png"
    assert rows[3][:3] == (str(Path("sub") / "c.png"), "write", str(out / "sub" / "c_x2.png"))

    dlg.scale_combo.setCurrentIndex(dlg.scale_combo.findData(3))  # the suffix follows the scale
    qtbot.waitUntil(lambda: dlg.preview_rows()[1][2].endswith("b_x3.png"))

    dlg.out_dir_edit.setText(str(src))  # never into an input folder
    qtbot.waitUntil(lambda: "is the input folder" in dlg.plan_label.text())
    assert not dlg.start_button.isEnabled() and dlg.preview_rows() == []

    dlg.inputs_list.selectAll()
    qtbot.mouseClick(dlg.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "add image files" in dlg.plan_label.text())


def test_run_to_completion_with_progress_and_failures(qtbot, tmp_path: Path, model_file: Path) -> None:
    src = photos(tmp_path / "in", ("a.png", "b.png", "c.png"))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    dlg = make_dialog(qtbot, [src], out, model_file)
    progress = []
    with qtbot.waitSignal(dlg.batch_finished, timeout=60_000) as done:
        qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
        assert dlg.running and dlg.cancel_button.isEnabled() and not dlg.start_button.isEnabled()
        dlg.overall_bar.valueChanged.connect(progress.append)
    summary = done.args[0]
    assert len(summary.succeeded) == 3 and len(summary.failed) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png", "c_x2.png"]  # the record is kept elsewhere
    status = {r[0]: r[COL_STATUS] for r in dlg.preview_rows()}
    assert all(status[n].startswith("done in") for n in ("a.png", "b.png", "c.png")), status
    assert status["broken.jpg"].startswith("failed: "), status
    assert dlg.failures_box.isVisible() and dlg.failures_list.count() == 1
    assert dlg.failures_list.item(0).text().startswith(f"{src / 'broken.jpg'}: ")
    assert dlg.overall_bar.value() == 1000 and progress and progress == sorted(progress)
    assert "3 upscaled, 1 failed" in dlg.summary_label.text()
    # the summary is said once (not again in the progress line), with where the record of each file is kept
    assert "upscaled" not in dlg.progress_label.text() and dlg.progress_label.text() == "Finished."
    assert f"kept in {batch.record_path(out)}" in dlg.summary_label.text()
    assert batch.record_path(out).is_file()
    assert dlg.start_button.isEnabled() and not dlg.cancel_button.isEnabled() and not dlg.running


def slow_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tiling.TileRunner.run

    def run(self, lr):
        time.sleep(0.05)
        return real(self, lr)

    monkeypatch.setattr(tiling.TileRunner, "run", run)


def test_cancel_stops_and_leaves_nothing_partial(
    qtbot, tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_tiles(monkeypatch)
    src = photos(tmp_path / "in", ("a.png", "b.png", "c.png"), size=96)
    out = tmp_path / "out"
    dlg = make_dialog(qtbot, [src], out, model_file)
    dlg.tile_spin.setValue(32)
    with qtbot.waitSignal(dlg.batch_finished, timeout=60_000) as done:
        qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dlg.file_bar.value() > 0, timeout=30_000)
        assert "ETA" in dlg.progress_label.text()
        qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    summary = done.args[0]
    assert summary.cancelled and len(summary.succeeded) < 3
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == sorted(r.output.name for r in summary.succeeded)
    for name in written:  # whatever was written is whole
        with Image.open(out / name) as im:
            assert im.size == (192, 192)
    assert not list(tmp_path.rglob("*.part"))
    assert any(r[COL_STATUS].startswith("cancelled") for r in dlg.preview_rows())
    # every file says what happened to it: written, or cancelled (while running or before it started)
    assert all(r[COL_STATUS].startswith(("done", "cancelled")) for r in dlg.preview_rows())
    assert "cancelled" in dlg.summary_label.text()


def test_closing_while_running_stops_and_waits(
    qtbot, tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_tiles(monkeypatch)
    src = photos(tmp_path / "in", ("a.png", "b.png"), size=96)
    dlg = make_dialog(qtbot, [src], tmp_path / "out", model_file)
    dlg.tile_spin.setValue(32)
    qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.file_bar.value() > 0, timeout=30_000)
    dlg.close()
    assert not dlg._runner.busy  # the thread has ended
    assert not list(tmp_path.rglob("*.part"))


def test_a_model_that_does_not_load_is_reported(qtbot, tmp_path: Path) -> None:
    dlg = make_dialog(qtbot, [photos(tmp_path / "in")], tmp_path / "out", None)  # no built-in weights here
    with qtbot.waitSignal(dlg.batch_finished, timeout=30_000) as done:
        qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    assert done.args[0] is None
    assert "could not run" in dlg.summary_label.text() and "x2" in dlg.summary_label.text()
    assert not (tmp_path / "out").exists()


def test_best_quality_is_chosen_with_its_cost_and_writes_the_self_ensemble(
    qtbot, tmp_path: Path, model_file: Path
) -> None:
    src = photos(tmp_path / "in", ("a.png",), size=40)
    out = tmp_path / "out"
    dlg = make_dialog(qtbot, [src], out, model_file)
    combo = dlg.upscale_quality_combo
    assert combo.currentData() == "normal" and not dlg.options().ensemble
    assert combo.itemText(combo.findData("best")) == tiling.quality_label("best", 2)
    dlg.scale_combo.setCurrentIndex(dlg.scale_combo.findData(4))  # the words follow the scale
    assert combo.itemText(combo.findData("best")) == tiling.quality_label("best", 4)
    dlg.scale_combo.setCurrentIndex(dlg.scale_combo.findData(2))
    combo.setCurrentIndex(combo.findData("best"))
    assert dlg.options().ensemble
    with qtbot.waitSignal(dlg.batch_finished, timeout=60_000) as done:
        qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
        assert not combo.isEnabled()
    assert len(done.args[0].succeeded) == 1
    net = registry.load_model(str(model_file), 2).model
    rgb = np.asarray(Image.open(src / "a.png"), dtype=np.float32) / 255
    expected = tiling.upscale_array(net, rgb, device="cpu", ensemble=True, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a_x2.png")), expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_the_preview_of_a_folder_with_a_fifo_does_not_freeze_the_dialog(qtbot, tmp_path: Path, model_file: Path):
    """Issue 33 item 4: planning opened a FIFO named like an image and waited forever on the GUI thread."""
    import time

    src = photos(tmp_path / "in", ("a.png",))
    os.mkfifo(src / "pipe.png")
    t0 = time.monotonic()
    dlg = make_dialog(qtbot, [src], tmp_path / "out", model_file)
    assert time.monotonic() - t0 < 10
    rows = {dlg.preview_table.item(r, 0).text(): r for r in range(dlg.preview_table.rowCount())}
    assert any("pipe.png" in name for name in rows) and "1 unsupported" in dlg.plan_label.text()
