"""The training wizard and the models dialog are reachable from the main window and feed its model list."""

from __future__ import annotations

from pathlib import Path

import torch

from mlrn_core import registry
from mlrn_core.model import MLRN
from tests.test_app import home, window  # noqa: F401 - pytest fixtures


def _register(home_dir: Path, name: str, scale: int) -> None:
    torch.manual_seed(0)
    src = registry.save_model(home_dir / f"{name}.src.pt", MLRN(scale=scale, features=8, blocks=1), info={})
    registry.register_user_model(src, name, f"# {name}\n")


def test_app_wizard_saved_model_becomes_current_in_the_main_window(qtbot, window, home):  # noqa: F811
    window.train_action.trigger()
    wizard = window._wizard
    assert wizard is not None and wizard.isVisible()
    window.train_action.trigger()  # a second trigger raises the same wizard
    assert window._wizard is wizard
    _register(home, "Portraits x3", 3)  # what the wizard's result page writes
    wizard.modelSaved.emit("Portraits x3")
    assert window.panel.scale == 3
    assert window.panel.model is not None and window.panel.model.spec == "Portraits x3"
    assert window.settings.model == "Portraits x3"
    wizard.close()
    qtbot.waitUntil(lambda: window._wizard is None, timeout=5000)


def test_app_models_dialog_changes_refresh_the_model_list(qtbot, window, home, monkeypatch):  # noqa: F811
    from app import models_dialog

    _register(home, "Old name", 2)
    window._refresh_models()

    def fake_exec(dialog):
        registry.rename_user_model("Old name", "New name")
        dialog.modelsChanged.emit()
        return 0

    monkeypatch.setattr(models_dialog.ModelsDialog, "exec", fake_exec)
    window.models_action.trigger()
    combo = window.panel.model_combo
    specs = [getattr(combo.itemData(i), "spec", None) for i in range(combo.count())]
    assert "New name" in specs and "Old name" not in specs
