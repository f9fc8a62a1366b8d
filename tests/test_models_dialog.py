"""The Models dialog, driven through its buttons with pytest-qt (offscreen; modal dialogs patched)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox  # noqa: E402

from app.models_dialog import ENTRY_ROLE, ModelsDialog  # noqa: E402
from mlrn_core import paths, registry  # noqa: E402
from tests.helpers import tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    registry.save_model(builtin / "mlrn-x2.pt", tiny_model(2), info={"metrics": {"set5_psnr": 37.5}})
    (builtin / "mlrn-x2.md").write_text("# mlrn-x2\n\nThe shipped x2 model.\n")
    monkeypatch.setattr(paths, "builtin_models_dir", lambda: builtin)


@pytest.fixture
def user_models(tmp_path: Path) -> list[str]:
    src = registry.save_model(tmp_path / "src.pt", tiny_model(2, seed=1), info={"metrics": {"val_psnr": 31.25}})
    registry.register_user_model(src, "portraits", "# portraits\n\nFine-tuned on **portraits**.\n")
    registry.register_user_model(src, "landscapes", "# landscapes\n\nFine-tuned on landscapes.\n")
    return ["landscapes", "portraits"]


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda _parent, _title, text, *a: seen.append(text)))
    return seen


def make_dialog(qtbot, select: str | None = None) -> ModelsDialog:
    dlg = ModelsDialog(select=select)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def select(dlg: ModelsDialog, name: str) -> None:
    for row in range(dlg.list.count()):
        if dlg.list.item(row).data(ENTRY_ROLE) == name:
            dlg.list.setCurrentRow(row)
            return
    raise AssertionError(f"{name} is not listed")


def test_models_dialog_lists_user_and_builtin_models_with_cards(qtbot, user_models):
    dlg = make_dialog(qtbot)
    assert dlg.names("user") == user_models and dlg.names("built-in") == ["mlrn-x2"]
    select(dlg, "portraits")
    assert "Fine-tuned on portraits." in dlg.card_view.toPlainText()  # rendered Markdown, not raw
    assert "**" not in dlg.card_view.toPlainText()
    assert all(b.isEnabled() for b in (dlg.rename_button, dlg.delete_button, dlg.export_button))
    select(dlg, "mlrn-x2")
    assert "The shipped x2 model." in dlg.card_view.toPlainText()
    assert not any(b.isEnabled() for b in (dlg.rename_button, dlg.delete_button, dlg.export_button))
    assert "cannot be renamed" in dlg.read_only_label.text() and dlg.import_button.isEnabled()


def test_models_dialog_rename(qtbot, user_models, monkeypatch, warnings):
    dlg = make_dialog(qtbot, select="portraits")
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("people", True)))
    with qtbot.waitSignal(dlg.modelsChanged, timeout=2000):
        qtbot.mouseClick(dlg.rename_button, Qt.MouseButton.LeftButton)
    assert registry.find_model("people") is not None and registry.find_model("portraits") is None
    assert "Fine-tuned on **portraits**" in registry.find_model("people").card  # the card moved with it
    assert dlg.current_entry().name == "people"
    # a name that is taken is refused with a message naming both
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("landscapes", True)))
    qtbot.mouseClick(dlg.rename_button, Qt.MouseButton.LeftButton)
    assert warnings and "'people' to 'landscapes'" in warnings[-1] and "already exists" in warnings[-1]


def test_models_dialog_delete_asks_first(qtbot, user_models, monkeypatch):
    dlg = make_dialog(qtbot, select="landscapes")
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.No))
    qtbot.mouseClick(dlg.delete_button, Qt.MouseButton.LeftButton)
    assert registry.find_model("landscapes") is not None
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    with qtbot.waitSignal(dlg.modelsChanged, timeout=2000):
        qtbot.mouseClick(dlg.delete_button, Qt.MouseButton.LeftButton)
    assert registry.find_model("landscapes") is None
    assert not (paths.user_models_dir() / "landscapes.md").exists()
    assert dlg.names("user") == ["portraits"]


def test_models_dialog_export_and_import_back(qtbot, user_models, tmp_path, monkeypatch):
    dlg = make_dialog(qtbot, select="portraits")
    target = tmp_path / "exported" / "for a friend"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    qtbot.mouseClick(dlg.export_button, Qt.MouseButton.LeftButton)
    exported = target.with_name("for a friend.pt")
    assert exported.exists() and exported.with_suffix(".md").exists()
    assert str(exported) in dlg.status_label.text()
    # importing it back: its own name is free, so it is used as is
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(exported), "")))
    with qtbot.waitSignal(dlg.modelsChanged, timeout=2000):
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert registry.find_model("for a friend") is not None
    assert "Fine-tuned on **portraits**" in registry.find_model("for a friend").card
    # a second import of the same file asks for another name
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("from a friend", True)))
    with qtbot.waitSignal(dlg.importFinished, timeout=5000) as done:
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert done.args == [True]
    assert registry.find_model("from a friend") is not None and dlg.current_entry().name == "from a friend"


def test_models_dialog_import_of_a_foreign_file_names_it(qtbot, user_models, tmp_path, monkeypatch, warnings):
    dlg = make_dialog(qtbot)
    foreign = tmp_path / "other_project.pt"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    changed: list[bool] = []
    dlg.modelsChanged.connect(lambda: changed.append(True))
    for bad in (foreign, text):
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, f=bad, **k: (str(f), "")))
        with qtbot.waitSignal(dlg.importFinished, timeout=5000) as done:
            qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
        assert done.args == [False]
    assert len(warnings) == 2
    assert str(foreign) in warnings[0] and "not an MLRN Studio model file" in warnings[0]
    assert str(text) in warnings[1] and "not a PyTorch model file at all" in warnings[1]
    assert changed == [] and dlg.names("user") == user_models


def test_list_shows_gains_on_named_images_never_psnrs_of_different_images(qtbot, tmp_path):
    """A fine-tune scored 51.83 dB on smooth hold-out photos must not look 14 dB better than a 37.18 dB model."""
    builtin = paths.builtin_models_dir()
    registry.save_model(
        builtin / "mlrn-x2.pt", tiny_model(2), info={"metrics": {"set5_psnr": 37.18, "set5_bicubic_psnr": 33.68}}
    )
    src = registry.save_model(
        tmp_path / "t.pt",
        tiny_model(2, seed=1),
        info={
            "metrics": {"val_psnr": 51.83, "val_base_psnr": 51.98, "val_bicubic_psnr": 49.0},
            "provenance": {"base": {"name": "mlrn-x2"}},
        },
    )
    registry.register_user_model(src, "train5 x2", "# train5 x2\n")
    dlg = make_dialog(qtbot)
    rows = {dlg.list.item(r).data(ENTRY_ROLE): dlg.list.item(r) for r in range(dlg.list.count())}
    assert rows["mlrn-x2"].text().splitlines()[1].strip() == "+3.50 dB over bicubic on Set5"
    assert rows["train5 x2"].text().splitlines()[1].strip() == "-0.15 dB over mlrn-x2 on your hold-out photos"
    assert rows["train5 x2"].text().splitlines()[0].strip() == "train5 x2  ·  x2"
    # the figure is on its own line: nothing is clipped in a list of the dialog's default width
    for row in [dlg.list.item(r) for r in range(dlg.list.count())]:
        width = max(dlg.list.fontMetrics().horizontalAdvance(line) for line in row.text().splitlines())
        assert width < dlg.list.viewport().width()
    assert "51.83" in rows["train5 x2"].toolTip() and "cannot be compared" in rows["train5 x2"].toolTip()


def test_models_dialog_import_runs_off_the_gui_thread_and_reports_unusable_files(
    qtbot, user_models, tmp_path, monkeypatch, warnings
):
    import threading

    dlg = make_dialog(qtbot)
    # a file in the user models folder that cannot be used is listed with its reason, not hidden
    (paths.user_models_dir() / "broken.pt").write_bytes(b"not a model")
    dlg.refresh()
    assert "broken.pt" in dlg.problems_label.text() and "not a PyTorch model file" in dlg.problems_label.text()
    # the check (torch.load + building the network) runs on another thread: the event loop stays free
    threads: list[str] = []
    real_build = registry.build_model

    def build(mf):
        threads.append(threading.current_thread().name)
        return real_build(mf)

    monkeypatch.setattr(registry, "build_model", build)
    hostile = tmp_path / "huge.pt"
    good = registry.user_model_path(user_models[0])
    payload = torch.load(good, weights_only=True)
    payload["hparams"]["features"] = 20000
    torch.save(payload, hostile)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(hostile), "")))
    with qtbot.waitSignal(dlg.importFinished, timeout=5000) as done:
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
        assert not dlg.import_button.isEnabled()  # the click returned at once: the check is running
    assert done.args == [False]
    assert threads and threads[0] != threading.main_thread().name
    assert "features=20000" in warnings[-1] and "huge.pt" in warnings[-1]
    assert dlg.import_button.isEnabled()


def test_every_line_of_the_list_fits_its_width_when_there_are_no_user_models(qtbot):
    """The empty 'Your models' line was cut off ('... or import a fi') at the dialog's default width."""
    dlg = make_dialog(qtbot)
    items = [dlg.list.item(r) for r in range(dlg.list.count())]
    assert any("none yet" in i.text() for i in items) and any("import a model file" in i.text() for i in items)
    for item in items:
        width = max(dlg.list.fontMetrics().horizontalAdvance(line) for line in item.text().splitlines())
        assert width < dlg.list.viewport().width(), item.text()
