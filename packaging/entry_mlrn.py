"""PyInstaller entry script of the bundled ``mlrn`` console executable (see ``build.spec``).

It does what the ``mlrn = mlrn_core.cli:run`` console script of ``pip install`` does. Importing this
file runs nothing (``packaging/check_spec.py`` imports it to check that ``run`` exists).
"""

from __future__ import annotations

import multiprocessing

from mlrn_core.cli import run

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process runs its task here instead of the CLI again
    run()
