"""The render session behind the main window: which images are open, what each side shows, the jobs.

:class:`RenderSession` is a QObject without widgets. It owns the open images, the renders the views
show, the cache of finished renders, the render job and a save waiting for its render; the window
builds widgets, turns user actions into calls here and repaints when told to. Tests drive a session
without a window.

Rendering is driven by one method, :meth:`RenderSession.request`: it works out what the current image
and the :class:`RenderSettings` need, shows what the cache already has and starts (or redirects) one
render job for the rest. The job reads the file when needed and makes the renders in order (the MLRN
result, the left-hand model), the tiles on screen first, and the bicubic view as soon as the first MLRN
tiles are on screen (until then the LR input stands in for it); each final block is announced with
:attr:`RenderSession.repaint` as it arrives. Nothing here blocks the event loop on image-sized work.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QRegion

from app.image_cache import ImageCache, ImageId, RenderKey, RenderResult
from app.pyramid import Pyramid
from app.render import VisibleRegion
from app.viewer import ViewerImage
from app.worker import JobRunner, LoadedImage, RenderJob, RenderRequest, RenderSpec, SaveJob, SaveRequest
from mlrn_core import auto, memory
from mlrn_core.batch import output_folder_problem
from mlrn_core.imageio import (
    RAW_ADVICE,
    SUPPORTED_EXTENSIONS,
    declared_size,
    is_camera_raw,
    is_readable,
    raw,
    readable_extensions,
)
from mlrn_core.registry import ModelError
from mlrn_core.terminal import fmt_duration
from mlrn_core.tiling import DEFAULT_OVERLAP, DeviceError, pick_device

KEEP_LOADED = 2  # decoded pictures kept for stepping back and forth (renders live in the cache)


@dataclass(frozen=True)
class ModelRef:
    """A model file one side shows, and the name its caption gives it."""

    path: Path
    name: str


@dataclass(frozen=True)
class RenderSettings:
    """What the renders depend on: the scale, the MLRN model (right), the left side, tile, device, precision
    and quality."""

    scale: int = 2
    model: ModelRef | None = None
    left_model: ModelRef | None = None
    left_method: str = "bicubic"  # "bicubic" or "nearest" when there is no left model
    tile: int = 0  # 0 = interactive "auto" size
    device: str = "auto"
    auto_model: bool = False  # model "Auto": the built-in model :func:`auto_ref` picks for each image
    precision: str = "auto"  # mlrn_core.tiling.PRECISIONS
    quality: str = "normal"  # mlrn_core.tiling.QUALITIES: "best" is the 8-way self-ensemble
    raw_colour: str = "srgb"  # the colour space camera RAW files are developed into


@dataclass(frozen=True)
class Progress:
    """What the progress bar shows: ``maximum`` 0 means busy without a count."""

    value: int
    maximum: int
    text: str
    tip: str = ""


def progress_text(done: int, total: int, elapsed_s: float) -> str:
    """The progress bar's words, as ``mlrn upscale`` says them: '12/54 tiles · 22% · eta 00:41'."""
    eta = elapsed_s * (total - done) / done if done else None
    return f"{done}/{total} tiles · {100 * done // max(1, total)}% · eta {fmt_duration(eta)}"


def auto_ref(path: Path, scale: int) -> tuple[ModelRef | None, str]:
    """The built-in model Auto picks for the image at ``path``, named with its caption ('mlrn-x2-photo
    (Auto: JPEG input)'), or (None, why there is none)."""
    try:
        picked = auto.choose_model(path, scale)
    except ModelError as exc:
        return None, f"Auto: {exc}"
    return ModelRef(picked.path, picked.caption), ""


#: The colour spaces a camera RAW file can be developed into, as menus and lists show them.
RAW_COLOUR_LABELS = {"srgb": "sRGB", "adobe": "Adobe RGB (1998)", "prophoto": "ProPhoto RGB"}


def raw_development_note() -> str:
    """What developing a camera RAW file does (tooltips), or why it cannot be done here."""
    if not raw.available():
        return RAW_ADVICE[0].upper() + RAW_ADVICE[1:]
    return raw.DEVELOPMENT[0].upper() + raw.DEVELOPMENT[1:] + ". Saved as a 16-bit TIFF unless you choose otherwise."


RAW_PREVIEW_PROGRESS = "camera preview · developing RAW…"  # caption of a side showing a RAW's own preview


def sort_inputs(items: list[str | Path]) -> tuple[list[Path], list[Path], str]:
    """What was dropped or given: (image files to open, folders for batch export, why others were not)."""
    files: list[Path] = []
    folders: list[Path] = []
    rejected: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            folders.append(p)
        elif not p.exists():
            rejected.append(f"'{p.name}' does not exist")
        elif is_readable(p):
            files.append(p.absolute())
        elif is_camera_raw(p):
            rejected.append(f"'{p.name}': {RAW_ADVICE}")
        else:
            kinds = ", ".join(sorted(e.lstrip(".").upper() for e in SUPPORTED_EXTENSIONS))
            rejected.append(f"'{p.name}' is not a supported image type (use {kinds} or camera RAW)")
    more = f"; and {len(rejected) - 3} more" if len(rejected) > 3 else ""
    return files, folders, ("Cannot open " + "; ".join(rejected[:3]) + more) if rejected else ""


def image_file_filter() -> str:
    """The file dialogs' filter for every file the app opens, camera RAW included (both cases: cameras name
    files IMG_0001.CR2, and name filters match case-sensitively on Linux)."""
    exts = sorted(readable_extensions())
    patterns = " ".join(f"*{e}" for e in exts) + " " + " ".join(f"*{e.upper()}" for e in exts)
    return f"Images ({patterns});;All files (*)"


def same_file(a: Path, b: Path) -> bool:
    """True when ``b`` is the file ``a`` (or would overwrite it)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return b.exists() and a.samefile(b)
    except OSError:
        return False


class RenderSession(QObject):
    """See the module docstring. The window connects to the signals; tests wait on them."""

    info = Signal(str, int)  # message, milliseconds to show it (0 = until the next message)
    error = Signal(str)
    image_loaded = Signal(object)  # LoadedImage of any image of the list (its thumbnail, size, depth)
    picture_ready = Signal(object)  # LoadedImage of the current image: its size is known now
    preview_ready = Signal(int, int)  # output width, height of the current image, known from a RAW's preview
    image_shown = Signal(str)  # path, once its picture has been read and is on screen
    load_failed = Signal(object, str)  # path, message: the file could not be read
    views_changed = Signal()  # which image each side shows changed: lay the views out again
    repaint = Signal()  # pixels of the shown images changed
    busy_changed = Signal(bool)  # a render job started (True, before it runs) or ended
    progress = Signal(object)  # Progress of the running render
    status_changed = Signal()  # timings changed
    render_finished = Signal(object)  # RenderKey of a render that is now complete on screen
    saved = Signal(str)  # path written

    def __init__(self, cache_bytes: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = ImageCache(cache_bytes)
        self.runner = JobRunner(self)
        self.visible = VisibleRegion()
        self.settings = RenderSettings()
        self.paths: list[Path] = []
        self.index = -1
        self.current: LoadedImage | None = None
        self._loaded: OrderedDict[ImageId, LoadedImage] = OrderedDict()
        self._images: dict[RenderKey, ViewerImage] = {}
        self._results: dict[RenderKey, RenderResult] = {}  # what is on screen, even if the cache let it go
        self._sides: dict[str, RenderKey | None] = {"left": None, "right": None}
        self._no_model = ViewerImage("MLRN")
        self._no_model_reason = ""  # why Auto has no model for the current image
        self._job: RenderJob | None = None
        self._job_keys: set[RenderKey] = set()
        self._rerequest = False
        self._progress_key: RenderKey | None = None
        self._progress_total = 0  # tiles of the render the progress bar follows (0: not a tiled render)
        self._started: dict[RenderKey, float] = {}
        self._pending_save: tuple[RenderKey, SaveRequest] | None = None
        self._closed = False  # after :meth:`shutdown` no job starts (nothing would wait for its thread)

    # ---------------------------------------------------------------------------------------------
    # what the window reads
    # ---------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A render job is running."""
        return self._job is not None

    @property
    def right_key(self) -> RenderKey | None:
        """The MLRN render of the current image and settings (None without a model)."""
        return self._sides["right"]

    @property
    def left_image(self) -> ViewerImage | None:
        return self._images.get(self._sides["left"]) if self._sides["left"] is not None else None

    @property
    def right_image(self) -> ViewerImage:
        key = self._sides["right"]
        image = self._images.get(key) if key is not None else None
        return image if image is not None else self._no_model

    @property
    def pending_save(self) -> Path | None:
        """Where a save waiting for its render will write."""
        return self._pending_save[1].path if self._pending_save is not None else None

    def right_timing(self) -> str:
        """'MLRN 1.2 s' when done, 'MLRN 3 s…' while it runs, '' otherwise."""
        key = self._sides["right"]
        result = self._results.get(key) if key is not None else None
        if result is not None:
            return f"MLRN {result.seconds:.1f} s"
        if key is not None and key in self._started:
            return f"MLRN {time.perf_counter() - self._started[key]:.0f} s…"
        return ""

    def result_info(self, key: RenderKey) -> dict:
        """The info of a finished render (model, tile, precision, backend, Auto's choice...), {} if none."""
        result = self._results.get(key)
        return dict(result.info) if result is not None else {}

    def right_path(self) -> str:
        """Where and how the right side's render ran, e.g. 'CPU (2 threads), OpenVINO int8 (Auto, 2.6x)'."""
        key = self._sides["right"]
        result = self._results.get(key) if key is not None else None
        return result.device_label if result is not None else ""

    def device(self) -> torch.device:
        """The device of the settings; the CPU (with a message) when it is not available."""
        try:
            return pick_device(self.settings.device)
        except DeviceError as exc:
            self.error.emit(f"{exc}; using the CPU")
            return torch.device("cpu")

    def image_id(self) -> ImageId | None:
        return self._image_id(self.paths[self.index]) if 0 <= self.index < len(self.paths) else None

    def _image_id(self, path: Path) -> ImageId:
        """A file as the session reads it: a camera RAW file with the colour space it is developed into."""
        return ImageId.of(path, self.settings.raw_colour if is_camera_raw(path) else "")

    # ---------------------------------------------------------------------------------------------
    # what the window asks for
    # ---------------------------------------------------------------------------------------------

    def set_paths(self, files: list[Path]) -> None:
        """A new list of images to step through (call :meth:`show` next)."""
        self.paths = list(files)
        self.index = -1

    def show(self, index: int, settings: RenderSettings | None = None) -> bool:
        """Make image ``index`` the current one and render it; False when there is no such image."""
        if not 0 <= index < len(self.paths):
            return False
        self.index = index
        if settings is not None:
            self.settings = settings
        loaded = self._loaded.get(self._image_id(self.paths[index]))
        self.current = loaded
        if loaded is not None:
            self._loaded.move_to_end(loaded.image_id)
            self.picture_ready.emit(loaded)
        self.request()
        return True

    def request(self, settings: RenderSettings | None = None) -> None:
        """Show what the cache has for the current image and settings; start one job for what is missing."""
        if self._closed:
            return
        if settings is not None:
            self.settings = settings
        image_id = self.image_id()
        if image_id is None:
            return
        st = self.settings
        device = self.device()
        bicubic = self._plain_spec(image_id, "bicubic")
        model, self._no_model_reason = auto_ref(self.paths[self.index], st.scale) if st.auto_model else (st.model, "")
        right = self._model_spec(image_id, model, device) if model is not None else None
        if st.left_model is not None:
            left = self._model_spec(image_id, st.left_model, device)
        else:
            left = self._plain_spec(image_id, st.left_method)
        specs: list[RenderSpec] = []
        for spec in (bicubic, right, left):
            if spec is not None and all(spec.key != s.key for s in specs):
                specs.append(spec)
        self._sides = {"left": left.key, "right": right.key if right is not None else None}
        loaded = self.current if self.current is not None and self.current.image_id == image_id else None
        self._show_known(specs, loaded)

        needed = [s for s in specs if s.key not in self._results]
        if self._pending_save is not None and self._pending_save[0] not in {s.key for s in specs}:
            self.info.emit(f"Not saved: '{self._pending_save[1].path.name}' was for another image or setting", 0)
            self._pending_save = None
        if self._job is not None:
            same_image = self._job.request.image_id == image_id
            if same_image and not self._job.stopping and self._job_keys <= {s.key for s in needed}:
                self._rerequest = any(s.key not in self._job_keys for s in needed)
            else:
                self._job.stop()
                self._rerequest = True
            return
        if loaded is not None and not needed:
            return
        if loaded is None and not self._fits_in_memory(self.paths[self.index]):
            return
        self._start_render_job(
            RenderRequest(
                path=self.paths[self.index],
                image_id=image_id,
                scale=st.scale,
                renders=tuple(needed),
                tile=st.tile,
                picture=loaded.picture if loaded is not None else None,
                lr=loaded.lr if loaded is not None else None,
                visible=self.visible,
            )
        )

    def _fits_in_memory(self, path: Path) -> bool:
        """Whether the picture at ``path`` and its views fit in the memory free now (from its header, before
        anything is read); if not, says so on both sides and in the list, and nothing starts."""
        declared = declared_size(path)
        if declared is None:
            return True
        width, height, alpha = declared
        scale = self.settings.scale
        problem = memory.shortfall(memory.view_bytes(width, height, scale, alpha), width, height, scale)
        if problem is None:
            return True
        message = f"Not opened: '{path.name}': {problem}"
        self.error.emit(message)
        self.load_failed.emit(path, message)
        for image in self._images.values():
            image.base, image.overlay, image.pending, image.progress = None, None, False, ""
            image.message = message
        self.repaint.emit()
        return False

    def save(self, target: Path, fmt: str, quality: int | None, bit_depth: int, overwrite: bool = False) -> bool:
        """Save the MLRN result of the current image to ``target`` now, or once its render has finished.

        False (with a message) when there is nothing to save or ``target`` is the original photo. Without
        ``overwrite`` the file is created only if absent: one that appears meanwhile is never replaced.
        """
        if self._closed:
            self.error.emit("Not saved: the window is closing")
            return False
        if self.current is None:
            self.error.emit("Nothing to save yet: open a photo first")
            return False
        key = self._sides["right"]
        if key is None:
            self.error.emit(
                f"Nothing to save: {self._no_model_reason}"
                if self._no_model_reason
                else f"Nothing to save: there is no MLRN model for ×{self.settings.scale} (open a model file first)"
            )
            return False
        if same_file(self.current.path, target):
            self.error.emit(
                f"Not saved: '{target.name}' is the original photo; choose another name (originals are never "
                "overwritten)"
            )
            return False
        problem = output_folder_problem(target.parent)  # found now, not after waiting for the render
        if problem is not None:
            self.error.emit(f"Not saved: {problem}")
            return False
        result = self._results.get(key) or self.cache.get(key)
        request = SaveRequest(self.current.picture, result, key.scale, target, fmt, quality, bit_depth, overwrite)
        if result is None:
            self._pending_save = (key, request)
            if self._job is None or key not in self._job_keys:
                self.request()
            image = self._images.get(key)
            # only a running count ("3/12 tiles"): not what a cancelled upscale said before this save restarted it
            running = image is not None and image.progress.endswith(" tiles")
            progress = f" ({image.progress})" if running else ""
            self.info.emit(f"Will save '{target.name}' when the upscale has finished{progress}", 0)
            return True
        self._start_save(request)
        return True

    def cancel(self) -> None:
        """Stop the running upscale after its current tile (a save waiting for it is dropped)."""
        if self._job is None:
            return
        self._job.stop()
        self._rerequest = False
        if self._pending_save is not None:
            self._pending_save = None
            self.info.emit("Upscale cancelled; the result was not saved", 0)
        else:
            self.info.emit("Upscale cancelled. Press F5 (Model › Upscale) to continue.", 0)

    def shutdown(self) -> None:
        """Stop renders after their current tile and wait; saves are left to finish (they write atomically).

        The session is closed from then on: a request that still arrives (a window's timer, a queued job
        signal) starts nothing. A job started after the wait would have no one to wait for its thread, and
        Qt aborts the process when a running QThread is destroyed with its owner.
        """
        self._closed = True
        self._pending_save = None
        self.runner.stop_all(wait=True, keep=(SaveJob,))
        self._job = None

    # ---------------------------------------------------------------------------------------------
    # building the renders
    # ---------------------------------------------------------------------------------------------

    def _model_spec(self, image_id: ImageId, model: ModelRef, device: torch.device) -> RenderSpec:
        try:
            mtime = model.path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        st = self.settings
        key = RenderKey(
            image_id,
            f"model:{model.path.resolve()}@{mtime}",
            st.scale,
            st.tile,
            DEFAULT_OVERLAP,
            device.type,
            st.precision,
            st.quality == "best",
        )
        label = f"MLRN {model.name}" + (" · best quality" if key.ensemble else "")
        return RenderSpec(key, "model", label, str(model.path))

    def _plain_spec(self, image_id: ImageId, method: str) -> RenderSpec:
        label = "Bicubic" if method == "bicubic" else "Original pixels"
        return RenderSpec(RenderKey(image_id, method, self.settings.scale), method, label)

    def _show_known(self, specs: list[RenderSpec], loaded: LoadedImage | None) -> None:
        """Point each side at its finished render, or at a pending image with a placeholder."""
        images: dict[RenderKey, ViewerImage] = {}
        results: dict[RenderKey, RenderResult] = {}
        for spec in specs:
            result = self.cache.get(spec.key) or self._results.get(spec.key)
            image = self._images.get(spec.key)
            if result is not None:
                results[spec.key] = result
                image = image or ViewerImage(spec.label)
                image.base, image.overlay, image.pending, image.progress = result.pyramid, None, False, ""
            elif image is None or not image.pending:
                image = ViewerImage(spec.label, pending=True, progress="waiting")
            image.message = ""
            images[spec.key] = image
        self._images, self._results = images, results
        self._no_model.message = self._no_model_reason or (
            f"No MLRN model for ×{self.settings.scale}.\n"
            "The banner above says how to get one; the left view shows bicubic."
        )
        if loaded is not None:
            self._set_placeholders(loaded)
        else:
            path = self.paths[self.index]
            doing = "Developing the RAW file" if is_camera_raw(path) else "Reading"
            for image in self._images.values():
                if image.base is None:
                    image.message = f"{doing} {path.name}…"
        self.views_changed.emit()
        self.status_changed.emit()

    def _set_placeholders(self, loaded: LoadedImage) -> None:
        """Pending renders show the bicubic result (or the input itself) dimmed until their tiles arrive."""
        bicubic = self._results.get(RenderKey(loaded.image_id, "bicubic", self.settings.scale))
        lr = Pyramid(loaded.lr.levels, unit=self.settings.scale)
        for image in self._images.values():
            if image.pending:
                image.base = bicubic.pyramid if bicubic is not None else lr
                image.message = ""
                if image.progress == RAW_PREVIEW_PROGRESS:
                    image.progress = "waiting"

    def _start_render_job(self, request: RenderRequest) -> None:
        if self._closed:
            return
        job = RenderJob(request)
        # @Slot-decorated bound methods (not lambdas or partials): Qt queues these calls to the GUI thread,
        # and PySide needs the decoration to pass Python objects across threads safely
        job.loaded.connect(self._on_job_loaded)
        job.preview.connect(self._on_job_preview)
        job.render_started.connect(self._on_job_render_started)
        job.tiles.connect(self._on_job_tiles)
        job.render_progress.connect(self._on_job_render_progress)
        job.render_done.connect(self._on_job_render_done)
        job.notice.connect(self._on_job_notice)
        job.render_failed.connect(self._on_job_render_failed)
        job.failed.connect(self._on_job_failed)
        job.finished.connect(self._on_job_finished)
        self._job = job
        self._job_keys = {s.key for s in request.renders}
        self._rerequest = False
        self.busy_changed.emit(True)  # the window updates the visible rectangle before the job reads it
        self.runner.start(job)
        self.progress.emit(Progress(0, 0, "Reading…" if request.picture is None else "Starting…"))

    def _start_save(self, request: SaveRequest) -> None:
        if self._closed:
            return
        job = SaveJob(request)
        job.saved.connect(self._on_save_job_saved)
        job.failed.connect(self._on_save_job_failed)
        self.runner.start(job)
        self.info.emit(f"Saving '{request.path.name}'…", 0)

    # ---------------------------------------------------------------------------------------------
    # job signals
    # ---------------------------------------------------------------------------------------------

    @Slot(object, object)
    def _on_job_preview(self, image_id: ImageId, preview: raw.Preview) -> None:
        """A RAW file's own preview stands in for every side until the development is read."""
        if image_id != self.image_id() or (self.current is not None and self.current.image_id == image_id):
            return
        s = self.settings.scale
        base = Pyramid.stand_in(preview.rgb, preview.width * s, preview.height * s)
        self.preview_ready.emit(preview.width * s, preview.height * s)
        for image in self._images.values():
            if image.base is None:
                image.base, image.message = base, ""
                image.progress = RAW_PREVIEW_PROGRESS
        self.views_changed.emit()

    @Slot(object)
    def _on_job_loaded(self, loaded: LoadedImage) -> None:
        self._loaded[loaded.image_id] = loaded
        self._loaded.move_to_end(loaded.image_id)
        while len(self._loaded) > KEEP_LOADED:
            self._loaded.popitem(last=False)
        self.image_loaded.emit(loaded)
        if loaded.image_id == self.image_id():
            self.current = loaded
            self.picture_ready.emit(loaded)
            self._set_placeholders(loaded)
            self.views_changed.emit()
            self.image_shown.emit(str(loaded.path))

    @Slot(object, int, object)
    def _on_job_render_started(self, key: RenderKey, total: int, canvas: Pyramid | None) -> None:
        self._started[key] = time.perf_counter()
        tiled = self._progress_key is not None and self._progress_key in self._job_keys and self._progress_total
        # the bar follows a tiled render to its end: the instant bicubic view started beside it (once its first
        # tiles are on screen) must not turn the bar into a busy indicator that no later count updates
        follow = bool(total) or not tiled
        if follow:
            self._progress_key, self._progress_total = key, total
        image = self._images.get(key)
        if image is not None:
            if canvas is not None:
                image.overlay = canvas
                image.done = QRegion()
                image.progress = f"0/{total} tiles"
            else:
                image.progress = "computing…"
            self.repaint.emit()
        label = image.label if image is not None else "render"
        tip = f"{label}: tiles done of all, percent, time left at the rate so far (the tiles on screen first)"
        if follow:
            self.progress.emit(Progress(0, total, progress_text(0, total, 0.0) if total else f"{label}…", tip))
        self.status_changed.emit()

    @Slot(object, object)
    def _on_job_tiles(self, key: RenderKey, rects: list[tuple[int, int, int, int]]) -> None:
        image = self._images.get(key)
        if image is None or image.overlay is None:
            return
        for rect in rects:
            image.mark_done(*rect)
        self.repaint.emit()

    @Slot(object, int, int)
    def _on_job_render_progress(self, key: RenderKey, done: int, total: int) -> None:
        image = self._images.get(key)
        counted = image is not None and image.pending
        if counted:
            image.progress = f"{done}/{total} tiles"
        if key == self._progress_key and total:
            elapsed = time.perf_counter() - self._started.get(key, time.perf_counter())
            self.progress.emit(Progress(done, total, progress_text(done, total, elapsed)))
        if counted:  # the view's caption counts with the status bar (the tile's own repaint came before)
            self.repaint.emit()
        self.status_changed.emit()

    @Slot(object)
    def _on_job_render_done(self, result: RenderResult) -> None:
        self.cache.put(result)
        if result.info.get("fallback"):  # OpenVINO could not run: said once, in the status bar and the log
            self.info.emit(str(result.info["fallback"]), 0)
        self._job_keys.discard(result.key)
        self._started.pop(result.key, None)
        image = self._images.get(result.key)
        if image is not None:
            self._results[result.key] = result
            image.base, image.overlay, image.pending, image.progress = result.pyramid, None, False, ""
            image.done = QRegion()
            if result.key.method == "bicubic":
                for other in self._images.values():
                    if other.pending:
                        other.base = result.pyramid
        self.repaint.emit()
        self.status_changed.emit()
        if self._pending_save is not None and self._pending_save[0] == result.key:
            _key, r = self._pending_save
            self._pending_save = None
            self._start_save(SaveRequest(r.source, result, r.scale, r.path, r.fmt, r.quality, r.bit_depth))
        if image is not None:
            self.render_finished.emit(result.key)

    @Slot(str)
    def _on_job_notice(self, text: str) -> None:
        self.info.emit(text, 0)

    @Slot(object, str)
    def _on_job_render_failed(self, key: RenderKey, message: str) -> None:
        self._job_keys.discard(key)
        self._started.pop(key, None)
        self.error.emit(message)
        image = self._images.get(key)
        if image is not None:
            image.base, image.overlay, image.pending, image.progress = None, None, False, ""
            image.message = message
            self.repaint.emit()
        if self._pending_save is not None and self._pending_save[0] == key:
            self._pending_save = None
            self.error.emit(f"Not saved: {message}")

    @Slot(str)
    def _on_job_failed(self, message: str) -> None:
        job = self.sender()
        if not isinstance(job, RenderJob):
            return
        path = job.request.path
        self.error.emit(message)
        self.load_failed.emit(path, message)
        if 0 <= self.index < len(self.paths) and self.paths[self.index] == path:
            for image in self._images.values():
                image.base, image.overlay, image.pending, image.progress = None, None, False, ""
                image.message = message
            self._pending_save = None
            self.repaint.emit()

    @Slot()
    def _on_job_finished(self) -> None:
        job = self.sender()
        if job is not self._job or job is None:
            return
        self._job = None
        self._job_keys = set()
        self.busy_changed.emit(False)
        if self._rerequest:
            self._rerequest = False
            self.request()
        else:
            for image in self._images.values():
                if image.pending:
                    image.progress = "cancelled: press F5 to continue"
            self.repaint.emit()
        self.status_changed.emit()

    @Slot(str)
    def _on_save_job_saved(self, path: str) -> None:
        p = Path(path)
        self.info.emit(f"Saved '{p.name}' in {p.parent}", 6000)
        self.saved.emit(path)

    @Slot(str)
    def _on_save_job_failed(self, message: str) -> None:
        self.error.emit(f"Not saved: {message}")
