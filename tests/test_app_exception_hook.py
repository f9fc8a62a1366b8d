"""The GUI's last line of defence: an exception nothing caught is logged and shown, from any thread."""

from __future__ import annotations

import logging
import os
import sys
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import pytestqt  # noqa: E402, F401 - a test requirement: a broken environment must fail, not skip
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app import main as app_main  # noqa: E402


@pytest.fixture
def boxes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append((self.text(), self.detailedText())) or 0)
    return shown


def test_unhandled_errors_are_logged_and_shown_from_any_thread(qtbot, tmp_path, monkeypatch, boxes) -> None:
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    root = logging.getLogger()
    before = list(root.handlers)
    path = app_main.add_file_logging()
    hook = app_main.install_exception_hook(None, path)
    try:
        assert sys.excepthook == hook.handle and threading.excepthook == hook._handle_thread
        try:
            raise ValueError("the histogram is empty")
        except ValueError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)  # what Qt calls for an error in a slot
        qtbot.waitUntil(lambda: len(boxes) == 1, timeout=2000)
        text, details = boxes[0]
        assert "ValueError: the histogram is empty" in text and str(path) in text
        assert "Traceback" in details and "the histogram is empty" in details

        worker = threading.Thread(target=lambda: 1 / 0)  # an error on another thread: shown on the GUI thread
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: len(boxes) == 2, timeout=2000)
        assert "ZeroDivisionError" in boxes[1][0]
        for handler in root.handlers:
            handler.flush()
        logged = path.read_text(encoding="utf-8")
        assert "the histogram is empty" in logged and "ZeroDivisionError" in logged and "Traceback" in logged
    finally:
        hook.uninstall()
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
    assert sys.excepthook is not hook.handle
