"""The batch engine behind ``mlrn upscale`` and the app's Batch Export dialog (no Qt here).

:func:`plan_batch` turns input files and folders into a :class:`BatchPlan`: one :class:`BatchItem` per
file found, saying what will happen to it (write, skip because the output exists, rename to
``name (1).ext``, overwrite, or unsupported) and where its output goes (subfolders mirrored under the
output folder). Planning refuses anything that would write over an input; a problem with one file or
folder (a name too long for the file system, a folder that cannot be searched, a camera RAW file) becomes
that item's error or note, so the rest of the batch runs. :func:`run_batch` then
upscales the plan with one model on one device (one :class:`~mlrn_core.tiling.TileRunner`, so the
weights are moved once), overlapping work: a reader thread decodes the next picture and a writer
thread encodes the previous one while the network runs (numpy, Pillow and torch release the GIL).
Each output is written atomically by :func:`mlrn_core.imageio.write_image`, created only if absent
(unless overwriting was asked for), so two runs writing the same name never lose either result; every
output folder is checked for writing before its first picture is upscaled, and unfinished files left by a
killed run are removed; a file that fails is reported with its reason and the batch goes on; cancelling
stops after the current tile and leaves nothing partial. Every file gets one line in the JSON-lines record
of its output folder, kept in the per-user records folder (:func:`record_path`), not among the user's
photos. Progress, cancel and per-file results are plain callables, so the CLI and the GUI share it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlrn_core import atomic, backends, imageio, memory, tiling
from mlrn_core.auto import AutoChoice, ModelCache, choose_model, is_auto, photo_name
from mlrn_core.batch_choices import FORMATS, ON_EXISTS, RAW_COLOURS, SCALES  # noqa: F401 - exported here too
from mlrn_core.imageio import ImageIOError, Picture
from mlrn_core.registry import ModelError
from mlrn_core.terminal import fmt_duration, plural

if TYPE_CHECKING:
    import torch

    from mlrn_core.registry import LoadedModel

log = logging.getLogger(__name__)

SIDECAR_NAME = "mlrn-batch.jsonl"  # the record's name in output folders of earlier versions (still skipped as input)

# What the planner decided for an item (ERROR: it cannot be done, ``note`` says why).
WRITE, SKIP, RENAME, OVERWRITE, UNSUPPORTED, ERROR = "write", "skip", "rename", "overwrite", "unsupported", "error"
WORK_ACTIONS = frozenset({WRITE, RENAME, OVERWRITE})

# What happened to an item.
OK, FAILED, SKIPPED, CANCELLED = "ok", "failed", "skipped", "cancelled"

_SIXTEEN_BIT_FORMATS = ("png", "tiff")  # the formats write_image stores 16 bit in


class BatchError(Exception):
    """A batch that cannot be started as asked (bad input, an output over an input...); nothing was written."""


@dataclass(frozen=True)
class BatchOptions:
    """How to upscale and write a batch; shared by the CLI and the dialog.

    ``suffix`` None means ``_x{scale}``; ``tile`` None picks a tile size from the device's memory;
    ``quality`` None is the writer's default (95) for JPEG and WebP; ``prefetch`` overlaps reading and
    writing with compute; ``precision`` is one of :data:`~mlrn_core.tiling.PRECISIONS` ("auto": bf16 on
    CPUs with native bf16, fp16 on CUDA, else fp32); ``half`` False forces fp32 (the older switch);
    ``ensemble`` upscales at quality "best" (the 8-way self-ensemble, :data:`~mlrn_core.tiling.QUALITIES`).
    ``model`` "auto" makes the planner pick a built-in model per file (:func:`mlrn_core.auto.choose_model`).
    """

    scale: int = 2
    model: str | None = None
    device: str = "auto"
    tile: int | None = None
    fmt: str = "same"
    quality: int | None = None
    recursive: bool = False
    suffix: str | None = None
    on_exists: str = "skip"
    prefetch: bool = True
    sidecar: bool = True
    half: bool | None = None
    precision: str = "auto"
    ensemble: bool = False
    raw_colour: str = "srgb"  # the colour space camera RAW files are developed into (imageio.raw.COLOUR_SPACES)

    def __post_init__(self) -> None:
        if self.precision not in tiling.PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(tiling.PRECISIONS)}, got {self.precision!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale!r}")
        if self.raw_colour not in RAW_COLOURS:
            raise ValueError(f"RAW colour space must be one of {', '.join(RAW_COLOURS)}, got {self.raw_colour!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.on_exists not in ON_EXISTS:
            raise ValueError(f"on_exists must be one of {', '.join(ON_EXISTS)}, got {self.on_exists!r}")
        if self.quality is not None and not (isinstance(self.quality, int) and 1 <= self.quality <= 100):
            raise ValueError(f"quality must be an integer from 1 to 100, got {self.quality!r}")
        if self.tile is not None and self.tile < tiling.MIN_TILE:
            raise ValueError(f"tile must be at least {tiling.MIN_TILE} px, got {self.tile}")
        if self.suffix is not None and any(c in self.suffix for c in "/\\\0"):
            raise ValueError(f"suffix must not contain path separators, got {self.suffix!r}")

    @property
    def name_suffix(self) -> str:
        return f"_x{self.scale}" if self.suffix is None else self.suffix


@dataclass(frozen=True)
class BatchItem:
    """One file of a plan: where it comes from, where it goes and what the planner decided."""

    index: int
    source: Path
    output: Path | None
    action: str
    root: Path | None = None  # the input folder it was found in (None for a file given by name)
    note: str = ""
    auto: AutoChoice | None = None  # the model Auto picked for this file (model "auto" only)
    auto_error: str = ""  # why Auto has no model for this file

    @property
    def relative(self) -> Path:
        """The source relative to its input folder (just the name for a file given by name)."""
        return self.source.relative_to(self.root) if self.root is not None else Path(self.source.name)

    @property
    def is_work(self) -> bool:
        return self.action in WORK_ACTIONS

    def describe(self) -> str:
        """What will happen, for previews: 'write', 'skip (exists)', 'rename -> a_x2 (1).jpg'..."""
        if self.action == SKIP:
            return "skip (exists)"
        if self.action == RENAME and self.output is not None:
            return f"rename -> {self.output.name}"
        if self.action == UNSUPPORTED:
            return f"unsupported ({self.note})" if self.note else "unsupported"
        if self.action == ERROR:
            return f"error ({self.note})"
        return self.action


@dataclass(frozen=True)
class BatchPlan:
    """The planned items, in order, and the output folder (None when outputs go next to the sources)."""

    items: tuple[BatchItem, ...]
    out_dir: Path | None = None
    sidecar: Path | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(self.items)

    @property
    def work(self) -> list[BatchItem]:
        return [i for i in self.items if i.is_work]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys((WRITE, RENAME, OVERWRITE, SKIP, UNSUPPORTED, ERROR), 0)
        for item in self.items:
            out[item.action] += 1
        return out

    def describe(self) -> str:
        """'3 to write, 1 to rename, 2 skip (exist), 1 unsupported'."""
        c = self.counts()
        parts = [f"{c[WRITE]} to write"]
        if c[RENAME]:
            parts.append(f"{c[RENAME]} to rename")
        if c[OVERWRITE]:
            parts.append(f"{c[OVERWRITE]} to overwrite")
        if c[SKIP]:
            parts.append(f"{c[SKIP]} skip (exist)")
        if c[UNSUPPORTED]:
            parts.append(f"{c[UNSUPPORTED]} unsupported")
        if c[ERROR]:
            parts.append(f"{c[ERROR]} cannot be done")
        return ", ".join(parts)

    @property
    def raw_files(self) -> list[BatchItem]:
        """Camera RAW files found (skipped, with advice)."""
        return [i for i in self.items if i.action == UNSUPPORTED and imageio.is_camera_raw(i.source)]

    def shard(self, rank: int, world_size: int) -> BatchPlan:
        """Items ``rank::world_size`` (by plan index), for one process of a multi-process run."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"expected 0 <= rank < world_size, got rank {rank} of {world_size}")
        return replace(self, items=tuple(i for i in self.items if i.index % world_size == rank))


@dataclass
class ItemResult:
    """What happened to one item; ``error`` is the reason only (the file is ``item.source``)."""

    item: BatchItem
    status: str
    output: Path | None = None
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    backend: str = ""  # the inference path that ran (TileRunner.describe), e.g. "OpenVINO int8 (Auto, 2.6x)"


@dataclass(frozen=True)
class BatchProgress:
    """A progress report: the current file, its tiles, and the whole batch with an ETA."""

    item: BatchItem | None
    position: int  # 1-based number of the current file among the files to upscale
    total: int  # files to upscale (skipped and unsupported files are not counted)
    files_done: int
    tiles_done: int
    tiles_total: int
    elapsed_s: float
    eta_s: float | None

    @property
    def item_fraction(self) -> float:
        return self.tiles_done / self.tiles_total if self.tiles_total else 0.0

    @property
    def fraction(self) -> float:
        if not self.total:
            return 1.0
        return min(1.0, (self.files_done + self.item_fraction) / self.total)


@dataclass
class BatchSummary:
    """The results of a run, in the order they were reported."""

    results: list[ItemResult]
    elapsed_s: float = 0.0
    cancelled: bool = False
    not_started: int = 0
    model: str = ""
    device: str = ""
    scale: int = 0
    record_error: str | None = None  # why the batch record (sidecar) could not be written, if it could not

    def _with(self, status: str) -> list[ItemResult]:
        return [r for r in self.results if r.status == status]

    @property
    def succeeded(self) -> list[ItemResult]:
        return self._with(OK)

    @property
    def failed(self) -> list[ItemResult]:
        return self._with(FAILED)

    @property
    def skipped(self) -> list[ItemResult]:
        return [r for r in self._with(SKIPPED) if r.item.action != UNSUPPORTED]

    @property
    def unsupported(self) -> list[ItemResult]:
        return [r for r in self._with(SKIPPED) if r.item.action == UNSUPPORTED]

    def describe(self) -> str:
        """'12 upscaled, 1 failed, 3 skipped (exist), 2 unsupported in 01:23'."""
        parts = [f"{len(self.succeeded)} upscaled", f"{len(self.failed)} failed"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped (exist)")
        if self.unsupported:
            parts.append(f"{len(self.unsupported)} unsupported")
        text = ", ".join(parts) + f" in {fmt_duration(self.elapsed_s)}"
        if self.cancelled:
            text = f"cancelled: {text}; {self.not_started + len(self._with(CANCELLED))} not done"
        return text


ProgressFn = Callable[[BatchProgress], None]
ItemFn = Callable[[ItemResult], None]
CancelFn = Callable[[], bool]


# --------------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------------


def _key(path: Path) -> str:
    """A comparison key for paths (absolute, symlinks resolved, case folded where the OS folds case)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        resolved = path.absolute()
    return os.path.normcase(str(resolved))


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _scan_folder(
    folder: Path, recursive: bool, exclude: Path | None, errors: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Files in ``folder`` (sorted, hidden files and folders left out), never descending into ``exclude``.

    Folders that cannot be listed are added to ``errors`` as (folder, reason), never skipped silently."""
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        if errors is not None:
            where = Path(exc.filename) if exc.filename else folder
            errors.append((where, f"cannot read this input folder ({imageio._os_reason(exc, 'input')})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error):
        here = Path(dirpath)
        if recursive:
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and not (exclude is not None and _key(here / d) == _key(exclude))
            )
        else:
            dirnames[:] = []
        for name in sorted(filenames):
            # hidden files include the writer's temporary '.NAME.RANDOM.part' files
            if not name.startswith(".") and name != SIDECAR_NAME:
                found.append(here / name)
    return found


def _numbered(path: Path, n: int) -> Path:
    return path.with_name(f"{path.stem} ({n}){path.suffix}")


def plan_batch(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None,
    options: BatchOptions,
    *,
    output: str | os.PathLike[str] | None = None,
) -> BatchPlan:
    """Plan what happens to every file under ``inputs`` (files and folders).

    Files found in an input folder keep their path relative to it under ``out_dir``; files given by name
    go straight into ``out_dir``; with ``out_dir`` None a single input file is written next to itself
    (``name_x2.ext``).
    ``output`` names the output file of a single input file (the CLI's ``-o``). Two sources that would
    get the same output name are told apart with ' (1)'. Raises :class:`BatchError` for inputs that do
    not exist, an output folder that is an input folder, and any output that would replace an input.
    """
    if not inputs:
        raise BatchError("no inputs given: add image files or folders")
    sources_in: list[Path] = [Path(p).expanduser() for p in inputs]
    for p in sources_in:
        if not p.exists():
            raise BatchError(f"input '{p}' does not exist")
    out = Path(out_dir).expanduser().absolute() if out_dir is not None else None
    out_file = Path(output).expanduser().absolute() if output is not None else None
    if out_file is not None:
        if out is not None:
            raise BatchError("give either an output file or an output folder, not both")
        if len(sources_in) != 1 or not sources_in[0].is_file():
            raise BatchError("an output file can only be given for a single input file; use an output folder")
    if out is None and out_file is None and (len(sources_in) > 1 or sources_in[0].is_dir()):
        raise BatchError("an output folder is needed to upscale a folder or several files")
    if out is not None and out.exists() and not out.is_dir():
        raise BatchError(f"output folder '{out}' is a file: choose a folder")
    if out_file is not None and out_file.is_dir():
        raise BatchError(f"output file '{out_file}' is a folder: give a file name, or use --out-dir for a folder")
    for p in sources_in:
        if out is not None and p.is_dir() and _key(p) == _key(out):
            raise BatchError(
                f"the output folder '{out}' is the input folder '{p}': choose another output folder "
                "so that upscaled files never mix with the originals"
            )

    # (source, root) pairs, each file once (a file may be given by name and found in a folder too)
    seen: set[str] = set()
    sources: list[tuple[Path, Path | None]] = []
    scan_errors: list[tuple[Path, str]] = []
    for p in sources_in:
        if p.is_dir():
            found = [(f, p) for f in _scan_folder(p, options.recursive, out, scan_errors)]
        else:
            found = [(p, None)]
        for f, root in found:
            k = _key(f)
            if k not in seen:
                seen.add(k)
                sources.append((f, root))
    input_keys = seen
    input_inodes = {i for i in (_inode(f) for f, _ in sources) if i is not None}

    def is_an_input(path: Path) -> bool:
        if _key(path) in input_keys:
            return True
        ino = _inode(path)  # hard links, case-insensitive file systems
        return ino is not None and ino in input_inodes

    claimed: set[str] = set()
    items: list[BatchItem] = []
    for index, (src, root) in enumerate(sources):
        if imageio.is_camera_raw(src) and not imageio.raw_available():
            items.append(BatchItem(index, src, None, UNSUPPORTED, root, f"camera RAW file: {imageio.RAW_ADVICE}"))
            continue
        if not imageio.is_readable(src):
            note = f"'{src.suffix}' files" if src.suffix else "no extension"
            items.append(BatchItem(index, src, None, UNSUPPORTED, root, note))
            continue
        irregular = imageio.not_a_regular_file(src)
        if irregular:  # a FIFO named like an image would hang the plan and the batch; /dev/zero never ends
            items.append(BatchItem(index, src, None, UNSUPPORTED, root, irregular.removeprefix("is ")))
            continue
        target = _target_for(src, root, out, out_file, options)
        try:
            items.append(_plan_item(index, src, root, target, options, claimed, is_an_input))
        except OSError as exc:  # a name too long, an output folder that cannot be searched...
            reason = f"output '{target}': {imageio._os_reason(exc)}"
            items.append(BatchItem(index, src, target, ERROR, root, reason))
    for k, (folder, reason) in enumerate(scan_errors):
        items.append(BatchItem(len(sources) + k, folder, None, ERROR, None, reason))
    sidecar = record_path(out) if out is not None and options.sidecar else None
    return BatchPlan(items=tuple(items), out_dir=out, sidecar=sidecar)


def _plan_item(
    index: int,
    src: Path,
    root: Path | None,
    target: Path,
    options: BatchOptions,
    claimed: set[str],
    is_an_input: Callable[[Path], bool],
) -> BatchItem:
    """What happens to one source whose output would be ``target``; OSError for a target the file system
    refuses (raised by the existence checks)."""
    if is_an_input(target):
        raise BatchError(
            f"the output for '{src}' would be written over the input '{target}': "
            "choose another output folder, file name or suffix"
        )
    n = 0
    candidate = target
    while _key(candidate) in claimed:  # two sources, one name (a.jpg and a.png into PNG)
        n += 1
        candidate = _numbered(target, n)
    notes = [f"name taken by another file of this batch: written as {candidate.name}"] if n else []
    if imageio.is_camera_raw(src):
        from mlrn_core.imageio import raw

        notes.insert(0, raw.DEVELOPED)
    note = "; ".join(notes)
    action = WRITE
    if candidate.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(candidate))
    if candidate.exists():
        if options.on_exists == "skip":
            action = SKIP
        elif options.on_exists == "overwrite":
            action = OVERWRITE
        else:
            action = RENAME
            base, k = candidate, 0
            while candidate.exists() or _key(candidate) in claimed or is_an_input(candidate):
                k += 1
                candidate = _numbered(base, k)
    else:
        _check_name_length(candidate)
    claimed.add(_key(candidate))
    choice, error = None, ""
    if is_auto(options.model) and action != SKIP:
        try:
            choice = choose_model(src, options.scale)
        except ModelError as exc:
            error = str(exc)
    return BatchItem(index, src, candidate, action, root, note, choice, error)


def _check_name_length(path: Path) -> None:
    """ENAMETOOLONG for a name the output folder's file system cannot hold (the folder may not exist yet)."""
    limit = 255
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    with contextlib.suppress(OSError, ValueError, AttributeError):
        limit = os.pathconf(folder, "PC_NAME_MAX")
    for part in (path.name, atomic.part_name(path, "0" * 12)):
        if len(os.fsencode(part)) > limit:
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))


def _target_for(src: Path, root: Path | None, out: Path | None, out_file: Path | None, options: BatchOptions) -> Path:
    if out_file is not None:
        try:
            file_fmt = imageio.output_format_for(out_file)
        except ImageIOError:
            raise BatchError(
                f"cannot tell the format of output file '{out_file.name}': use .png, .jpg, .tif or .webp"
            ) from None
        if options.fmt != "same" and file_fmt != options.fmt:
            raise BatchError(f"output file '{out_file.name}' does not match the format {options.fmt}")
        return out_file
    ext = imageio.same_extension(src) if options.fmt == "same" else imageio.FORMAT_EXTENSIONS[options.fmt]
    name = f"{src.stem}{options.name_suffix}{ext}"
    if out is None:
        return src.absolute().with_name(name)
    folder = out / src.relative_to(root).parent if root is not None else out
    return folder / name


def output_format(item: BatchItem, options: BatchOptions) -> str:
    """The format an item is written in ('png', 'jpg', 'tiff', 'webp' or 'bmp')."""
    assert item.output is not None  # only asked for work items, which always have an output
    if options.fmt != "same":
        return options.fmt
    return imageio.output_format_for(item.output)


# --------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------


class _ItemLog(logging.Handler):
    """Collects warnings the image I/O module logs while a thread works on an item."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    @contextlib.contextmanager
    def collecting(self, sink: list[str]) -> Iterator[None]:
        self.local.sink = sink
        try:
            yield
        finally:
            self.local.sink = None

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(self.local, "sink", None)
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.append(record.getMessage())


def record_path(out_dir: Path) -> Path:
    """Where the batch record of an output folder is kept: ``<user data>/batch-records/<folder>-<hash>.jsonl``.

    One file per output folder (runs into the same folder append to it), outside the folder, so the
    photos delivered to a client are the photos only. The hash tells apart folders of the same name.
    """
    import hashlib

    from mlrn_core import paths

    resolved = Path(os.path.abspath(out_dir))
    digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    name = "".join(c if c.isalnum() or c in " ._+-" else "_" for c in resolved.name).strip() or "output"
    return paths.user_data_dir() / "batch-records" / f"{name[:60]}-{digest}.jsonl"


class _Sidecar:
    """Appends one JSON line per file; one ``write`` per line so parallel processes do not interleave."""

    def __init__(self, path: Path | None, common: dict[str, object], per_file: bool = False) -> None:
        self.path = path
        self.common = common
        self.per_file = per_file  # Auto: each line names the model that ran and why
        self._warned = False
        self.error: str | None = None  # why the record could not be written

    def check(self) -> None:
        """Find out before the work whether the record can be written (``error`` says why not)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = f"'{self.path}' cannot be written ({imageio._os_reason(exc)})"
        if not self._warned:
            log.warning("the batch record %s", self.error)
            self._warned = True

    def record(self, result: ItemResult) -> None:
        if self.path is None:
            return
        row = {
            "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "input": str(result.item.source),
            "output": str(result.output) if result.output else None,
            "status": result.status,
            **self.common,
            "seconds": round(result.seconds, 3),
            "error": result.error,
        }
        choice = result.item.auto
        if self.per_file and choice is not None:
            row["model"], row["auto"] = choice.name, choice.reason
        if result.backend:
            row["backend"] = result.backend
        if result.warnings:
            row["warnings"] = result.warnings
        # A file name that is not valid UTF-8 (Linux keeps its bytes as lone surrogates) is written as the JSON
        # escape of each surrogate, "\udce9", which json.loads reads back as the same name: the line stays
        # UTF-8 and readable, and no name can stop the batch.
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            self._fail(exc)


def _oom_reason(exc: BaseException) -> str | None:
    torch = sys.modules.get("torch")  # not imported: not torch's error
    oom = (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))
    if isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return "out of memory while upscaling (try a smaller tile size)"
    return None


def _format_notes(picture: Picture, fmt: str) -> list[str]:
    """What the output format cannot hold of the source (the writer logs alpha and EXIF losses itself)."""
    notes = []
    if picture.bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        notes.append(f"16-bit source written as 8-bit {fmt.upper()} (use png or tiff to keep 16 bit)")
    if picture.source_mode == "CMYK":
        notes.append("CMYK source converted to RGB")
    if fmt == "bmp" and (picture.icc_profile or picture.exif):
        notes.append("BMP cannot hold the ICC profile and EXIF; they are not written")
    return notes


def _now_free(item: BatchItem, options: BatchOptions) -> BatchItem | None:
    """Re-check an item's output just before work starts (something may have appeared since planning).

    Returns the item to run (possibly with a new name) or None when it is now to be skipped.
    """
    assert item.output is not None
    if item.action == OVERWRITE or not item.output.exists():
        return item
    if options.on_exists == "skip":
        return None
    if options.on_exists == "overwrite":
        return replace(item, action=OVERWRITE)
    base, k, candidate = item.output, 0, item.output
    if item.action == RENAME:  # 'a_x2 (1).jpg' -> try 'a_x2 (2).jpg', not 'a_x2 (1) (1).jpg'
        stem = base.stem
        if stem.endswith(")") and " (" in stem:
            base = base.with_name(stem[: stem.rfind(" (")] + base.suffix)
    while candidate.exists():
        k += 1
        candidate = _numbered(base, k)
    return replace(item, output=candidate, action=RENAME)


def run_batch(
    plan: BatchPlan,
    options: BatchOptions,
    model: LoadedModel | torch.nn.Module | Mapping[str, LoadedModel],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    on_item: ItemFn | None = None,
    device: torch.device | None = None,
    runner: tiling.TileRunner | None = None,
    record: dict[str, object] | None = None,
    announce: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Upscale every work item of ``plan``; report each file through ``on_item`` and return the summary.

    ``model`` is a :class:`~mlrn_core.registry.LoadedModel` or a bare network of ``options.scale``
    (float32 NCHW RGB in [0,1]). One :class:`~mlrn_core.tiling.TileRunner` serves the whole batch
    (``runner``, or one made on ``device``, or on ``options.device``). For a plan made with model "auto",
    ``model`` is the mapping from :func:`load_auto_models` and each file runs through the model Auto
    picked for it (one runner per model); the sidecar names it per file. Skipped and unsupported files are
    reported first, then each upscaled or failed file as it completes. Callbacks run in the calling
    thread. ``record`` adds fields to every sidecar line (e.g. the process rank); each line also names the
    inference path that ran (``backend``). ``announce(text)`` hears Auto's first measurement of a model's
    paths on this machine (:func:`mlrn_core.backends.choose`). Raises
    :class:`BatchError` when the model does not upscale by ``options.scale`` and
    :class:`~mlrn_core.tiling.DeviceError` for a device that is not available; failures of single files
    never raise.
    """
    per_file = isinstance(model, Mapping)
    if per_file:
        nets = {n: getattr(m, "model", m) for n, m in model.items()}
        name = "auto"
    else:
        net = getattr(model, "model", model)
        name = str(getattr(model, "name", "") or type(net).__name__)
        nets = {name: net}
    for n, net in nets.items():
        if int(getattr(net, "scale", 0)) != options.scale:
            raise BatchError(f"model '{n}' upscales x{getattr(net, 'scale', '?')}, but x{options.scale} was asked for")
    start = time.monotonic()
    cancel = cancel or (lambda: False)
    results: list[ItemResult] = []
    work = [i for i in plan.items if i.is_work]
    summary = BatchSummary(results, model=name, scale=options.scale)
    unserved = [i for i in work if per_file and i.auto is None]  # Auto has no model for these files
    work = [i for i in work if i not in unserved]
    missing = sorted({i.auto.name for i in work if per_file and i.auto is not None} - set(nets))
    if missing:
        raise BatchError(f"model '{missing[0]}', which Auto picked, was not loaded (see load_auto_models)")

    runners: dict[str, tiling.TileRunner] = {}
    if runner is not None:
        runners[name] = runner
    target = runner.device if runner is not None else (device or tiling.pick_device(options.device)) if work else None
    summary.device = tiling.device_label(target) if target is not None else ""

    def model_for(item: BatchItem) -> tuple[torch.nn.Module, tiling.TileRunner]:
        key = item.auto.name if per_file and item.auto is not None else name
        if key not in runners:  # weights move to the device once per model
            precision = "fp32" if options.half is False and options.precision == "auto" else options.precision
            runners[key] = backends.make_runner(
                nets[key], target, precision=precision, ensemble=options.ensemble, announce=announce
            )
        return nets[key], runners[key]

    sidecar = _Sidecar(
        plan.sidecar,
        {
            "model": name,
            "scale": options.scale,
            "device": summary.device,
            "quality": "best" if (runner.ensemble if runner is not None else options.ensemble) else "normal",
            **(record or {}),
        },
        per_file,
    )

    def report(result: ItemResult) -> None:
        results.append(result)
        sidecar.record(result)
        if on_item is not None:
            on_item(result)

    sidecar.check()
    summary.record_error = sidecar.error
    for item in plan.items:
        if item.action == SKIP:
            report(ItemResult(item, SKIPPED, item.output, error="output exists"))
        elif item.action == UNSUPPORTED:
            report(ItemResult(item, SKIPPED, None, error=f"unsupported file type ({item.note})"))
        elif item.action == ERROR:
            report(ItemResult(item, FAILED, None, error=item.note))
    for item in unserved:
        report(ItemResult(item, FAILED, None, error=item.auto_error or "Auto picked no model"))

    if work:
        for folder in {i.output.parent for i in work if i.output is not None}:
            atomic.remove_stale_parts(folder)
        capture = _ItemLog()
        io_log = logging.getLogger(imageio.__name__)
        io_log.addHandler(capture)
        try:
            _run_work(work, options, model_for, capture, progress, cancel, report, summary, start)
        finally:
            io_log.removeHandler(capture)
    summary.elapsed_s = time.monotonic() - start
    summary.record_error = sidecar.error
    return summary


def output_folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (created if missing), or None when they can.

    Tried for real (a probe file is created and removed): permissions, read-only disks, ACLs and full
    quota all answer the same way as the write itself would."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mlrn-probe-{os.getpid()}-{threading.get_ident()}{atomic.PART_SUFFIX}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        # a file where the folder (or one above it) should be: say which, not that "the name already exists"
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if isinstance(exc, (FileExistsError, NotADirectoryError)) and blocker is not None:
            return f"output folder '{folder}': '{blocker}' is a file, not a folder; choose another output path"
        return f"output folder '{folder}': {imageio._os_reason(exc)}"
    return None


def _non_finite(picture: Picture) -> bool:
    rgb = picture.rgb
    return rgb.dtype.kind == "f" and not bool(np.isfinite(rgb).all())


class _InvalidOutput(Exception):
    """The network's output holds NaN or infinite values."""


@dataclass
class _Job:
    """A work item on its way through read -> upscale -> write."""

    item: BatchItem
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = ""


def _run_work(
    work: list[BatchItem],
    options: BatchOptions,
    model_for: Callable[[BatchItem], tuple[torch.nn.Module, tiling.TileRunner]],
    capture: _ItemLog,
    progress: ProgressFn | None,
    cancel: CancelFn,
    report: Callable[[ItemResult], None],
    summary: BatchSummary,
    start: float,
) -> None:
    def read(job: _Job) -> Picture:
        t0 = time.monotonic()
        try:
            declared = imageio.declared_size(job.item.source)
            if declared is not None:  # before the picture takes its memory: will it and its output fit?
                width, height, alpha = declared
                need = memory.upscale_bytes(width, height, options.scale, alpha)
                problem = memory.shortfall(need, width, height, options.scale)
                if problem:
                    raise ImageIOError(job.item.source, problem)
            with capture.collecting(job.warnings):
                return imageio.read_image(job.item.source, options.raw_colour)
        finally:
            job.seconds += time.monotonic() - t0

    def write(job: _Job, picture: Picture) -> ItemResult:
        t0 = time.monotonic()
        assert job.item.output is not None

        def result(status: str, path: Path | None, error: str | None) -> ItemResult:
            seconds = job.seconds + time.monotonic() - t0
            return ItemResult(job.item, status, path, seconds, error, job.warnings, job.backend)

        for _attempt in range(1000):
            target = job.item.output
            try:
                with capture.collecting(job.warnings):
                    path = imageio.write_image(
                        picture,
                        target,
                        fmt=output_format(job.item, options),
                        # "same as source" keeps a lossless WebP lossless; the quality is for lossy sources
                        quality=None if options.fmt == "same" and picture.lossless_webp else options.quality,
                        overwrite=job.item.action == OVERWRITE,
                    )
                return result(OK, path, None)
            except imageio.OutputExistsError:
                # another program or run created this name while we worked: never replace it
                if options.on_exists != "rename":
                    return result(SKIPPED, target, "output exists (it appeared while this file was upscaled)")
                retry = _now_free(replace(job.item, action=RENAME), options)
                if retry is None:
                    break
                job.item = retry
            except ImageIOError as exc:
                return result(FAILED, None, f"output '{target}': {exc.reason}")
            except Exception as exc:  # noqa: BLE001 - one file's failure never stops the batch
                return result(FAILED, None, f"output '{target}': cannot write ({type(exc).__name__}: {exc})")
        return result(FAILED, None, f"output '{job.item.output}': no free name found")

    folder_ok: dict[Path, str | None] = {}
    finite: dict[int, bool] = {}
    fell_back: set[int] = set()  # runners whose fall-back to PyTorch a file's warnings said

    def probe_ok(runner: tiling.TileRunner) -> bool:
        """Whether the network gives finite values (tried once per runner on a small gray square)."""
        if id(runner) not in finite:
            probe = runner.run(np.full((8, 8, 3), 0.5, np.float32))
            finite[id(runner)] = bool(np.isfinite(probe).all())
        return finite[id(runner)]

    def output_problem(item: BatchItem) -> str | None:
        assert item.output is not None
        folder = item.output.parent
        if folder not in folder_ok:
            folder_ok[folder] = output_folder_problem(folder)
        return folder_ok[folder]

    def failed(job: _Job, reason: str) -> None:
        log.info("%s failed: %s", job.item.source, reason)
        report(ItemResult(job.item, FAILED, None, job.seconds, reason, job.warnings))

    reader = ThreadPoolExecutor(1, thread_name_prefix="mlrn-read") if options.prefetch else None
    writer = ThreadPoolExecutor(1, thread_name_prefix="mlrn-write") if options.prefetch else None
    reads: dict[int, Future[Picture]] = {}
    pending: Future[ItemResult] | None = None  # at most one output waits to be written
    jobs = [_Job(i) for i in work]
    done = 0
    total = len(jobs)

    def emit(job: _Job | None, position: int, tiles_done: int, tiles_total: int) -> None:
        if progress is None:
            return
        elapsed = time.monotonic() - start
        frac = (done + (tiles_done / tiles_total if tiles_total else 0.0)) / total
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        progress(BatchProgress(job.item if job else None, position, total, done, tiles_done, tiles_total, elapsed, eta))

    def finish_pending() -> None:
        nonlocal pending
        if pending is not None:
            report(pending.result())
            pending = None

    def prefetch(k: int) -> None:
        if reader is not None and k < total and k not in reads:
            reads[k] = reader.submit(read, jobs[k])

    try:
        for k, job in enumerate(jobs):
            if cancel():
                summary.cancelled = True
                summary.not_started = total - k
                break
            checked = _now_free(job.item, options)
            if checked is None:
                reads.pop(k, None)
                report(ItemResult(job.item, SKIPPED, job.item.output, error="output exists"))
                done += 1
                continue
            job.item = checked
            problem = output_problem(job.item)
            if problem is not None:  # found before the picture is read and upscaled
                reads.pop(k, None)
                finish_pending()
                failed(job, problem)
                done += 1
                continue
            emit(job, k + 1, 0, 0)
            try:
                picture = reads.pop(k).result() if k in reads else read(job)
            except ImageIOError as exc:
                prefetch(k + 1)
                finish_pending()
                failed(job, exc.reason)
                done += 1
                continue
            except Exception as exc:  # noqa: BLE001
                prefetch(k + 1)
                finish_pending()
                failed(job, _oom_reason(exc) or f"cannot read ({type(exc).__name__}: {exc})")
                done += 1
                continue
            prefetch(k + 1)
            for note in _format_notes(picture, output_format(job.item, options)):
                job.warnings.append(note)

            t0 = time.monotonic()
            try:
                net, runner = model_for(job.item)
                if not probe_ok(runner):  # a broken model would write black images (its NaN become 0)
                    raise _InvalidOutput
                up = tiling.upscale_picture(  # thin pictures are edge-padded inside (tiling.upscale_array)
                    net,
                    picture,
                    tile=options.tile,
                    runner=runner,
                    cancel=cancel,
                    progress=lambda d, t, job=job, k=k: emit(job, k + 1, d, t),
                )
                job.backend = f"{runner.where()}, {runner.describe()}"
                if runner.fallback_note and id(runner) not in fell_back:  # said once, with the first file it hit
                    fell_back.add(id(runner))
                    job.warnings.append(runner.fallback_note)
                if _non_finite(up):
                    raise _InvalidOutput
            except _InvalidOutput:
                job.seconds += time.monotonic() - t0
                finish_pending()
                failed(
                    job,
                    "the model produced invalid values (NaN or infinity), so nothing was written: the model "
                    "file is broken; use another model",
                )
                done += 1
                continue
            except tiling.Cancelled:
                job.seconds += time.monotonic() - t0
                summary.cancelled = True
                summary.not_started = total - k - 1
                finish_pending()
                report(ItemResult(job.item, CANCELLED, None, job.seconds, "cancelled", job.warnings))
                break
            except Exception as exc:  # noqa: BLE001
                job.seconds += time.monotonic() - t0
                finish_pending()
                failed(job, _oom_reason(exc) or f"upscaling failed ({type(exc).__name__}: {exc})")
                done += 1
                continue
            finally:
                del picture
            job.seconds += time.monotonic() - t0

            finish_pending()  # the previous output is written before the next starts (bounded memory)
            if writer is not None:
                pending = writer.submit(write, job, up)
            else:
                report(write(job, up))
            del up
            done += 1
            emit(job, k + 1, 0, 0)
        finish_pending()
    finally:
        for f in reads.values():
            f.cancel()
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.shutdown(wait=True)  # a started write is completed (it is whole) before returning
        if pending is not None and pending.done() and not pending.cancelled():
            with contextlib.suppress(Exception):
                report(pending.result())


def plan_lines(items: Iterable[BatchItem]) -> list[str]:
    """One line per item for a dry run / preview: 'action  source -> output', plus Auto's model choice."""
    lines = []
    for item in items:
        target = f" -> {item.output}" if item.output is not None else ""
        model = f"  [{item.auto.caption}]" if item.auto else f"  [Auto: {item.auto_error}]" if item.auto_error else ""
        lines.append(f"{item.describe():<24} {item.source}{target}{model}")
    return lines


# --------------------------------------------------------------------------------------------------------
# Auto: a model per file
# --------------------------------------------------------------------------------------------------------


def load_auto_models(items: Iterable[BatchItem], cache: ModelCache | None = None) -> dict[str, LoadedModel]:
    """Load each model Auto picked for the work ``items`` of a plan once: name -> model, for :func:`run_batch`.

    Raises :class:`~mlrn_core.registry.ModelError` when one of them cannot be loaded.
    """
    cache = cache or ModelCache()
    return cache.load_all(i.auto for i in items if i.is_work and i.auto is not None)


def auto_summary(items: Iterable[BatchItem]) -> list[str]:
    """What Auto picked for the work ``items``, for the CLI and the dialog: 'mlrn-x2-photo for 3 files (2 JPEG,
    1 HEIC)', then a line for a missing photo model and one per reason some files have no model."""

    def files(n: int) -> str:
        return plural(n, "file")

    picked: dict[str, dict[str, int]] = {}
    fallback: dict[tuple[str, str], int] = {}
    errors: dict[str, int] = {}
    for item in items:
        if not item.is_work:
            continue
        choice = item.auto
        if choice is None:
            if item.auto_error:
                errors[item.auto_error] = errors.get(item.auto_error, 0) + 1
            continue
        labels = picked.setdefault(choice.name, {})
        labels[choice.source.label] = labels.get(choice.source.label, 0) + 1
        if choice.fallback:
            key = (photo_name(choice.scale), choice.name)
            fallback[key] = fallback.get(key, 0) + 1
    lines = [
        f"{name} for {files(sum(labels.values()))} ({', '.join(f'{n} {label}' for label, n in labels.items())})"
        for name, labels in picked.items()
    ]
    lines += [
        f"{photo} is not installed: {files(n)} from cameras {'uses' if n == 1 else 'use'} {paper}"
        for (photo, paper), n in fallback.items()
    ]
    lines += [f"{files(n)} not upscaled: {why}" for why, n in errors.items()]
    return lines
