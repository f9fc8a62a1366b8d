"""Where MLRN Studio keeps things: the one module that calls platformdirs.

Settings, user models, caches and logs live in the platform's per-user folders; the built-in weights
ship inside the package data (``resources/models``, importable as ``mlrn_resources``), which also
works from a PyInstaller bundle. ``MLRN_HOME`` overrides every per-user folder (tests and servers).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "MLRN Studio"
APP_AUTHOR = "MLRN"


def _home_override() -> Path | None:
    value = os.environ.get("MLRN_HOME")
    return Path(value) if value else None


def home_problem() -> str | None:
    """Why ``MLRN_HOME`` cannot hold MLRN Studio's folders (it names a file, or cannot be created), or None.

    Asked once at start-up by the app and the ``mlrn`` command, so such a setting gets one sentence that says
    what to do instead of a traceback from the first folder made under it.
    """
    home = _home_override()
    if home is None:
        return None
    fix = "point MLRN_HOME at a folder (it is created if missing) or unset it to use the usual per-user folders"
    if home.exists() and not home.is_dir():
        return f"MLRN_HOME is '{home}', which is a file, not a folder: {fix}"
    try:
        for sub in ("config", "cache", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"MLRN_HOME is '{home}', where MLRN Studio's folders cannot be made ({exc.strerror or exc}): {fix}"
    return None


def _dirs():  # imported lazily: training on a bare GPU box works without platformdirs if MLRN_HOME is set
    import platformdirs

    return platformdirs.PlatformDirs(APP_NAME, APP_AUTHOR)


def user_data_dir() -> Path:
    home = _home_override()
    return home / "data" if home else Path(_dirs().user_data_dir)


def user_models_dir() -> Path:
    path = user_data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_runs_dir() -> Path:
    path = user_data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    home = _home_override()
    path = home / "config" if home else Path(_dirs().user_config_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    home = _home_override()
    path = home / "cache" if home else Path(_dirs().user_cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    """The shipped resources folder (weights, model cards, icons)."""
    try:
        from importlib.resources import files

        return Path(str(files("mlrn_resources")))
    except ModuleNotFoundError:  # running from a source tree without installing
        return Path(__file__).resolve().parent.parent / "resources"


def builtin_models_dir() -> Path:
    return resources_dir() / "models"
