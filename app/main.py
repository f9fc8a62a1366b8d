"""Entry point of the ``mlrn-studio`` GUI script: ``mlrn-studio [FILES...]``.

Builds the QApplication (Fusion style, which follows the system's light or dark colour scheme), shows
the main window and opens the files named on the command line. Argument parsing happens inside
:func:`main`, never at import time. Messages are also logged to a file (:func:`log_file`), and
:func:`install_exception_hook` catches what nothing else did, on the GUI thread or any other: the user sees
a message saying what happened and where the details are, and the app keeps running.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app import platform_check
from mlrn_core import paths
from mlrn_core.paths import APP_NAME, resources_dir
from mlrn_core.tiling import default_threads

log = logging.getLogger("mlrn-studio")


def log_file() -> Path:
    """The app's log file (in the per-user cache folder; kept small by rotation)."""
    return paths.cache_dir() / "logs" / "mlrn-studio.log"


def add_file_logging() -> Path | None:
    """Log INFO and above to :func:`log_file` too; returns it (None when it cannot be written)."""
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the log file %s: %s", path, exc)
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return path


class ExceptionHook(QObject):
    """Shows unexpected errors to the user (once at a time) and logs them with their traceback.

    Installed as ``sys.excepthook`` and ``threading.excepthook``; errors from other threads are passed to
    the GUI thread through a queued signal, since only it may show a message box."""

    raised = Signal(str, str)  # summary, details

    def __init__(self, parent_widget: QWidget | None = None, log_path: Path | None = None) -> None:
        super().__init__()
        self.parent_widget = parent_widget
        self.log_path = log_path
        self.showing = False
        self.shown: list[str] = []  # summaries shown, newest last (for tests and the log)
        self.raised.connect(self._show)
        self._old_hooks = (sys.excepthook, threading.excepthook)

    def install(self) -> ExceptionHook:
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._old_hooks

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    def handle(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        try:
            log.critical("unexpected error: %s", details.rstrip())
        except Exception:  # noqa: BLE001 - the hook itself must never raise
            pass
        text = str(exc).splitlines()[0] if str(exc) else ""
        summary = f"{exc_type.__name__}: {text}" if text else exc_type.__name__
        self.raised.emit(summary, details)  # queued when called from another thread

    @Slot(str, str)
    def _show(self, summary: str, details: str) -> None:
        self.shown.append(summary)
        if self.showing:  # one box at a time; the rest are in the log
            return
        self.showing = True
        try:
            where = f"The details were written to {self.log_path}." if self.log_path else ""
            box = QMessageBox(
                QMessageBox.Icon.Critical,
                "Unexpected error",
                f"Something went wrong: {summary}\n\nYour photos and saved files are not affected. If the window "
                f"misbehaves, save what you need and restart MLRN Studio. {where}",
                QMessageBox.StandardButton.Ok,
                self.parent_widget,
            )
            box.setDetailedText(details)
            box.exec()
        except Exception:  # noqa: BLE001
            pass
        finally:
            self.showing = False


def install_exception_hook(parent_widget: QWidget | None = None, log_path: Path | None = None) -> ExceptionHook:
    """Catch every exception nothing else caught: log it and show a message (see :class:`ExceptionHook`)."""
    return ExceptionHook(parent_widget, log_path).install()


def configure_torch_threads() -> int:
    """Every core for the app's renders and training: on the 2-core development machine two threads
    rendered 1.65x faster than one while the GUI's 16 ms timer was never more than 6.6 ms late
    (``python benchmarks/threads.py``, docs/results.md "Inference precision, threads and big photos"); the render
    runs on its own QThread and torch's workers release the GIL. Returns the count."""
    import torch

    n = default_threads()
    torch.set_num_threads(n)
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlrn-studio",
        description="Compare bicubic and MLRN super-resolution on your photos, and save the result.",
    )
    parser.add_argument("files", nargs="*", help="images to open (several make a list to step through)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit status of the event loop."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    home = paths.home_problem()
    if home:  # before the log file and the settings, which live under it
        print(f"MLRN Studio cannot start: {home}", file=sys.stderr)
        return 2
    problem = None if QApplication.instance() else platform_check.startup_problem()
    if problem:  # Qt would abort with a misleading hint: name what is missing and how to install it
        print(problem, file=sys.stderr)
        return 1
    log_path = add_file_logging()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("MLRN")
    app.setStyle("Fusion")
    icon = resources_dir() / "icons" / "mlrn-studio.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    app.setDesktopFileName("mlrn-studio")
    configure_torch_threads()

    from app.main_window import MainWindow  # after QApplication: the window module builds widgets

    window = MainWindow()
    hook = install_exception_hook(window, log_path)
    window.show()
    if args.files:
        QTimer.singleShot(0, lambda: window.open_paths(args.files))
    try:
        return int(app.exec())
    finally:
        hook.uninstall()


if __name__ == "__main__":
    sys.exit(main())
