"""Model "Auto" in the app: the default, the viewer's caption, Batch Export's plan and record, the wizard.

The built-in models folder is the per-test empty one; ``install_builtin`` puts tiny real models in it
(photo and paper model with different weights, so which one ran shows in the pixels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from app.batch_dialog import COL_MODEL, BatchExportDialog
from app.main import configure_torch_threads
from app.main_window import MainWindow
from app.render import INTERACTIVE_CPU_TILE, VisibleRegion, make_priority, to_uint8
from app.wizard import TrainingWizard
from mlrn_core import batch, registry
from mlrn_core.imageio import read_image
from mlrn_core.tiling import upscale_array
from tests.helpers import textured_image, tiny_model

PAPER, PHOTO = "mlrn-x2", "mlrn-x2-photo"
TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    return tmp_path


def _save(path: Path, fmt: str, w: int = 120, h: int = 90, **kw) -> Path:
    Image.fromarray(textured_image(h, w, seed=3)).save(path, format=fmt, **kw)
    return path


@pytest.fixture
def window(qtbot) -> MainWindow:
    configure_torch_threads()
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    return w


def _show(qtbot, window: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(window.image_shown, timeout=TIMEOUT_MS):
        window.open_paths([path])
    qtbot.waitUntil(
        lambda: window.right_image.base is not None and not window.right_image.pending and not window.busy,
        timeout=TIMEOUT_MS,
    )


def _expected(model_path: Path, path: Path) -> np.ndarray:
    """What the window shows for ``path`` through the model file (same tiles, same order)."""
    picture = read_image(path)
    region = VisibleRegion()
    region.set((0.0, 0.0, float(picture.width), float(picture.height)))
    model = registry.load_model(str(model_path), 2).model
    return to_uint8(
        upscale_array(
            model, picture.rgb, tile=INTERACTIVE_CPU_TILE, overlap=16, device="cpu", priority=make_priority(region)
        )
    )


def test_auto_is_the_default_and_the_caption_says_which_model_ran_and_why(qtbot, install_builtin, _home) -> None:
    photo_model, paper_model = install_builtin(PHOTO, seed=1), install_builtin(PAPER, seed=2)
    jpeg = _save(_home / "camera.jpg", "JPEG", quality=85)
    jpeg_named_png = _save(_home / "export.png", "JPEG", quality=85)
    png = _save(_home / "scan.png", "PNG")
    configure_torch_threads()
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1200, 760)
    window.show()
    assert window.panel.model.spec == "auto" and window.panel.model_combo.currentText() == "Auto (by file type)"
    left_items = [window.panel.left_combo.itemText(i) for i in range(window.panel.left_combo.count())]
    assert not any("Auto" in t for t in left_items) and f"{PHOTO} (built-in)" in left_items

    _show(qtbot, window, jpeg)
    assert window.right_image.label == f"MLRN {PHOTO} (Auto: JPEG input, quality 85)"
    np.testing.assert_array_equal(window.right_image.base.levels[0], _expected(photo_model, jpeg))

    _show(qtbot, window, png)
    assert window.right_image.label == f"MLRN {PAPER} (Auto: PNG input, lossless)"
    np.testing.assert_array_equal(window.right_image.base.levels[0], _expected(paper_model, png))

    _show(qtbot, window, jpeg_named_png)  # the bytes decide, not the name
    assert window.right_image.label == f"MLRN {PHOTO} (Auto: JPEG input, quality 85)"

    assert window.panel.select_model(PAPER)  # the user can always pick another model
    qtbot.waitUntil(lambda: window.right_image.label == f"MLRN {PAPER}" and not window.busy, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.right_image.pending, timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(window.right_image.base.levels[0], _expected(paper_model, jpeg_named_png))
    assert window.settings.model == PAPER
    assert window.panel.select_model("auto") and window.settings.model == "auto"


def test_caption_says_when_the_photo_model_is_missing(qtbot, window, install_builtin, _home) -> None:
    install_builtin(PAPER)
    window._on_watch_timer_timeout()  # what the models folder watcher triggers
    assert window.panel.model.spec == "auto"
    assert "not installed" in window.panel.model.tooltip
    _show(qtbot, window, _save(_home / "camera.jpg", "JPEG"))
    caption = f"MLRN {PAPER} (Auto: JPEG input, quality 75; {PHOTO} is not installed)"
    assert window.right_image.label == caption
    assert window.status_fields.time_label.toolTip() == caption
    window.resize(900, 700)  # the caption no longer fits its view: shortened, and in full on hover
    qtbot.waitUntil(lambda: window.view_b.width() < 400)
    window.view_b.grab()  # paint
    assert window.view_b.caption_tip(QPointF(20, 14)) == f"B · {caption}"
    assert window.view_a.caption_tip(QPointF(20, 14)) == ""  # "A · Bicubic" fits

    install_builtin(PHOTO, seed=1)  # installed while the window is open: Auto picks it up
    window._on_watch_timer_timeout()
    qtbot.waitUntil(
        lambda: window.right_image.label == f"MLRN {PHOTO} (Auto: JPEG input, quality 75)", timeout=TIMEOUT_MS
    )


def test_auto_never_runs_the_photo_model_on_a_lossless_file(qtbot, window, install_builtin, _home) -> None:
    install_builtin(PHOTO)
    window._on_watch_timer_timeout()
    assert window.panel.model.spec == "auto"
    with qtbot.waitSignal(window.image_shown, timeout=TIMEOUT_MS):
        window.open_paths([_save(_home / "scan.png", "PNG")])
    qtbot.waitUntil(lambda: not window.busy, timeout=TIMEOUT_MS)
    assert window.right_image.base is None
    assert f"{PAPER} is not installed" in window.right_image.message


def test_batch_export_defaults_to_auto_and_names_the_model_per_file(qtbot, install_builtin, _home) -> None:
    install_builtin(PHOTO, seed=1)
    install_builtin(PAPER, seed=2)
    src = _home / "shoot"
    src.mkdir()
    _save(src / "a.jpg", "JPEG", 40, 32)
    _save(src / "b.tif", "TIFF", 40, 32)
    _save(src / "c.webp", "WEBP", 40, 32, quality=80)
    out = _home / "out"
    dlg = BatchExportDialog([src], scale=2)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.out_dir_edit.setText(str(out))
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.refresh_preview()
    assert dlg.model_combo.currentData() == "auto" and dlg.options().model == "auto"
    models = {r[0]: r[COL_MODEL] for r in dlg.preview_rows()}
    assert models == {
        "a.jpg": f"{PHOTO} (Auto: JPEG input, quality 75)",
        "b.tif": f"{PAPER} (Auto: TIFF input, lossless)",
        "c.webp": f"{PHOTO} (Auto: lossy WebP input)",
    }
    assert f"Model Auto: {PHOTO} for 2 files" in dlg.plan_label.text()

    with qtbot.waitSignal(dlg.batch_finished, timeout=TIMEOUT_MS) as done:
        qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    assert len(done.args[0].succeeded) == 3
    rows = [json.loads(line) for line in batch.record_path(out).read_text().splitlines()]
    assert {Path(r["input"]).name: r["model"] for r in rows} == {"a.jpg": PHOTO, "b.tif": PAPER, "c.webp": PHOTO}

    dlg.model_combo.setCurrentIndex(dlg.model_combo.findData(PAPER))  # one model for every file
    dlg.on_exists_combo.setCurrentIndex(dlg.on_exists_combo.findData("overwrite"))
    dlg.refresh_preview()
    assert {r[COL_MODEL] for r in dlg.preview_rows()} == {PAPER}


def test_wizard_camera_fine_tunes_start_from_the_photo_model(qtbot, install_builtin, _home) -> None:
    install_builtin(PHOTO, seed=1)
    install_builtin(PAPER, seed=2)
    w = TrainingWizard(scale=2, base_model=None)  # what the main window passes while the model is Auto
    qtbot.addWidget(w)
    sp = w.setup_page
    assert sp.clean_radio.isChecked() and sp.base_combo.currentData() == PAPER
    sp.jpeg_radio.setChecked(True)
    assert sp.base_combo.currentData() == PHOTO and PHOTO in sp.base_note.text()
    sp._store()
    w.state.run_dir, w.state.folders = _home / "run", [str(_home)]
    cfg = w.state.build_config()
    assert cfg.init == PHOTO and cfg.jpeg_quality is not None
    sp.clean_radio.setChecked(True)
    assert sp.base_combo.currentData() == PAPER

    registry.register_user_model(registry.save_model(_home / "mine.pt", tiny_model(2, seed=3)), "mine", "# mine\n")
    sp._fill_bases("mine")
    sp.jpeg_radio.setChecked(True)  # the user's own base stays as chosen
    assert sp.base_combo.currentData() == "mine"
    w.close()


def test_wizard_camera_fine_tunes_without_a_photo_model_start_from_the_paper_model(
    qtbot, install_builtin, _home
) -> None:
    install_builtin(PAPER)
    w = TrainingWizard(scale=2, base_model=None)
    qtbot.addWidget(w)
    w.setup_page.jpeg_radio.setChecked(True)
    assert w.setup_page.base_combo.currentData() == PAPER
    w.close()
