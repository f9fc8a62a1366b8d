"""The one atomic file writer: a file appears complete, or stays as it was.

Everything MLRN Studio writes that a crash must not leave half-written (pictures, model files,
checkpoints, run configs, settings, the LR cache) goes through :func:`atomic_open`: the data goes
to a hidden temporary file in the target's folder (locked while it is written), is flushed to disk, and
gets the target's name; on any error the temporary file is removed and the target is untouched.

By default the new file replaces the target (``os.replace``, atomic on one file system). With
``overwrite=False`` it is created only if absent: the finished file is hard-linked to the target's name
(or renamed with RENAME_NOREPLACE / Windows' rename where hard links are not available), which fails
with :class:`FileExistsError` when the name was taken meanwhile, so two runs writing one name never
replace each other's result (no check-then-rename). :func:`remove_stale_parts` deletes the temporary
files a killed process left behind; a file still being written is locked by its writer and is kept.
Nothing else in the project is imported here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
#: The longest part of the target's name kept in the temporary name (".NAME.RANDOM.part").
PART_NAME_CHARS = 180
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def part_name(target: str | os.PathLike[str], token: str = "") -> str:
    """The hidden temporary name used while ``target`` is written."""
    return f".{Path(target).name[:PART_NAME_CHARS]}.{token or secrets.token_hex(6)}{PART_SUFFIX}"


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    encoding: str | None = None,
    *,
    overwrite: bool = True,
    finish: Callable[[Path], None] | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file to write ``path``'s new content; it becomes ``path`` when the block ends.

    ``mode`` is "wb" or "w" (text, UTF-8 unless ``encoding`` says otherwise). The file gets the usual
    permissions (the umask applies), like any file the user saves. ``overwrite=False``: create only if
    absent (FileExistsError, and the existing file untouched, when ``path`` exists by then). ``finish``
    is called with the temporary file's path once the data is flushed (to edit it in place, e.g. add
    metadata) before it is synced and published.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    tmp = target.with_name(part_name(target))
    binary = mode == "wb"
    try:
        with open(tmp, "xb" if binary else "x", encoding=None if binary else (encoding or "utf-8")) as fh:
            _lock(fh.fileno())
            yield fh
            fh.flush()
            if finish is not None:
                finish(tmp)  # edits the file in place (same inode, so the lock holds)
            os.fsync(fh.fileno())
            if os.name == "posix":  # published while still locked, so no cleaner can take it meanwhile
                _publish(tmp, target, overwrite)
        if os.name != "posix":  # Windows cannot rename an open file
            _publish(tmp, target, overwrite)
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


def _lock(fd: int) -> None:
    """Mark a temporary file as being written (released when the process ends, however it ends)."""
    if os.name == "posix":
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Give the finished temporary file its final name: replace, or create only if absent."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic, and fails with EEXIST when the name is taken
    except FileExistsError:
        raise
    except OSError as exc:  # no hard links here (FAT, exFAT, some network shares)
        if exc.errno not in _NO_HARD_LINKS:
            raise
        _rename_noreplace(tmp, target)
        return
    with contextlib.suppress(OSError):
        tmp.unlink()


def _rename_noreplace(tmp: Path, target: Path) -> None:
    if os.name == "nt":
        os.rename(tmp, target)  # Windows' rename never replaces (FileExistsError)
        return
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            at_fdcwd, rename_noreplace = -100, 1
            if renameat2(at_fdcwd, os.fsencode(tmp), at_fdcwd, os.fsencode(target), rename_noreplace) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS):
                raise OSError(err, os.strerror(err), str(target))
    # last resort on a file system with neither (rare): the window between check and rename is tiny
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "File exists", str(target))
    os.rename(tmp, target)


def remove_stale_parts(folder: str | os.PathLike[str], min_age_s: float | None = None) -> list[Path]:
    """Delete the temporary ``.NAME.RANDOM.part`` files a killed process left in ``folder``; returns them.

    A file still being written is locked by its writer (POSIX) and is kept; files younger than
    ``min_age_s`` (default 5 s on POSIX, where the lock decides, and 1 hour elsewhere) are kept too.
    Never raises: a folder that cannot be listed is left alone."""
    if min_age_s is None:
        min_age_s = 5.0 if os.name == "posix" else 3600.0
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not (name.startswith(".") and name.endswith(PART_SUFFIX)):
            continue
        part = Path(folder) / name
        try:
            if now - part.lstat().st_mtime < min_age_s:
                continue
            if os.name == "posix":
                import fcntl

                fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer is alive
                except OSError:
                    continue
                finally:
                    os.close(fd)
            part.unlink()
            removed.append(part)
        except OSError:
            continue
    if removed:
        log.info("removed %d unfinished file(s) left in %s by an interrupted run", len(removed), folder)
    return removed


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")
