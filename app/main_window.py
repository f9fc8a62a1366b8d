"""The main window of MLRN Studio: open photos, compare bicubic (or another model) with MLRN, save.

The window builds the widgets and turns what the user does into calls on its
:class:`app.session.RenderSession`, which owns the open images, what each side shows, the cache of
finished renders and the background jobs; the window lays out and repaints the views when the session
says so. :meth:`MainWindow._request_renders` hands the panel's current choices (scale, model, left side,
tile, device) to the session; the save dialog and its name and format rules are in :mod:`app.save_flow`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QFileSystemWatcher, QPointF, QRect, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QPixmap,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QScrollArea,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.controls import ControlsPanel, ModelChoice
from app.image_cache import ImageCache
from app.main_actions import MODES, WindowActions
from app.save_flow import ask_save_path, default_save_path, export_controls, export_format, save_options
from app.session import ModelRef, RenderSession, RenderSettings, image_file_filter, sort_inputs
from app.settings import Settings, load_settings, save_settings
from app.status import Banner, DropHint
from app.status_bar import StatusFields
from app.viewer import ImageView, ViewerImage, ViewState, qimage_from_rgb8
from app.worker import LoadedImage
from mlrn_core import auto, paths
from mlrn_core.imageio import ImageIOError
from mlrn_core.registry import ModelError, find_model, list_models, read_model_file

log = logging.getLogger(__name__)

APP_TITLE = "MLRN Studio"


class _EvenPair(QWidget):
    """The side-by-side views' container: the gap between them takes the odd pixel, so both views are always
    the same size and show the very same pixels of their images."""

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        layout = self.layout()
        if layout is not None:
            layout.setSpacing(4 + (event.size().width() - 4) % 2)
        super().resizeEvent(event)


class MainWindow(WindowActions):
    """See the module docstring. Signals are for tests and scripts that wait for the window."""

    image_shown = Signal(str)  # path, once its picture is read and on screen
    render_finished = Signal(object)  # RenderKey of a render that is now complete on screen
    saved = Signal(str)  # path written

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or load_settings()
        self.session = RenderSession(self.settings.cache_mb * 2**20, self)
        self.view_state = ViewState(self)
        self.mode = self.settings.compare_mode
        self.flipped = False
        self._extra_models: list[ModelChoice] = []
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
        self._connect_session()

        self.panel.set_values(
            self.settings.scale,
            self.settings.device,
            self.settings.tile,
            self.settings.export_format,
            self.settings.quality,
            self.settings.keep_16bit,
        )
        self.panel.set_precision(self.settings.precision)
        self.panel.set_quality(self.settings.upscale_quality)
        self.raw_colour_actions.get(self.settings.raw_colour, self.raw_colour_actions["srgb"]).setChecked(True)
        self._refresh_models(selected=self.settings.model or None)
        self._apply_mode(self.mode)
        self._update_recent()
        self._update_export_state()
        self._update_status()

        # models trained or imported outside this window (mlrn train, another window) appear in the list
        self._watcher = QFileSystemWatcher(self)
        if paths.user_models_dir().is_dir():
            self._watcher.addPath(str(paths.user_models_dir()))
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
        compare = _EvenPair()
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
        self.panel.precision_changed.connect(self._on_panel_precision_changed)
        self.panel.quality_changed.connect(self._on_panel_quality_changed)
        self.panel.left_changed.connect(self._on_panel_left_changed)
        self.panel.export_changed.connect(self._on_panel_export_changed)
        self.panel.save_requested.connect(self._on_save_action_triggered)
        self.panel.image_selected.connect(self._on_panel_image_selected)
        self.view_state.changed.connect(self._on_view_state_changed)

    def _build_status_bar(self) -> None:
        self.status_fields = StatusFields(self.statusBar(), self.cancel_action)
        st = self.status_fields
        self.messages, self.progress, self.cancel_button = st.messages, st.progress, st.cancel_button
        self.size_label, self.time_label, self.device_label = st.size_label, st.time_label, st.device_label

    def _restore_window(self) -> None:
        geometry = QByteArray.fromBase64(self.settings.geometry.encode("ascii")) if self.settings.geometry else None
        if geometry is None or not self.restoreGeometry(geometry):
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry() if screen is not None else QRect(0, 0, 1600, 1000)
            w, h = min(1480, int(avail.width() * 0.9)), min(920, int(avail.height() * 0.9))
            self.resize(w, h)
            self.move(avail.center().x() - w // 2, avail.center().y() - h // 2)

    def _connect_session(self) -> None:
        s = self.session
        s.info.connect(self.messages.show_info)
        s.error.connect(self.messages.show_error)
        s.image_loaded.connect(self._on_session_image_loaded)
        s.picture_ready.connect(self._on_picture_ready)
        s.preview_ready.connect(self._on_session_preview_ready)
        s.image_shown.connect(self.image_shown)
        s.load_failed.connect(self._on_session_load_failed)
        s.views_changed.connect(self._on_session_views_changed)
        s.repaint.connect(self._repaint_views)
        s.busy_changed.connect(self._on_session_busy_changed)
        s.progress.connect(self.status_fields.show_progress)
        s.status_changed.connect(self._update_status)
        s.render_finished.connect(self.render_finished)
        s.render_finished.connect(self._on_session_render_finished)
        s.saved.connect(self._on_session_saved)

    # what scripts and tests read: the session's state, seen from the window

    @property
    def cache(self) -> ImageCache:
        return self.session.cache

    @property
    def paths(self) -> list[Path]:
        return self.session.paths

    @property
    def index(self) -> int:
        return self.session.index

    @property
    def current(self) -> LoadedImage | None:
        return self.session.current

    @property
    def busy(self) -> bool:
        return self.session.busy

    @property
    def left_image(self) -> ViewerImage | None:
        return self.session.left_image

    @property
    def right_image(self) -> ViewerImage:
        return self.session.right_image

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
        files, folders, rejected = sort_inputs(items)
        if rejected:
            self.messages.show_error(rejected)
        for folder in folders:
            self.open_batch_export([folder])
        if files:
            self.session.set_paths(files)
            self.panel.set_images(files, 0)
            self._show_index(0)

    def _show_index(self, index: int) -> None:
        if not 0 <= index < len(self.paths):
            return
        path = self.paths[index]
        self.panel.set_current_image(index)
        self.settings.add_recent(path)
        self._update_recent()
        self.setWindowTitle(f"{path.name} — {APP_TITLE}")
        self.stack.setCurrentIndex(1)
        self.session.show(index, self._render_settings())

    def _step_image(self, delta: int) -> None:
        if self.paths:
            self._show_index((self.index + delta) % len(self.paths))

    def open_batch_export(self, inputs: list[Path] | None = None) -> bool:
        """Open the batch export dialog (imported when first used); False with a message when it fails."""
        from app.batch_dialog import BatchExportDialog

        model = self.panel.model
        try:
            dialog = BatchExportDialog(
                inputs=inputs,
                parent=self,
                scale=self.panel.scale,
                model=model.spec if model else None,
                quality=self.panel.quality,
                raw_colour=self.settings.raw_colour,
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

    def _render_settings(self) -> RenderSettings:
        """The panel's current choices, as the session needs them."""

        def ref(choice: ModelChoice | None) -> ModelRef | None:
            if choice is None or choice.kind == "auto":  # Auto: the session picks a model per image
                return None
            return ModelRef(choice.path, choice.path.stem if choice.kind == "file" else choice.spec)

        p = self.panel
        is_auto = p.model is not None and p.model.kind == "auto"
        return RenderSettings(
            p.scale,
            ref(p.model),
            ref(p.left_choice()),
            p.left,
            p.tile,
            p.device,
            is_auto,
            p.precision,
            p.quality,
            self.settings.raw_colour,
        )

    def _request_renders(self) -> None:
        """Render the current image with the panel's current choices (what the cache has shows at once)."""
        self.session.request(self._render_settings())
        self._update_banner()

    # ---------------------------------------------------------------------------------------------
    # session signals
    # ---------------------------------------------------------------------------------------------

    def _on_session_image_loaded(self, loaded: LoadedImage) -> None:
        """The list's thumbnail and tooltip for an image the session has read."""
        row = self.paths.index(loaded.path) if loaded.path in self.paths else -1
        if row >= 0:
            pic = loaded.picture
            tip = f"{loaded.path}\n{pic.width}×{pic.height}, {pic.bit_depth}-bit {pic.source_format.upper()}"
            self.panel.set_image_icon(row, QIcon(QPixmap.fromImage(qimage_from_rgb8(loaded.thumbnail))), tip)

    def _on_picture_ready(self, loaded: LoadedImage) -> None:
        s = self.panel.scale
        self.view_state.set_image_size(loaded.picture.width * s, loaded.picture.height * s, loaded.focus)
        self._update_export_state()
        self._update_status()
        self._update_visible()

    def _on_session_preview_ready(self, width: int, height: int) -> None:
        """A RAW file's preview is on screen while it develops: its size is the picture's, so the view opens
        where the developed picture will stay (100% on the centre)."""
        self.view_state.set_image_size(width, height, (0.5, 0.5))
        self._update_visible()

    def _on_session_load_failed(self, path: Path, message: str) -> None:
        row = self.paths.index(path) if path in self.paths else -1
        if row >= 0:
            warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            self.panel.set_image_icon(row, warn, f"{path}\n{message}")

    def _on_session_views_changed(self) -> None:
        self._apply_layout()

    def _on_session_busy_changed(self, busy: bool) -> None:
        if busy:
            self._update_visible()  # before the job starts, so it takes the tiles on screen first
        self.status_fields.set_busy(busy)

    def _on_session_saved(self, path: str) -> None:
        self.settings.last_folder = str(Path(path).parent)
        self.saved.emit(path)

    def _on_cancel_action_triggered(self) -> None:
        self.session.cancel()

    def cancel(self) -> None:
        """Stop the running upscale after its current tile."""
        self.session.cancel()

    # ---------------------------------------------------------------------------------------------
    # views
    # ---------------------------------------------------------------------------------------------

    def _apply_mode(self, mode: str) -> None:
        self.mode = mode if mode in self.mode_actions else "side"
        self.settings.compare_mode = self.mode
        self.mode_actions[self.mode].setChecked(True)
        self._apply_layout()

    def _apply_raw_colour(self, value: str) -> None:
        """Camera RAW files develop into ``value`` from now on; a RAW file on screen develops again."""
        self.settings.raw_colour = value if value in self.raw_colour_actions else "srgb"
        self.raw_colour_actions[self.settings.raw_colour].setChecked(True)
        if self.paths:
            self._request_renders()
            self._update_export_state()
            self._update_status()

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
        self.session.visible.set(None if rect is None else tuple(v / s for v in rect))

    # ---------------------------------------------------------------------------------------------
    # models and settings
    # ---------------------------------------------------------------------------------------------

    def _model_choices(self, scale: int) -> list[ModelChoice]:
        """Auto first (the default) when a built-in model for ``scale`` is installed, then every model."""
        choices = [ModelChoice.auto(scale)] if auto.available(scale) else []
        choices += [ModelChoice.from_entry(e) for e in list_models(scale)]
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
                f"<b>No MLRN model for ×{s}</b> — showing bicubic only. The built-in mlrn-x{s}.pt is "
                "missing from this installation (reinstalling MLRN Studio brings it back); open a model "
                "file to use one you have."
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
        if (before.path if before else None) != (after.path if after else None) or (after and after.kind == "auto"):
            if after is not None and before is None:
                self.messages.show_info(f"Model '{after.label}' is available now")
            self._request_renders()  # Auto may pick a model that was just installed

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

    def _on_session_render_finished(self, key) -> None:
        auto = self.session.result_info(key).get("auto")
        if auto:  # Auto measured this model here: its item in the Precision list says what it chose
            self.panel.set_auto_path(str(auto))

    def _on_panel_model_changed(self, choice: ModelChoice | None) -> None:
        self.panel.set_auto_path(None)  # Auto's choice is per model: said again after this model's render
        self.settings.model = choice.spec if choice is not None else ""
        self._update_banner()
        self._request_renders()

    def _on_panel_device_changed(self, device: str) -> None:
        self.settings.device = device
        self._request_renders()

    def _on_panel_tile_changed(self, tile: int) -> None:
        self.settings.tile = tile
        self._request_renders()

    def _on_panel_precision_changed(self, precision: str) -> None:
        self.settings.precision = precision
        self._request_renders()

    def _on_panel_quality_changed(self, quality: str) -> None:
        self.settings.upscale_quality = quality
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

    def _update_export_state(self) -> None:
        picture = self.current.picture if self.current is not None else None
        self.panel.set_export_state(*export_controls(self.panel.export_format, picture))

    # ---------------------------------------------------------------------------------------------
    # saving
    # ---------------------------------------------------------------------------------------------

    def _on_save_action_triggered(self) -> None:
        self.save_result()

    def save_result(self, path: str | Path | None = None) -> bool:
        """Save the MLRN result; asks for a file name when ``path`` is None. Waits for missing tiles."""
        if self.current is None:
            self.messages.show_error("Nothing to save yet: open a photo first")
            return False
        if self.session.right_key is None:
            self.messages.show_error(
                f"Nothing to save: there is no MLRN model for ×{self.panel.scale} (open a model file first)"
            )
            return False
        fmt = export_format(self.panel.export_format, self.current.picture)
        if path is None:
            start = default_save_path(self.current.path, self.settings.last_folder, fmt, self.panel.scale)
            path = ask_save_path(self, self.current.path, start, fmt)
            if path is None:
                return False
        try:
            same_lossless = self.panel.export_format == "same" and self.current.picture.lossless_webp
            opts = save_options(
                Path(path),
                fmt,
                None if same_lossless else self.panel.quality_spin.value(),
                self.panel.keep16_check.isChecked(),
                self.current.picture.bit_depth,
            )
        except ImageIOError as exc:
            self.messages.show_error(str(exc))
            return False
        # Replace only a file the user agreed to replace (the save dialog asks); one that appears later, from
        # another program, is never overwritten (create-if-absent).
        return self.session.save(opts.target, opts.fmt, opts.quality, opts.bits, overwrite=opts.target.exists())

    # ---------------------------------------------------------------------------------------------
    # status, recent files, settings
    # ---------------------------------------------------------------------------------------------

    def _update_status(self) -> None:
        self.status_fields.update(self.session, self.panel.scale)

    def _update_memory(self) -> None:
        self.status_fields.update_memory(self.session)
        if self.session.busy:
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
        names, _filter = QFileDialog.getOpenFileNames(self, "Open images", folder, image_file_filter())
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
        base = current.spec if current is not None and current.kind != "auto" else None  # Auto: the wizard picks
        wizard = TrainingWizard(self, scale=self.panel.scale, base_model=base)
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
        dialog = ModelsDialog(self, select=current.spec if current and current.kind != "auto" else None)
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
        # a models-folder change seen just before closing must not re-render in a closed window: its timer
        # would start a job after the session's shutdown (the window is then deleted with it still running)
        self._watcher.blockSignals(True)
        self._watch_timer.stop()
        if self._batch_dialog is not None:
            self._batch_dialog.close()
        if self._wizard is not None:
            self._wizard.shutdown()  # stops a training run with a checkpoint and waits for its thread
        self.hide()
        self.session.shutdown()  # renders stop after their current tile; saves are left to finish
        event.accept()
