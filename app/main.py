"""Entry point of the ``mlrn-studio`` GUI script: ``mlrn-studio [FILES...]``.

Builds the QApplication (Fusion style, which follows the system's light or dark colour scheme), shows
the main window and opens the files named on the command line. Argument parsing happens inside
:func:`main`, never at import time.
"""

from __future__ import annotations

import argparse
import logging
import sys

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app import platform_check
from mlrn_core.paths import APP_NAME, resources_dir
from mlrn_core.tiling import default_threads


def configure_torch_threads() -> int:
    """Leave one core to the GUI thread: with every core busy in OpenMP the event loop stutters, and on
    a loaded two-core machine two spinning inference threads are slower than one. Returns the count."""
    import torch

    n = max(1, default_threads() - 1)
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
    problem = None if QApplication.instance() else platform_check.startup_problem()
    if problem:  # Qt would abort with a misleading hint: name what is missing and how to install it
        print(problem, file=sys.stderr)
        return 1
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
    window.show()
    if args.files:
        QTimer.singleShot(0, lambda: window.open_paths(args.files))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
