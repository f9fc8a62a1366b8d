"""PyInstaller entry script of the bundled ``mlrn-studio`` windowed executable (see ``build.spec``).

It does what the ``mlrn-studio = app.main:main`` gui-script of ``pip install`` does. A windowed
executable has no console on Windows and macOS: there ``sys.stdout``/``sys.stderr`` are None, so they
are pointed at the null device before anything (logging, warnings, tracebacks) writes to them.
Importing this file runs nothing (``packaging/check_spec.py`` imports it to check that ``main`` exists).
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from app.main import main


def _ensure_streams() -> None:
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the app


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process runs its task here instead of the GUI again
    _ensure_streams()
    sys.exit(main())
