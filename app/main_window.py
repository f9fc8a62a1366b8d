"""The main window of MLRN Studio: open photos, compare bicubic (or another model) with MLRN, save.

The window owns the state of a session (the open images, which render each side shows, the cache of
finished renders) and wires the widgets to the background jobs of :mod:`app.worker`. Rendering is
driven by one method, :meth:`MainWindow._request_renders`: it works out what the current image,
scale, model, device, tile size and left-hand choice need, shows what the cache already has and starts
(or redirects) one render job for the rest. The job reads the file when needed and makes the renders
in order (bicubic, the MLRN result, the left-hand model), the tiles on screen first; the window paints
each final block as it arrives. Nothing here blocks the event loop on image-sized work.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from pathlib import Path

import torch
from PySide6.QtCore import QByteArray, QFileSystemWatcher, QPointF, QRect, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QImage,
    QKeySequence,
    QPixmap,
    QRegion,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QStackedWidget,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.controls import ControlsPanel, ModelChoice
from app.image_cache import ImageCache, ImageId, RenderKey, RenderResult
from app.pyramid import Pyramid
from app.render import VisibleRegion, device_text
from app.settings import Settings, load_settings, save_settings
from app.status import Banner, DropHint, MessageArea, format_bytes, process_memory_bytes
from app.viewer import ImageView, ViewerImage, ViewState
from app.worker import JobRunner, LoadedImage, RenderJob, RenderRequest, RenderSpec, SaveJob, SaveRequest
from mlrn_core import paths
from mlrn_core.imageio import FORMAT_EXTENSIONS, SUPPORTED_EXTENSIONS, ImageIOError, is_supported, output_format_for
from mlrn_core.registry import ModelError, find_model, list_models, read_model_file
from mlrn_core.tiling import DEFAULT_OVERLAP, DeviceError, pick_device

log = logging.getLogger(__name__)

APP_TITLE = "MLRN Studio"
KEEP_LOADED = 2  # decoded pictures kept for stepping back and forth (renders live in the cache)
MODES = (("side", "Side by side"), ("split", "Split"), ("single", "Single"))
SAVE_FILTERS = {
    "png": "PNG image (*.png)",
    "jpg": "JPEG image (*.jpg *.jpeg)",
    "tiff": "TIFF image (*.tif *.tiff)",
    "webp": "WebP image (*.webp)",
    "bmp": "BMP image (*.bmp)",
}


def _numbered(items: list[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


class MainWindow(QMainWindow):
    """See the module docstring. Signals are for tests and scripts that wait for the window."""

    image_shown = Signal(str)  # path, once its picture is read and on screen
    render_finished = Signal(object)  # RenderKey of a render that is now complete on screen
    saved = Signal(str)  # path written

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or load_settings()
        self.cache = ImageCache(self.settings.cache_mb * 2**20)
        self.runner = JobRunner(self)
        self.view_state = ViewState(self)
        self.visible = VisibleRegion()
        self.paths: list[Path] = []
        self.index = -1
        self.current: LoadedImage | None = None
        self.mode = self.settings.compare_mode
        self.flipped = False
        self._loaded: OrderedDict[ImageId, LoadedImage] = OrderedDict()
        self._extra_models: list[ModelChoice] = []
        self._images: dict[RenderKey, ViewerImage] = {}
        self._results: dict[RenderKey, RenderResult] = {}  # what is on screen, even if the cache let it go
        self._sides: dict[str, RenderKey | None] = {"left": None, "right": None}
        self._no_model = ViewerImage("MLRN")
        self._job: RenderJob | None = None
        self._job_keys: set[RenderKey] = set()
        self._rerequest = False
        self._progress_key: RenderKey | None = None
        self._started: dict[RenderKey, float] = {}
        self._pending_save: tuple[RenderKey, SaveRequest] | None = None
        self._batch_dialog: QWidget | None = None
        self._wizard: QWidget | None = None

        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_status_bar()
        self._restore_window()

        self.panel.set_values(
            self.settings.scale,
            self.settings.device,
            self.settings.tile,
            self.settings.export_format,
            self.settings.quality,
            self.settings.keep_16bit,
        )
        self._refresh_models(selected=self.settings.model or None)
        self._apply_mode(self.mode)
        self._update_recent()
        self._update_export_state()
        self._update_status()

        self._watcher = QFileSystemWatcher(self)
        for folder in (paths.builtin_models_dir(), paths.user_models_dir()):
            if folder.is_dir():
                self._watcher.addPath(str(folder))
        self._watch_timer = QTimer(self, singleShot=True, interval=400)
        self._watch_timer.timeout.connect(self._on_watch_timer_timeout)
        self._watcher.directoryChanged.connect(self._on_watcher_directory_changed)
        self._memory_timer = QTimer(self, interval=2000)
        self._memory_timer.timeout.connect(self._update_memory)
        self._memory_timer.start()
        self._update_memory()

    # ---------------------------------------------------------------------------------------------
    # construction
    # ---------------------------------------------------------------------------------------------

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work whichever widget has the focus
        return action

    def _build_actions(self) -> None:
        style = self.style()
        self.open_action = self._action(
            "&Open…", self._on_open_action_triggered, QKeySequence.StandardKey.Open, "Open one or more photos"
        )
        self.open_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
        self.save_action = self._action(
            "&Save Result…",
            self._on_save_action_triggered,
            QKeySequence.StandardKey.Save,
            "Save the MLRN result (the original is never overwritten)",
        )
        self.save_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton))
        self.batch_action = self._action(
            "&Batch Export…", self._on_batch_action_triggered, "Ctrl+B", "Upscale many photos or a whole folder"
        )
        self.open_model_action = self._action(
            "Open &Model File…",
            self._on_open_model_action_triggered,
            "Ctrl+M",
            "Use a model file (.pt) you trained or were given",
        )
        self.train_action = self._action(
            "&Train on My Photos…",
            self._on_train_action_triggered,
            "Ctrl+T",
            "Fine-tune a model on your own photos and see whether it beats the base on a hold-out",
        )
        self.models_action = self._action(
            "Manage &Models…", self._on_models_action_triggered, None, "Rename, delete, import or export your models"
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.mode_group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for mode, text in MODES:
            action = self._action(
                text,
                functools.partial(self._apply_mode, mode),
                checkable=True,
                tip={
                    "side": "Bicubic (A) and MLRN (B) next to each other",
                    "split": "One view with a divider to drag between A and B",
                    "single": "One image; flip between A and B in place",
                }[mode],
            )
            self.mode_group.addAction(action)
            self.mode_actions[mode] = action
        self.cycle_mode_action = self._action("Next Compare Mode", self._on_cycle_mode_action_triggered, "M")
        self.flip_action = self._action(
            "&Flip A/B",
            self._on_flip_action_triggered,
            ["\\", "X"],
            "Swap A and B in place (\\ or X) to see what changed",
        )
        self.fit_action = self._action("Fit", self.view_state.set_fit, "Ctrl+0", "Fit the image in the view")
        self.zoom_actions = [
            self._action(
                f"{pct}%",
                functools.partial(self.set_zoom_percent, pct),
                f"Ctrl+{pct // 100}",
                f"{pct}%: one output pixel is {pct // 100}x{pct // 100} screen pixels"
                + (" (nearest-neighbour, to judge pixels)" if pct > 100 else ""),
            )
            for pct in (100, 200, 400)
        ]
        self.zoom_in_action = self._action(
            "Zoom In", functools.partial(self._zoom_step, 1.5), [QKeySequence.StandardKey.ZoomIn, "Ctrl+="]
        )
        self.zoom_out_action = self._action(
            "Zoom Out", functools.partial(self._zoom_step, 1 / 1.5), QKeySequence.StandardKey.ZoomOut
        )
        self.next_action = self._action("Next Image", functools.partial(self._step_image, 1), "PgDown")
        self.prev_action = self._action("Previous Image", functools.partial(self._step_image, -1), "PgUp")
        self.render_action = self._action(
            "&Upscale", self._request_renders, "F5", "Upscale again / continue after a cancel"
        )
        self.cancel_action = self._action(
            "Cancel", self._on_cancel_action_triggered, "Esc", "Stop the upscale (after the current tile)"
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.save_action)
        file_menu.addSeparator()
        file_menu.addAction(self.batch_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&View")
        for action in self.mode_actions.values():
            view_menu.addAction(action)
        view_menu.addAction(self.cycle_mode_action)
        view_menu.addAction(self.flip_action)
        view_menu.addSeparator()
        view_menu.addAction(self.fit_action)
        for action in self.zoom_actions:
            view_menu.addAction(action)
        view_menu.addAction(self.zoom_in_action)
        view_menu.addAction(self.zoom_out_action)
        view_menu.addSeparator()
        view_menu.addAction(self.prev_action)
        view_menu.addAction(self.next_action)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self.open_model_action)
        model_menu.addAction(self.render_action)
        model_menu.addAction(self.cancel_action)
        model_menu.addSeparator()
        model_menu.addAction(self.train_action)
        model_menu.addAction(self.models_action)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.open_action)
        tb.addAction(self.save_action)
        tb.addSeparator()
        for action in self.mode_actions.values():
            tb.addAction(action)
        tb.addAction(self.flip_action)
        tb.addSeparator()
        tb.addAction(self.fit_action)
        for action in self.zoom_actions:
            tb.addAction(action)
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("Zoom 3200%") + 12)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.zoom_label.setToolTip("Wheel to zoom, drag to pan; both views move together. Double-click: fit / 100%")
        tb.addWidget(self.zoom_label)

    def _build_central(self) -> None:
        central = QWidget()
        outer = QHBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        column = QWidget()
        col = QVBoxLayout(column)
        col.setContentsMargins(6, 6, 6, 6)
        col.setSpacing(6)
        self.banner = Banner("Open model file…")
        self.banner.action_clicked.connect(self._on_open_model_action_triggered)
        self.banner.hide()
        col.addWidget(self.banner)
        self.stack = QStackedWidget()
        self.drop_hint = DropHint()
        self.drop_hint.open_clicked.connect(self._on_open_action_triggered)
        self.drop_hint.recent_clicked.connect(self._on_drop_hint_recent_clicked)
        self.stack.addWidget(self.drop_hint)
        compare = QWidget()
        cmp_layout = QHBoxLayout(compare)
        cmp_layout.setContentsMargins(0, 0, 0, 0)
        cmp_layout.setSpacing(4)
        self.view_a = ImageView(self.view_state)
        self.view_b = ImageView(self.view_state)
        cmp_layout.addWidget(self.view_a, 1)
        cmp_layout.addWidget(self.view_b, 1)
        self.stack.addWidget(compare)
        col.addWidget(self.stack, 1)
        outer.addWidget(column, 1)

        self.panel = ControlsPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFixedWidth(max(300, self.panel.sizeHint().width() + 16))
        outer.addWidget(scroll)
        self.setCentralWidget(central)

        self.panel.scale_changed.connect(self._on_panel_scale_changed)
        self.panel.model_changed.connect(self._on_panel_model_changed)
        self.panel.open_model_requested.connect(self._on_open_model_action_triggered)
        self.panel.device_changed.connect(self._on_panel_device_changed)
        self.panel.tile_changed.connect(self._on_panel_tile_changed)
        self.panel.left_changed.connect(self._on_panel_left_changed)
        self.panel.export_changed.connect(self._on_panel_export_changed)
        self.panel.save_requested.connect(self._on_save_action_triggered)
        self.panel.image_selected.connect(self._on_panel_image_selected)
        self.view_state.changed.connect(self._on_view_state_changed)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.messages = MessageArea()
        bar.addWidget(self.messages, 1)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(150)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setDefaultAction(self.cancel_action)
        self.cancel_button.hide()
        self.size_label = QLabel()
        self.time_label = QLabel()
        self.device_label = QLabel()
        self.memory_label = QLabel()
        for w in (
            self.progress,
            self.cancel_button,
            self.size_label,
            self.time_label,
            self.device_label,
            self.memory_label,
        ):
            bar.addPermanentWidget(w)

    def _restore_window(self) -> None:
        geometry = QByteArray.fromBase64(self.settings.geometry.encode("ascii")) if self.settings.geometry else None
        if geometry is None or not self.restoreGeometry(geometry):
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry() if screen is not None else QRect(0, 0, 1600, 1000)
            w, h = min(1480, int(avail.width() * 0.9)), min(920, int(avail.height() * 0.9))
            self.resize(w, h)
            self.move(avail.center().x() - w // 2, avail.center().y() - h // 2)

    # ---------------------------------------------------------------------------------------------
    # opening
    # ---------------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        urls = event.mimeData().urls()
        local = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
        if not local:
            self.messages.show_error("Only local files can be opened (the drop held no file paths)")
            return
        event.acceptProposedAction()
        self.open_paths(local)

    def open_paths(self, items: list[str | Path]) -> None:
        """Open files (several make a list to step through) and offer batch export for folders."""
        files: list[Path] = []
        folders: list[Path] = []
        rejected: list[str] = []
        for item in items:
            p = Path(item).expanduser()
            if p.is_dir():
                folders.append(p)
            elif not p.exists():
                rejected.append(f"'{p.name}' does not exist")
            elif is_supported(p):
                files.append(p.absolute())
            else:
                kinds = ", ".join(sorted(e.lstrip(".").upper() for e in SUPPORTED_EXTENSIONS))
                rejected.append(f"'{p.name}' is not a supported image type (use {kinds})")
        if rejected:
            self.messages.show_error("Cannot open " + _numbered(rejected))
        for folder in folders:
            if self.open_batch_export([folder]) or files:
                continue
            # no batch dialog in this build: step through the folder's images instead
            files = sorted(p.absolute() for p in folder.iterdir() if p.is_file() and is_supported(p))
            if not files:
                self.messages.show_error(f"Folder '{folder.name}' has no supported images")
        if files:
            self.paths = files
            self.panel.set_images(files, 0)
            self._show_index(0)

    def _show_index(self, index: int) -> None:
        if not 0 <= index < len(self.paths):
            return
        self.index = index
        path = self.paths[index]
        self.panel.set_current_image(index)
        self.settings.add_recent(path)
        self._update_recent()
        self.setWindowTitle(f"{path.name} — {APP_TITLE}")
        self.stack.setCurrentIndex(1)
        loaded = self._loaded.get(ImageId.of(path))
        self.current = loaded
        if loaded is not None:
            self._loaded.move_to_end(loaded.image_id)
            self._on_picture_ready(loaded)
        self._request_renders()

    def _step_image(self, delta: int) -> None:
        if self.paths:
            self._show_index((self.index + delta) % len(self.paths))

    def open_batch_export(self, inputs: list[Path] | None = None) -> bool:
        """Open the batch export dialog (lazily imported); False with a message when it is unavailable."""
        try:
            from app.batch_dialog import BatchExportDialog
        except Exception as exc:  # noqa: BLE001 - a missing or broken optional dialog must not take the app down
            log.warning("batch export unavailable: %s", exc)
            self.messages.show_error(f"Batch export is not available in this build ({exc})")
            return False
        model = self.panel.model
        try:
            dialog = BatchExportDialog(
                inputs=inputs, parent=self, scale=self.panel.scale, model=model.spec if model else None
            )
        except Exception as exc:  # noqa: BLE001
            log.exception("batch export dialog failed")
            self.messages.show_error(f"Could not open batch export: {exc}")
            return False
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._batch_dialog = dialog
        dialog.destroyed.connect(self._on_batch_dialog_destroyed)
        dialog.show()
        return True

    # ---------------------------------------------------------------------------------------------
    # what to render
    # ---------------------------------------------------------------------------------------------

    def _image_id(self) -> ImageId | None:
        return ImageId.of(self.paths[self.index]) if 0 <= self.index < len(self.paths) else None

    def _device(self) -> torch.device:
        try:
            return pick_device(self.panel.device)
        except DeviceError as exc:
            self.messages.show_error(f"{exc}; using the CPU")
            return torch.device("cpu")

    def _model_spec(self, image_id: ImageId, choice: ModelChoice) -> RenderSpec:
        try:
            mtime = choice.path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        key = RenderKey(
            image_id,
            f"model:{choice.path.resolve()}@{mtime}",
            self.panel.scale,
            self.panel.tile,
            DEFAULT_OVERLAP,
            self._device().type,
        )
        name = choice.path.stem if choice.kind == "file" else choice.spec
        return RenderSpec(key, "model", f"MLRN {name}", str(choice.path))

    def _plain_spec(self, image_id: ImageId, method: str) -> RenderSpec:
        label = "Bicubic" if method == "bicubic" else "Original pixels"
        return RenderSpec(RenderKey(image_id, method, self.panel.scale), method, label)

    def _request_renders(self) -> None:
        """Show what the cache has for the current settings and start one job for what is missing."""
        image_id = self._image_id()
        if image_id is None:
            return
        scale = self.panel.scale
        bicubic = self._plain_spec(image_id, "bicubic")
        model = self.panel.model
        right = self._model_spec(image_id, model) if model is not None else None
        left_choice = self.panel.left_choice()
        if left_choice is not None:
            left = self._model_spec(image_id, left_choice)
        else:
            left = self._plain_spec(image_id, self.panel.left)
        specs: list[RenderSpec] = []
        for spec in (bicubic, right, left):
            if spec is not None and all(spec.key != s.key for s in specs):
                specs.append(spec)
        self._sides = {"left": left.key, "right": right.key if right is not None else None}
        loaded = self.current if self.current is not None and self.current.image_id == image_id else None

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
        self._no_model.message = (
            f"No MLRN model for ×{scale}.\nThe banner above says how to get one; the left view shows bicubic."
        )
        if loaded is not None:
            self._set_placeholders(loaded)
        else:
            name = self.paths[self.index].name
            for image in self._images.values():
                if image.base is None:
                    image.message = f"Reading {name}…"
        self._apply_layout()
        self._update_banner()
        self._update_status()

        needed = [s for s in specs if s.key not in results]
        if self._pending_save is not None and self._pending_save[0] not in {s.key for s in specs}:
            self.messages.show_info(f"Not saved: '{self._pending_save[1].path.name}' was for another image or setting")
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
        request = RenderRequest(
            path=self.paths[self.index],
            image_id=image_id,
            scale=scale,
            renders=tuple(needed),
            tile=self.panel.tile,
            picture=loaded.picture if loaded is not None else None,
            lr=loaded.lr if loaded is not None else None,
            visible=self.visible,
        )
        self._start_render_job(request)

    def _set_placeholders(self, loaded: LoadedImage) -> None:
        """Pending renders show the bicubic result (or the input itself) dimmed until their tiles arrive."""
        bicubic = self._results.get(RenderKey(loaded.image_id, "bicubic", self.panel.scale))
        lr = Pyramid(loaded.lr.levels, unit=self.panel.scale)
        for image in self._images.values():
            if image.pending:
                image.base = bicubic.pyramid if bicubic is not None else lr
                image.message = ""

    def _start_render_job(self, request: RenderRequest) -> None:
        job = RenderJob(request)
        job.loaded.connect(self._on_job_loaded)
        job.render_started.connect(self._on_job_render_started)
        job.tiles.connect(self._on_job_tiles)
        job.render_progress.connect(self._on_job_render_progress)
        job.render_done.connect(self._on_job_render_done)
        job.render_failed.connect(self._on_job_render_failed)
        # @Slot-decorated bound methods (not lambdas or partials): Qt queues these calls to the GUI thread,
        # and PySide needs the decoration to pass Python objects across threads safely
        job.failed.connect(self._on_job_failed)
        job.finished.connect(self._on_job_finished)
        self._job = job
        self._job_keys = {s.key for s in request.renders}
        self._rerequest = False
        self._update_visible()
        self.runner.start(job)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Reading…" if request.picture is None else "Starting…")
        self.progress.show()
        self.cancel_button.show()

    # ---------------------------------------------------------------------------------------------
    # job signals
    # ---------------------------------------------------------------------------------------------

    @Slot(object)
    def _on_job_loaded(self, loaded: LoadedImage) -> None:
        self._loaded[loaded.image_id] = loaded
        self._loaded.move_to_end(loaded.image_id)
        while len(self._loaded) > KEEP_LOADED:
            self._loaded.popitem(last=False)
        row = next((i for i, p in enumerate(self.paths) if ImageId.of(p) == loaded.image_id), -1)
        if row >= 0:
            thumb = loaded.thumbnail
            qimage = QImage(
                thumb.data, thumb.shape[1], thumb.shape[0], 3 * thumb.shape[1], QImage.Format.Format_RGB888
            ).copy()
            pic = loaded.picture
            tip = f"{loaded.path}\n{pic.width}×{pic.height}, {pic.bit_depth}-bit {pic.source_format.upper()}"
            self.panel.set_image_icon(row, QIcon(QPixmap.fromImage(qimage)), tip)
        if loaded.image_id == self._image_id():
            self.current = loaded
            self._on_picture_ready(loaded)
            self._set_placeholders(loaded)
            self._apply_layout()
            self.image_shown.emit(str(loaded.path))

    def _on_picture_ready(self, loaded: LoadedImage) -> None:
        s = self.panel.scale
        self.view_state.set_image_size(loaded.picture.width * s, loaded.picture.height * s)
        self._update_export_state()
        self._update_status()
        self._update_visible()

    @Slot(object, int, object)
    def _on_job_render_started(self, key: RenderKey, total: int, canvas: Pyramid | None) -> None:
        self._started[key] = time.perf_counter()
        self._progress_key = key
        image = self._images.get(key)
        if image is not None:
            if canvas is not None:
                image.overlay = canvas
                image.done = QRegion()
                image.progress = f"0/{total} tiles"
            else:
                image.progress = "computing…"
            self._repaint_views()
        label = image.label if image is not None else "render"
        self.progress.setToolTip(f"{label}: tiles done / all tiles (the ones on screen first)")
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(0)
            self.progress.setFormat("%v/%m tiles")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"{label}…")
        self._update_status()

    @Slot(object, object)
    def _on_job_tiles(self, key: RenderKey, rects: list[tuple[int, int, int, int]]) -> None:
        image = self._images.get(key)
        if image is None or image.overlay is None:
            return
        for rect in rects:
            image.mark_done(*rect)
        self._repaint_views()

    @Slot(object, int, int)
    def _on_job_render_progress(self, key: RenderKey, done: int, total: int) -> None:
        image = self._images.get(key)
        if image is not None and image.pending:
            image.progress = f"{done}/{total} tiles"
        if key == self._progress_key and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self._update_status()

    @Slot(object)
    def _on_job_render_done(self, result: RenderResult) -> None:
        self.cache.put(result)
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
        self._repaint_views()
        self._update_status()
        if self._pending_save is not None and self._pending_save[0] == result.key:
            key, request = self._pending_save
            self._pending_save = None
            self._start_save(
                SaveRequest(
                    request.source, result, request.scale, request.path, request.fmt, request.quality, request.bit_depth
                )
            )
        if image is not None:
            self.render_finished.emit(result.key)

    @Slot(object, str)
    def _on_job_render_failed(self, key: RenderKey, message: str) -> None:
        self._job_keys.discard(key)
        self._started.pop(key, None)
        self.messages.show_error(message)
        image = self._images.get(key)
        if image is not None:
            image.base, image.overlay, image.pending, image.progress = None, None, False, ""
            image.message = message
            self._repaint_views()
        if self._pending_save is not None and self._pending_save[0] == key:
            self._pending_save = None
            self.messages.show_error(f"Not saved: {message}")

    @Slot(str)
    def _on_job_failed(self, message: str) -> None:
        job = self.sender()
        if not isinstance(job, RenderJob):
            return
        path = job.request.path
        self.messages.show_error(message)
        row = next((i for i, p in enumerate(self.paths) if p == path), -1)
        if row >= 0:
            warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            self.panel.set_image_icon(row, warn, f"{path}\n{message}")
        if row == self.index:
            for image in self._images.values():
                image.base, image.overlay, image.pending, image.progress = None, None, False, ""
                image.message = message
            self._pending_save = None
            self._repaint_views()

    @Slot()
    def _on_job_finished(self) -> None:
        job = self.sender()
        if job is not self._job or job is None:
            return
        self._job = None
        self._job_keys = set()
        self.progress.hide()
        self.cancel_button.hide()
        if self._rerequest:
            self._rerequest = False
            self._request_renders()
        else:
            for image in self._images.values():
                if image.pending:
                    image.progress = "cancelled: press F5 to continue"
            self._repaint_views()
        self._update_status()

    def _on_cancel_action_triggered(self) -> None:
        if self._job is None:
            return
        self._job.stop()
        self._rerequest = False
        if self._pending_save is not None:
            self._pending_save = None
            self.messages.show_info("Upscale cancelled; the result was not saved")
        else:
            self.messages.show_info("Upscale cancelled. Press F5 (Model › Upscale) to continue.")

    def cancel(self) -> None:
        """Stop the running upscale after its current tile."""
        self._on_cancel_action_triggered()

    @property
    def busy(self) -> bool:
        return self._job is not None

    # ---------------------------------------------------------------------------------------------
    # views
    # ---------------------------------------------------------------------------------------------

    @property
    def left_image(self) -> ViewerImage | None:
        return self._images.get(self._sides["left"]) if self._sides["left"] is not None else None

    @property
    def right_image(self) -> ViewerImage:
        key = self._sides["right"]
        image = self._images.get(key) if key is not None else None
        return image if image is not None else self._no_model

    def _apply_mode(self, mode: str) -> None:
        self.mode = mode if mode in self.mode_actions else "side"
        self.settings.compare_mode = self.mode
        self.mode_actions[self.mode].setChecked(True)
        self._apply_layout()

    def _on_cycle_mode_action_triggered(self) -> None:
        order = [m for m, _t in MODES]
        self._apply_mode(order[(order.index(self.mode) + 1) % len(order)])

    def _on_flip_action_triggered(self) -> None:
        self.flipped = not self.flipped
        self._apply_layout()

    def _apply_layout(self) -> None:
        a: tuple[ViewerImage | None, str] = (self.left_image, "A")
        b: tuple[ViewerImage | None, str] = (self.right_image, "B")
        if self.flipped:
            a, b = b, a
        if self.mode == "side":
            self.view_a.set_images(a[0], tags=(a[1], ""))
            self.view_b.set_images(b[0], tags=(b[1], ""))
            self.view_b.show()
        elif self.mode == "split":
            self.view_a.set_images(a[0], b[0], tags=(a[1], b[1]))
            self.view_b.hide()
        else:
            self.view_a.set_images(b[0], tags=(b[1], ""))
            self.view_b.hide()
        self.flip_action.setText("&Flip A/B (showing A)" if self.mode == "single" and self.flipped else "&Flip A/B")
        self._update_visible()

    def _repaint_views(self) -> None:
        self.view_a.update()
        if self.view_b.isVisible():
            self.view_b.update()

    def _primary_view(self) -> ImageView:
        return self.view_b if self.mode == "side" else self.view_a

    def set_zoom_percent(self, percent: float) -> None:
        """Zoom about the centre of the view: 100 = one output pixel per screen pixel."""
        view = self._primary_view()
        dpr = view.devicePixelRatioF() or 1.0
        self.view_state.set_zoom(percent / 100.0 / dpr, QPointF(view.width() / 2, view.height() / 2), view.size())

    def _zoom_step(self, factor: float) -> None:
        view = self._primary_view()
        self.view_state.zoom_by(factor, QPointF(view.width() / 2, view.height() / 2), view.size())

    def _on_view_state_changed(self) -> None:
        self._update_visible()
        dpr = self._primary_view().devicePixelRatioF() or 1.0
        text = "Fit" if self.view_state.fit else "Zoom"
        self.zoom_label.setText(f"{text} {self.view_state.zoom * dpr * 100:.0f}%")

    def _update_visible(self) -> None:
        """Tell the worker which LR rectangle is on screen, so those tiles go first."""
        rect = self.view_state.visible_rect(self._primary_view().size())
        s = self.panel.scale
        self.visible.set(None if rect is None else tuple(v / s for v in rect))

    # ---------------------------------------------------------------------------------------------
    # models and settings
    # ---------------------------------------------------------------------------------------------

    def _model_choices(self, scale: int) -> list[ModelChoice]:
        choices = [ModelChoice.from_entry(e) for e in list_models(scale)]
        known = {c.path.resolve() for c in choices}
        choices += [c for c in self._extra_models if c.scale == scale and c.path.resolve() not in known]
        return choices

    def _refresh_models(self, selected: str | None = None) -> None:
        current = self.panel.model
        keep = selected if selected is not None else (current.spec if current is not None else None)
        choices = self._model_choices(self.panel.scale)
        self.panel.set_models(choices, keep, self.settings.left)
        self._update_banner()

    def _update_banner(self) -> None:
        s = self.panel.scale
        if self.panel.model is None:
            self.banner.set_text(
                f"<b>No MLRN weights for ×{s} yet</b> — showing bicubic only. Train a model "
                f"(<code>mlrn train</code>) or open a model file; ×{s} weights that ship later "
                f"(mlrn-x{s}.pt) are picked up automatically."
            )
            self.banner.show()
        else:
            self.banner.hide()

    def _on_watcher_directory_changed(self, _path: str) -> None:
        self._watch_timer.start()

    def _on_watch_timer_timeout(self) -> None:
        before = self.panel.model
        self._refresh_models()
        after = self.panel.model
        if (before.path if before else None) != (after.path if after else None):
            if after is not None and before is None:
                self.messages.show_info(f"Model '{after.spec}' is available now")
            self._request_renders()

    def add_model_file(self, path: str | Path) -> bool:
        """Offer a model file in the model list (switching the scale to the file's) and select it."""
        path = Path(path)
        try:
            mf = read_model_file(path)
        except ModelError as exc:
            self.messages.show_error(str(exc))
            return False
        choice = ModelChoice.from_file(path.absolute(), mf.scale)
        self._extra_models = [c for c in self._extra_models if c.path != choice.path] + [choice]
        if mf.scale != self.panel.scale:
            self.messages.show_info(f"'{path.name}' upscales ×{mf.scale}: switched the scale to ×{mf.scale}")
        self._select_model(choice.spec, mf.scale)
        return True

    def _select_model(self, spec: str, scale: int) -> None:
        """Make ``spec`` the current model, switching the scale to ``scale`` first if needed, and re-render."""
        if scale != self.panel.scale:
            self.panel.set_values(
                scale,
                self.panel.device,
                self.panel.tile,
                self.panel.export_format,
                self.panel.quality_spin.value(),
                self.panel.keep16_check.isChecked(),
            )
            self.settings.scale = scale
        self._refresh_models(selected=spec)
        self.settings.model = spec
        self._request_renders()

    def _on_open_model_action_triggered(self) -> None:
        folder = self.settings.last_folder or str(paths.user_models_dir())
        name, _filter = QFileDialog.getOpenFileName(
            self, "Open model file", folder, "MLRN models (*.pt);;All files (*)"
        )
        if name:
            self.add_model_file(name)

    def _on_panel_scale_changed(self, scale: int) -> None:
        self.settings.scale = scale
        self._refresh_models()
        if self.current is not None:
            self._on_picture_ready(self.current)  # output size first, so the visible rectangle is right
        self._request_renders()

    def _on_panel_model_changed(self, choice: ModelChoice | None) -> None:
        self.settings.model = choice.spec if choice is not None else ""
        self._update_banner()
        self._request_renders()

    def _on_panel_device_changed(self, device: str) -> None:
        self.settings.device = device
        self._request_renders()

    def _on_panel_tile_changed(self, tile: int) -> None:
        self.settings.tile = tile
        self._request_renders()

    def _on_panel_left_changed(self, left: str) -> None:
        self.settings.left = left
        self._request_renders()

    def _on_panel_export_changed(self) -> None:
        self.settings.export_format = self.panel.export_format
        self.settings.quality = self.panel.quality_spin.value()
        self.settings.keep_16bit = self.panel.keep16_check.isChecked()
        self._update_export_state()

    def _on_panel_image_selected(self, row: int) -> None:
        self._show_index(row)

    def _export_format(self) -> str:
        fmt = self.panel.export_format
        if fmt == "same":
            return self.current.picture.source_format if self.current is not None else "png"
        return fmt

    def _update_export_state(self) -> None:
        fmt = self._export_format()
        sixteen = self.current is not None and self.current.picture.bit_depth == 16
        self.panel.set_export_state(fmt in ("jpg", "webp"), sixteen and fmt in ("png", "tiff"))

    # ---------------------------------------------------------------------------------------------
    # saving
    # ---------------------------------------------------------------------------------------------

    def _on_save_action_triggered(self) -> None:
        self.save_result()

    def _default_save_path(self) -> Path:
        assert self.current is not None  # callers check
        src = self.current.path
        folder = Path(self.settings.last_folder) if self.settings.last_folder else src.parent
        if not folder.is_dir():
            folder = src.parent
        ext = FORMAT_EXTENSIONS.get(self._export_format(), ".png")
        return folder / f"{src.stem}_mlrn_x{self.panel.scale}{ext}"

    def save_result(self, path: str | Path | None = None) -> bool:
        """Save the MLRN result; asks for a file name when ``path`` is None. Waits for missing tiles."""
        if self.current is None:
            self.messages.show_error("Nothing to save yet: open a photo first")
            return False
        key = self._sides["right"]
        if key is None:
            self.messages.show_error(
                f"Nothing to save: there is no MLRN model for ×{self.panel.scale} (open a model file first)"
            )
            return False
        if path is None:
            default = self._default_save_path()
            fmt = self._export_format()
            filters = ";;".join(SAVE_FILTERS.values())
            name, _filter = QFileDialog.getSaveFileName(
                self, "Save result", str(default), filters, SAVE_FILTERS.get(fmt, SAVE_FILTERS["png"])
            )
            if not name:
                return False
            path = name
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(FORMAT_EXTENSIONS.get(self._export_format(), ".png"))
        try:
            fmt = output_format_for(target)
        except ImageIOError as exc:
            self.messages.show_error(str(exc))
            return False
        source = self.current.picture
        if _same_file(self.current.path, target):
            self.messages.show_error(
                f"Not saved: '{target.name}' is the original photo; choose another name (originals are never "
                "overwritten)"
            )
            return False
        quality = self.panel.quality_spin.value() if fmt in ("jpg", "webp") else None
        keep16 = self.panel.keep16_check.isChecked() and source.bit_depth == 16 and fmt in ("png", "tiff")
        result = self._results.get(key) or self.cache.get(key)
        request = SaveRequest(source, result, key.scale, target, None, quality, 16 if keep16 else 8)
        if result is None:
            self._pending_save = (key, request)
            image = self._images.get(key)
            progress = f" ({image.progress})" if image is not None and image.progress else ""
            self.messages.show_info(f"Will save '{target.name}' when the upscale has finished{progress}", 0)
            if self._job is None or key not in self._job_keys:
                self._request_renders()
            return True
        self._start_save(request)
        return True

    def _start_save(self, request: SaveRequest) -> None:
        job = SaveJob(request)
        job.saved.connect(self._on_save_job_saved)
        job.failed.connect(self._on_save_job_failed)
        self.runner.start(job)
        self.messages.show_info(f"Saving '{request.path.name}'…", 0)

    @Slot(str)
    def _on_save_job_saved(self, path: str) -> None:
        p = Path(path)
        self.settings.last_folder = str(p.parent)
        self.messages.show_info(f"Saved '{p.name}' in {p.parent}")
        self.saved.emit(path)

    @Slot(str)
    def _on_save_job_failed(self, message: str) -> None:
        self.messages.show_error(f"Not saved: {message}")

    # ---------------------------------------------------------------------------------------------
    # status, recent files, settings
    # ---------------------------------------------------------------------------------------------

    def _update_status(self) -> None:
        pic = self.current.picture if self.current is not None else None
        s = self.panel.scale
        if pic is not None:
            self.size_label.setText(f"{pic.width}×{pic.height} → {pic.width * s}×{pic.height * s}")
            self.size_label.setToolTip(
                f"Input {pic.width}×{pic.height} px, {pic.bit_depth}-bit {pic.source_format.upper()}; "
                f"output ×{s}: {pic.width * s}×{pic.height * s} px"
            )
        else:
            self.size_label.setText("")
        key = self._sides["right"]
        result = self._results.get(key) if key is not None else None
        if result is not None:
            self.time_label.setText(f"MLRN {result.seconds:.1f} s")
        elif key is not None and key in self._started:
            self.time_label.setText(f"MLRN {time.perf_counter() - self._started[key]:.0f} s…")
        else:
            self.time_label.setText("")
        device = self._device()
        self.device_label.setText(device_text(device))
        self.device_label.setToolTip("Where the network runs (Device in the side panel)")

    def _update_memory(self) -> None:
        rss = process_memory_bytes()
        parts = []
        if rss is not None:
            parts.append(f"RAM {format_bytes(rss)}")
        if torch.cuda.is_available():
            parts.append(f"GPU {format_bytes(torch.cuda.memory_allocated())}")
        parts.append(f"cache {format_bytes(self.cache.nbytes)}")
        self.memory_label.setText(" · ".join(parts))
        self.memory_label.setToolTip(
            f"Finished renders kept for instant flipping back: {len(self.cache)}, "
            f"up to {format_bytes(self.cache.budget_bytes)}"
        )
        if self._job is not None:
            self._update_status()

    def _update_recent(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files
        for f in files:
            action = self.recent_menu.addAction(Path(f).name)
            action.setToolTip(f)
            action.setStatusTip(f)
            action.triggered.connect(functools.partial(self.open_paths, [f]))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent", self._on_clear_recent_triggered)
        self.recent_menu.setEnabled(bool(files))
        self.drop_hint.set_recent(files)

    def _on_clear_recent_triggered(self) -> None:
        self.settings.recent_files = []
        self._update_recent()

    def _on_drop_hint_recent_clicked(self, path: str) -> None:
        self.open_paths([path])

    def _on_open_action_triggered(self) -> None:
        folder = self.settings.last_folder or str(Path.home())
        patterns = " ".join(f"*{e}" for e in sorted(SUPPORTED_EXTENSIONS))
        names, _filter = QFileDialog.getOpenFileNames(
            self, "Open images", folder, f"Images ({patterns});;All files (*)"
        )
        if names:
            self.settings.last_folder = str(Path(names[0]).parent)
            self.open_paths(names)

    def _on_batch_action_triggered(self) -> None:
        self.open_batch_export(list(self.paths) or None)

    def _on_batch_dialog_destroyed(self, *_args) -> None:
        self._batch_dialog = None

    def _on_train_action_triggered(self) -> None:
        if self._wizard is not None:
            self._wizard.raise_()
            self._wizard.activateWindow()
            return
        from app.wizard import TrainingWizard

        current = self.panel.model
        wizard = TrainingWizard(self, scale=self.panel.scale, base_model=current.spec if current else None)
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        wizard.modelSaved.connect(self._on_wizard_model_saved)
        wizard.destroyed.connect(self._on_wizard_destroyed)
        self._wizard = wizard
        wizard.show()

    @Slot(str)
    def _on_wizard_model_saved(self, name: str) -> None:
        """Make the freshly fine-tuned user model the current one (switching the scale if needed)."""
        entry = find_model(name)
        if entry is None:
            self.messages.show_error(f"The saved model '{name}' could not be found in the models folder")
            return
        self._select_model(entry.name, entry.scale)
        self.messages.show_info(f"Now using your model '{entry.name}'")

    def _on_wizard_destroyed(self, *_args) -> None:
        self._wizard = None

    def _on_models_action_triggered(self) -> None:
        from app.models_dialog import ModelsDialog

        current = self.panel.model
        dialog = ModelsDialog(self, select=current.spec if current else None)
        dialog.modelsChanged.connect(self._on_models_dialog_models_changed)
        dialog.exec()
        dialog.deleteLater()

    def _on_models_dialog_models_changed(self) -> None:
        self._refresh_models()
        self._request_renders()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.settings.geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        self.settings.compare_mode = self.mode
        save_settings(self.settings)
        self._memory_timer.stop()
        if self._batch_dialog is not None:
            self._batch_dialog.close()
        if self._wizard is not None:
            self._wizard.shutdown()  # stops a training run with a checkpoint and waits for its thread
        self.hide()
        # renders stop after their current tile; saves are left to finish (they write atomically)
        self.runner.stop_all(wait=True, keep=(SaveJob,))
        self._job = None
        event.accept()


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return b.exists() and a.samefile(b)
    except OSError:
        return False
