"""Background jobs of the main window: reading and upscaling an image, saving a result.

Each job is a QObject moved to its own QThread (the superqt/napari wiring in docs/STYLE.md): it gets
immutable inputs, reports through signals, catches every exception and emits it, never touches a
widget or a QPixmap, and stops at the next tile once :meth:`Job.stop` is called. :class:`JobRunner`
owns the threads on the GUI side and waits for them on shutdown, so closing the window mid-render
never destroys a running QThread. :data:`MODELS` keeps the prepared models of the last renders, so
switching images never reloads one: only a new model file, device, scale or precision does.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from app.image_cache import ImageId, RenderKey, RenderResult
from app.pyramid import Pyramid
from app.render import (
    VisibleRegion,
    bicubic_uint8,
    detail_focus,
    interactive_tile,
    make_priority,
    nearest_uint8,
    to_uint8,
)
from mlrn_core.backends import make_runner
from mlrn_core.imageio import ImageIOError, Picture, is_camera_raw, raw, read_image_for_display, write_image
from mlrn_core.registry import LoadedModel, ModelError, load_model
from mlrn_core.tiling import (
    DEFAULT_OVERLAP,
    Cancelled,
    TileRunner,
    finish_upscaled,
    keep_gray,
    plan_tiles,
    upscale_array,
)

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96


def describe_error(exc: BaseException) -> str:
    """One line for the status area: the core's own messages as they are, anything else with its type."""
    if isinstance(exc, (ImageIOError, ModelError)):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this image at this scale; try a smaller scale or close other images"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ModelCache:
    """The prepared models (weights on the device at their precision) of the last few renders.

    Keyed by the model file (path, size, modification time), scale, device, precision and quality, so an edited
    or replaced file, or another setting, loads afresh while switching images never does. Two entries
    cover the usual A/B comparison of two models. ``loads`` counts the files actually loaded.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.loads = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[LoadedModel, TileRunner]] = OrderedDict()

    def get(
        self,
        path: str,
        scale: int,
        device: torch.device,
        precision: str = "auto",
        ensemble: bool = False,
        announce=None,
    ) -> tuple[LoadedModel, TileRunner]:
        """The model and its runner; ``announce(text)`` hears Auto's first measurement of the model here."""
        try:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (0, 0)
        key = (os.path.abspath(path), stamp, scale, str(device), precision, ensemble)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            loaded = load_model(path, scale)
            self.loads += 1
            runner = make_runner(loaded.model, device, precision=precision, ensemble=ensemble, announce=announce)
            entry = (loaded, runner)
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: The app's one cache of prepared models, shared by every render job.
MODELS = ModelCache()


class Job(QObject):
    """Base of the background jobs: ``run`` calls ``work`` and always ends with ``finished``."""

    failed = Signal(str)
    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - a worker reports every failure instead of dying
            log.exception("%s failed", type(self).__name__)
            self.failed.emit(describe_error(exc))
        finally:
            self.finished.emit()

    def work(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class RenderSpec:
    """One image to make: ``method`` is "bicubic", "nearest" or "model" (then ``model_path`` is set)."""

    key: RenderKey
    method: str
    label: str
    model_path: str | None = None


@dataclass(frozen=True)
class LoadedImage:
    """What the worker read: the picture, its uint8 display pixels and a thumbnail."""

    image_id: ImageId
    path: Path
    picture: Picture
    lr: Pyramid
    thumbnail: np.ndarray
    seconds: float
    focus: tuple[float, float] = (0.5, 0.5)  # where the first view opens: the most detailed region (fractions)


@dataclass(frozen=True)
class RenderRequest:
    """Everything one render job needs. ``picture``/``lr`` are None when the file still has to be read."""

    path: Path
    image_id: ImageId
    scale: int
    renders: tuple[RenderSpec, ...]
    tile: int = 0  # 0 = interactive "auto" size
    overlap: int = DEFAULT_OVERLAP
    picture: Picture | None = None
    lr: Pyramid | None = None
    visible: VisibleRegion | None = None


class RenderJob(Job):
    """Reads an image (when needed), then makes each requested render, visible tiles first."""

    loaded = Signal(object)  # LoadedImage
    preview = Signal(object, object)  # ImageId, raw.Preview: a RAW file's own preview, shown while it develops
    render_started = Signal(object, int, object)  # RenderKey, total tiles (0 when not tiled), canvas Pyramid
    tiles = Signal(object, object)  # RenderKey, list of (x, y, w, h) output-pixel rects now final on the canvas
    render_progress = Signal(object, int, int)  # RenderKey, done, total
    render_done = Signal(object)  # RenderResult
    render_failed = Signal(object, str)  # RenderKey, message
    notice = Signal(str)  # e.g. Auto measuring a model's paths on first use (seconds): for the status bar

    def __init__(self, request: RenderRequest) -> None:
        super().__init__()
        self.request = request
        self._deferred: list[RenderSpec] = []

    def work(self) -> None:
        req = self.request
        picture, lr = req.picture, req.lr
        if picture is None or lr is None:
            t0 = time.perf_counter()
            if is_camera_raw(req.path):  # developing takes seconds: the camera's preview shows meanwhile
                preview = raw.embedded_preview(req.path)
                if preview is not None:
                    self.preview.emit(req.image_id, preview)
            picture, pixels = read_image_for_display(
                req.path, req.image_id.develop or "srgb"
            )  # an 8-bit file's pixels need no conversion back
            lr = Pyramid.build(pixels if pixels is not None else to_uint8(picture.rgb))
            seconds = time.perf_counter() - t0
            loaded = LoadedImage(req.image_id, req.path, picture, lr, _thumbnail(lr), seconds, detail_focus(lr.levels))
            self.loaded.emit(loaded)
        renders = list(req.renders)
        # The first MLRN tiles under the view come before the full-image bicubic (or nearest) view: that
        # costs seconds on a 24 MP photo, and until then the LR placeholder stands in for it. The plain
        # renders run as soon as the first model render has put tiles on its canvas (or has ended).
        self._deferred = []
        if any(s.method == "model" for s in renders):
            self._deferred = [s for s in renders if s.method != "model"]
            renders = [s for s in renders if s.method == "model"]
        for spec in renders:
            if not self._render_one(spec, picture, lr) or not self._run_deferred(picture, lr):
                return
        self._run_deferred(picture, lr)

    def _render_one(self, spec: RenderSpec, picture: Picture, lr: Pyramid) -> bool:
        """Make one render, reporting its failure; False when the job was stopped."""
        if self.stopping:
            return False
        try:
            self._render(spec, picture, lr)
        except Cancelled:
            return False
        except Exception as exc:  # noqa: BLE001 - one failed model must not stop the other render
            log.exception("render %s failed", spec.label)
            self.render_failed.emit(spec.key, describe_error(exc))
        return True

    def _run_deferred(self, picture: Picture, lr: Pyramid) -> bool:
        """Make the plain renders held back for the first model tiles (each once); False when stopped."""
        while self._deferred:
            if not self._render_one(self._deferred.pop(0), picture, lr):
                return False
        return True

    def _render(self, spec: RenderSpec, picture: Picture, lr: Pyramid) -> None:
        req = self.request
        t0 = time.perf_counter()
        if spec.method in ("bicubic", "nearest"):
            self.render_started.emit(spec.key, 0, None)
            fn = bicubic_uint8 if spec.method == "bicubic" else nearest_uint8
            image = fn(lr.levels[0], req.scale)
            pyramid = Pyramid.build(image)
            self.render_done.emit(RenderResult(spec.key, spec.label, pyramid, seconds=time.perf_counter() - t0))
            return
        if spec.model_path is None:
            raise ModelError(f"no model file given for '{spec.label}'")
        device = torch.device(spec.key.device or "cpu")
        loaded, runner = MODELS.get(
            spec.model_path,
            req.scale,
            device,
            spec.key.precision or "auto",
            spec.key.ensemble,
            announce=lambda text: self.notice.emit(text[:1].upper() + text[1:]),
        )
        tile = req.tile or interactive_tile(device, loaded.model)
        s = req.scale
        # The display canvas is written here and only read by the GUI, inside the rectangles this job has
        # reported final (the queued signal orders the write before the read). Writing it here keeps
        # the cost of first-touching a 100-megapixel buffer off the GUI thread. An 8-bit source is
        # upscaled straight into the canvas; a 16-bit one into a uint16 result kept for saving, whose
        # final parts are copied to the canvas as uint8. No float32 image of output size is ever made.
        canvas = Pyramid.zeros(picture.height * s, picture.width * s)
        out = canvas.levels[0] if picture.bit_depth == 8 else np.empty_like(canvas.levels[0], np.uint16)
        self.render_started.emit(spec.key, len(plan_tiles(picture.height, picture.width, tile, req.overlap)), canvas)
        shown: list[bool] = []  # not empty once tiles are on the canvas

        def on_tile(_t, lr_rects: list[tuple[int, int, int, int]]) -> None:
            rects = []
            for x0, y0, x1, y1 in lr_rects:
                x, y, w, h = x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s
                part = out[y : y + h, x : x + w]
                # a gray source is shown as it will be saved: gray (the network may tint it slightly)
                if out is canvas.levels[0]:
                    if picture.grayscale:
                        part[:] = keep_gray(part, True)
                    canvas.refresh(x, y, w, h)
                else:
                    canvas.paste(x, y, to_uint8(keep_gray(part, picture.grayscale)))
                rects.append((x, y, w, h))
            if rects:
                self.tiles.emit(spec.key, rects)
                shown.append(True)

        def on_progress(done: int, total: int) -> None:
            self.render_progress.emit(spec.key, done, total)
            if shown and self._deferred:  # the first tiles are on screen (and counted): now the bicubic view
                self._run_deferred(picture, lr)

        upscale_array(
            loaded.model,
            picture.rgb,
            tile=tile,
            overlap=req.overlap,
            runner=runner,
            progress=on_progress,
            cancel=self._stop.is_set,
            priority=make_priority(req.visible, (0.0, 0.0, float(picture.width), float(picture.height)))
            if req.visible is not None
            else None,
            on_tile=on_tile,
            out=out,
        )
        seconds = time.perf_counter() - t0
        # every cell has been written exactly once, final, so the canvas and its pyramid are complete
        keep = out if out is not canvas.levels[0] else None
        info = dict(
            loaded.info,
            tile=tile,
            overlap=req.overlap,
            precision=runner.precision,
            quality=runner.quality,
            backend=runner.describe(),
        )
        if runner.auto is not None and runner.auto.measured and runner.auto.seconds:
            info["auto"] = runner.auto.text()  # what the Precision list's Auto item says
        if runner.fallback_note:
            info["fallback"] = runner.fallback_note
        label = f"{runner.where()}, {runner.describe()}"
        self.render_done.emit(RenderResult(spec.key, spec.label, canvas, keep, seconds, label, info))


def _thumbnail(lr: Pyramid) -> np.ndarray:
    level = lr.levels[-1]
    h, w = level.shape[:2]
    f = THUMBNAIL_SIDE / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.ascontiguousarray(cv2.resize(level, size, interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class SaveRequest:
    """A finished render to write: ``source`` supplies the metadata, ``result`` the pixels."""

    source: Picture
    result: RenderResult
    scale: int
    path: Path
    fmt: str | None = None
    quality: int | None = None
    bit_depth: int | None = None
    overwrite: bool = False  # True only for a file the user chose to replace


class SaveJob(Job):
    """Builds the output Picture as batch does (:func:`mlrn_core.tiling.finish_upscaled`), writes it atomically."""

    saved = Signal(str)

    def __init__(self, request: SaveRequest) -> None:
        super().__init__()
        self.request = request

    def work(self) -> None:
        req = self.request
        # 16-bit sources keep a uint16 result; 8-bit ones the uint8 display pixels, which are the result
        rgb = req.result.rgb16 if req.result.rgb16 is not None else req.result.image
        picture = finish_upscaled(req.source, rgb, req.scale)
        out = write_image(
            picture, req.path, fmt=req.fmt, quality=req.quality, bit_depth=req.bit_depth, overwrite=req.overwrite
        )
        self.saved.emit(str(out))


class _ThreadEnd(QObject):
    """Tells a :class:`JobRunner` (in the GUI thread) which of its threads has finished."""

    def __init__(self, runner: JobRunner, job_id: int) -> None:
        super().__init__(runner)
        self._runner = runner
        self._job_id = job_id

    @Slot()
    def fire(self) -> None:
        self._runner._on_thread_finished(self._job_id)
        self.deleteLater()


class JobRunner(QObject):
    """Starts jobs on their own QThreads and keeps them alive until they have finished.

    Give it a parent that outlives its jobs (the app's render session does): an unparented runner crashed
    with SIGBUS in ``QObject::~QObject`` when a finished thread's notifier was deleted (PySide6 6.11,
    seen in ``benchmarks/threads.py`` before it parented its runner)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[int, tuple[QThread, Job]] = {}
        self._next_id = 0

    def start(self, job: Job) -> None:
        thread = QThread()
        job.moveToThread(thread)
        job_id = self._next_id
        self._next_id += 1
        thread.started.connect(job.run)
        job.finished.connect(thread.quit)
        # a bound method of a GUI-thread object, so Qt queues the call here (a lambda or partial would run in
        # the finishing thread itself); one per thread, holding its id: QObject.sender() of a queued call can
        # name another thread, when the finished one was deleted and a new one took its address, and that
        # running thread would then be dropped and destroyed ("QThread: Destroyed while thread is still running")
        end = _ThreadEnd(self, job_id)
        thread.finished.connect(end.fire)
        self._running[job_id] = (thread, job)
        thread.start()

    def is_running(self, job: Job) -> bool:
        return any(j is job for _t, j in self._running.values())

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def _on_thread_finished(self, job_id: int) -> None:
        entry = self._running.pop(job_id, None)
        if entry is not None:
            entry[0].wait()  # finished is emitted just before the thread really ends

    def stop_all(self, wait: bool = True, keep: tuple[type[Job], ...] = ()) -> None:
        """Ask every job except those of the ``keep`` types to stop; with ``wait``, block until all ended."""
        for _thread, job in list(self._running.values()):
            if not isinstance(job, keep):
                job.stop()
        if wait:
            self.wait()

    def wait(self, kinds: tuple[type[Job], ...] = (Job,)) -> None:
        """Block until the running jobs of ``kinds`` have ended, without asking them to stop.

        A job's end asks its thread to quit through the GUI event loop (queued), which may not run now
        (closing, interpreter exit): quit it here, again until it has ended (a quit before the thread's own
        event loop started would be lost)."""
        for job_id, (thread, job) in list(self._running.items()):
            if isinstance(job, kinds):
                while not thread.wait(50):
                    thread.quit()
                self._running.pop(job_id, None)


_APP_RUNNER: JobRunner | None = None


def app_runner() -> JobRunner:
    """The one owner of jobs that must outlive the window or dialog that started them (a model import in
    Manage Models): parented to the application, and waited for when Python exits."""
    global _APP_RUNNER
    if _APP_RUNNER is None:
        _APP_RUNNER = JobRunner(QCoreApplication.instance())
        atexit.register(_APP_RUNNER.wait)  # never leave Python with a running QThread
    return _APP_RUNNER
