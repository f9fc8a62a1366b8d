"""Shared pytest setup: Qt runs offscreen and every per-user folder points into a temporary MLRN_HOME.

Both are set at import time, before pytest-qt creates the QApplication and before any test asks
:mod:`mlrn_core.paths` for a folder, so no test ever reads or writes the real settings, user models,
cache or logs.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_HOME = tempfile.mkdtemp(prefix="mlrn-test-home-")
os.environ["MLRN_HOME"] = _SESSION_HOME
# Auto's measurement of the inference paths (mlrn_core.backends) is off, so precision "auto" is the same fixed
# rule in every test; tests/test_backends.py turns it on where it is the subject.
os.environ["MLRN_AUTO_MEASURE"] = "0"


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ARG001 - pytest hook signature
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


import pytest  # noqa: E402
import pytestqt  # noqa: E402, F401 - required (pyproject's dev extra): without it the GUI tests must fail, not skip


@pytest.fixture(autouse=True)
def _no_builtin_weights_unless_asked(request, tmp_path_factory, monkeypatch):
    """Tests see an empty built-in models folder, so they behave the same whether or not weights ship.

    Tests about the shipped weights opt out with ``@pytest.mark.builtin_models``.
    """
    if request.node.get_closest_marker("builtin_models"):
        return
    from mlrn_core import paths

    empty = tmp_path_factory.mktemp("no-builtin-models")
    monkeypatch.setattr(paths, "builtin_models_dir", lambda: empty)


@pytest.fixture
def install_builtin():
    """Put a small real model file into the (per-test, otherwise empty) built-in models folder.

    ``install_builtin("mlrn-x2-photo", scale=2, seed=1)`` writes a tiny MLRN (8 features, 1 block) as
    ``mlrn-x2-photo.pt`` with a card and returns its path; different seeds give different outputs.
    """
    import torch

    from mlrn_core import paths, registry
    from mlrn_core.model import MLRN

    def install(name: str, scale: int = 2, seed: int = 0):
        torch.manual_seed(seed)
        folder = paths.builtin_models_dir()
        path = registry.save_model(
            folder / f"{name}.pt",
            MLRN(scale=scale, features=8, blocks=1).eval(),
            info={"note": f"test built-in {name}"},
        )
        path.with_suffix(".md").write_text(f"# {name}\nA tiny test model.\n", encoding="utf-8")
        return path

    return install
