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


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ARG001 - pytest hook signature
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
