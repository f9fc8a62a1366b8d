"""The OpenVINO tests (tests/test_openvino.py) in a process of their own: a process that ran OpenVINO inference
later crashed in the garbage collector (mlrn_core/openvino_backend.py), so the main test process never loads it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_the_openvino_tests_pass_in_a_process_of_their_own(tmp_path):
    env = dict(os.environ, MLRN_OPENVINO_TESTS="1", MLRN_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_openvino.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
