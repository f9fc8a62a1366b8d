"""The one atomic file writer: a file appears complete, or stays as it was.

Everything MLRN Studio writes that a crash must not leave half-written (pictures, model files,
checkpoints, run configs, settings, the LR cache) goes through :func:`atomic_open`: the data goes
to a hidden temporary file in the target's folder, is flushed to disk, and is renamed over the target
(``os.replace`` is atomic on one file system); on any error the temporary file is removed and the
target is untouched. Nothing else in the project is imported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file to write ``path``'s new content; it replaces ``path`` when the block ends.

    ``mode`` is "wb" or "w" (text, UTF-8 unless ``encoding`` says otherwise). The file gets the usual
    permissions (the umask applies), like any file the user saves.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    tmp = target.with_name(f".{target.name[:180]}.{secrets.token_hex(6)}.part")
    binary = mode == "wb"
    try:
        with open(tmp, "xb" if binary else "x", encoding=None if binary else (encoding or "utf-8")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")
