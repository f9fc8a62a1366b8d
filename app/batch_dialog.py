"""The Batch Export dialog: upscale whole folders from the app with the engine ``mlrn upscale`` uses.

The dialog collects input files and folders, an output folder and the same options as the command line,
previews what will happen to every file (write, skip because the output exists, rename, unsupported) and,
with model Auto (the default), which built-in model each file gets and why,
then runs :func:`mlrn_core.batch.run_batch` in a :class:`BatchJob` on its own QThread, showing progress
per file and overall with an ETA, and the failures at the end. It is non-modal (``show()``), so the
main window stays usable; Cancel stops after the current tile and closing the dialog stops and waits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.controls import device_choices, precision_choices
from app.session import RAW_COLOUR_LABELS, image_file_filter, raw_development_note
from app.worker import Job, JobRunner
from mlrn_core import auto, batch, registry, tiling
from mlrn_core.batch import BatchError, BatchOptions, BatchPlan, BatchProgress, BatchSummary, ItemResult
from mlrn_core.terminal import fmt_duration, plural
from mlrn_core.tiling import device_label, pick_device

log = logging.getLogger(__name__)

PATH_ROLE = Qt.ItemDataRole.UserRole
COL_FILE, COL_ACTION, COL_OUTPUT, COL_STATUS, COL_MODEL = range(5)
_ERROR_STYLE = "color: #c0392b;"


class BatchJob(Job):
    """Loads the model and runs one planned batch; stops at the next tile after :meth:`stop`."""

    started_on = Signal(str)  # "model on device"
    progress = Signal(object)  # BatchProgress
    item_done = Signal(object)  # ItemResult
    result = Signal(object)  # BatchSummary

    def __init__(self, plan: BatchPlan, options: BatchOptions) -> None:
        super().__init__()
        self.plan = plan
        self.options = options

    def work(self) -> None:
        scale = self.options.scale
        if auto.is_auto(self.options.model):
            if not auto.available(scale):
                raise registry.ModelError(f"model Auto: {auto.describe(scale)} Choose a model")
            model = batch.load_auto_models(self.plan.items)
            name = f"Auto ({', '.join(model)})" if model else "Auto"
        else:
            model = registry.load_model(self.options.model, scale)
            name = model.name
        device = pick_device(self.options.device)
        best = ", best quality (8 passes a tile)" if self.options.ensemble else ""
        self.started_on.emit(f"{name} on {device_label(device)}{best}")
        summary = batch.run_batch(
            self.plan,
            self.options,
            model,
            device=device,
            cancel=self._stop.is_set,
            progress=self.progress.emit,
            on_item=self.item_done.emit,
            announce=lambda text: self.started_on.emit(f"{name} ({text.split(' (measured')[0]})"),
        )
        self.result.emit(summary)


class BatchExportDialog(QDialog):
    """Upscale folders and files to an output folder, with a preview, progress, Cancel and a failure list."""

    batch_finished = Signal(object)  # BatchSummary, or None when the batch could not start

    def __init__(
        self,
        inputs: list[Path] | None = None,
        parent: QWidget | None = None,
        scale: int = 2,
        model: str | None = None,
        quality: str = "normal",
        raw_colour: str = "srgb",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch Export")
        self.setModal(False)
        self.setAcceptDrops(True)
        self.resize(880, 680)
        self._runner = JobRunner(self)
        self._job: BatchJob | None = None
        self._plan: BatchPlan | None = None
        self._rows: dict[int, int] = {}  # plan index -> table row
        self._summary: BatchSummary | None = None
        self._preview_timer = QTimer(self, singleShot=True, interval=150)
        self._preview_timer.timeout.connect(self.refresh_preview)

        # inputs
        self.inputs_list = QListWidget()
        self.inputs_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.add_files_button.clicked.connect(self._on_add_files_button_clicked)
        self.add_folder_button.clicked.connect(self._on_add_folder_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        in_buttons = QVBoxLayout()
        for b in (self.add_files_button, self.add_folder_button, self.remove_button):
            in_buttons.addWidget(b)
        in_buttons.addStretch(1)
        inputs_box = QGroupBox("Inputs (files and folders; drop them here)")
        in_row = QHBoxLayout(inputs_box)
        in_row.addWidget(self.inputs_list, 1)
        in_row.addLayout(in_buttons)

        # output and options
        self.out_dir_edit = QLineEdit()
        self.out_dir_edit.setPlaceholderText("required; made if missing")
        self.out_dir_button = QPushButton("Browse…")
        self.out_dir_button.clicked.connect(self._on_out_dir_button_clicked)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_dir_edit, 1)
        out_row.addWidget(self.out_dir_button)

        self.scale_combo = QComboBox()
        for s in batch.SCALES:
            self.scale_combo.addItem(f"x{s}", s)
        self.scale_combo.setCurrentIndex(max(0, self.scale_combo.findData(scale)))
        self.model_combo = QComboBox()
        self.model_button = QPushButton("Model file…")
        self.model_button.clicked.connect(self._on_model_button_clicked)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.model_button)
        self.device_combo = QComboBox()
        for value, label in device_choices():
            self.device_combo.addItem(label, value)
        self.precision_combo = QComboBox()
        for value, label in precision_choices():
            self.precision_combo.addItem(label, value)
        self.precision_combo.setToolTip(
            "How the network runs. Auto takes the fastest path measured on this machine for the model (on first "
            "use, then remembered); each file's line says which path ran, and so does the batch record."
        )
        self.upscale_quality_combo = QComboBox()
        for value in tiling.QUALITIES:
            self.upscale_quality_combo.addItem(tiling.quality_label(value, scale), value)
        self.upscale_quality_combo.setCurrentIndex(max(0, self.upscale_quality_combo.findData(quality)))
        self.upscale_quality_combo.setToolTip(tiling.quality_note(scale).capitalize())
        self.raw_colour_combo = QComboBox()
        for value in batch.RAW_COLOURS:
            self.raw_colour_combo.addItem(RAW_COLOUR_LABELS[value], value)
        self.raw_colour_combo.setCurrentIndex(max(0, self.raw_colour_combo.findData(raw_colour)))
        self.raw_colour_combo.setToolTip(raw_development_note())
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 4096)
        self.tile_spin.setSingleStep(32)
        self.tile_spin.setSpecialValueText("auto")
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setToolTip("Tile size in input pixels; smaller tiles need less memory (auto: from free memory)")
        self.format_combo = QComboBox()
        for fmt in batch.FORMATS:
            self.format_combo.addItem("same as source" if fmt == "same" else fmt.upper(), fmt)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 100)
        self.quality_spin.setValue(95)
        self.quality_spin.setToolTip("JPEG, WebP, HEIC and AVIF quality")
        self.recursive_check = QCheckBox("Include subfolders (structure mirrored)")
        self.suffix_edit = QLineEdit()
        self.suffix_edit.setToolTip("Added to each output name before the extension; may be empty")
        self._suffix_default = True  # follows the scale until the user edits it
        self.on_exists_combo = QComboBox()
        for value, label in (
            ("skip", "skip it (resume)"),
            ("rename", "write NAME (1).EXT"),
            ("overwrite", "overwrite it"),
        ):
            self.on_exists_combo.addItem(label, value)

        form = QFormLayout()
        form.addRow("Output folder", out_row)
        form.addRow("Scale", self.scale_combo)
        form.addRow("Model", model_row)
        form.addRow("Quality", self.upscale_quality_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("Tile", self.tile_spin)
        form.addRow("Format", self.format_combo)
        form.addRow("RAW colours", self.raw_colour_combo)
        form.addRow("File quality", self.quality_spin)
        form.addRow("", self.recursive_check)
        form.addRow("Name suffix", self.suffix_edit)
        form.addRow("If the output exists", self.on_exists_combo)
        options_box = QGroupBox("Output and options")
        options_box.setLayout(form)

        # preview / progress table
        self.preview_table = QTableWidget(0, 5)
        self.preview_table.setHorizontalHeaderLabels(["File", "Action", "Output", "Status", "Model"])
        self.preview_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.preview_table.verticalHeader().setVisible(False)
        header = self.preview_table.horizontalHeader()
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_OUTPUT, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_MODEL, QHeaderView.ResizeMode.ResizeToContents)
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)

        self.file_bar = QProgressBar()
        self.file_bar.setFormat("%p%")
        self.file_bar.setToolTip("How far the file being upscaled now is")
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setFormat("%p%")
        self.overall_bar.setToolTip("How far the whole batch is (by pixels), with the time left below")
        self.progress_label = QLabel()
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.failures_list = QListWidget()
        self.failures_box = QGroupBox("Failures")
        QVBoxLayout(self.failures_box).addWidget(self.failures_list)
        self.failures_box.setVisible(False)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.open_button = QPushButton("Open output folder")
        self.open_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.open_button.clicked.connect(self._on_open_button_clicked)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)

        top = QHBoxLayout()
        top.addWidget(inputs_box, 1)
        top.addWidget(options_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.preview_table, 1)
        layout.addWidget(self.plan_label)
        bars = QFormLayout()
        bars.addRow("This file", self.file_bar)
        bars.addRow("All files", self.overall_bar)
        layout.addLayout(bars)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.failures_box)
        layout.addLayout(buttons)

        self._fill_models(model)
        self._update_suffix()
        self.add_inputs(inputs or [])
        for signal in (
            self.scale_combo.currentIndexChanged,
            self.format_combo.currentIndexChanged,
            self.on_exists_combo.currentIndexChanged,
            self.recursive_check.toggled,
            self.out_dir_edit.textChanged,
            self.suffix_edit.textChanged,
            self.tile_spin.valueChanged,
            self.model_combo.currentIndexChanged,
        ):
            signal.connect(self._schedule_preview)
        self.scale_combo.currentIndexChanged.connect(self._on_scale_combo_changed)
        self.suffix_edit.textEdited.connect(self._on_suffix_edit_edited)
        self.refresh_preview()

    # --- state -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._job is not None

    def inputs(self) -> list[Path]:
        return [Path(self.inputs_list.item(i).data(PATH_ROLE)) for i in range(self.inputs_list.count())]

    def add_inputs(self, paths: list[Path] | list[str]) -> None:
        """Add files or folders to the inputs (each once)."""
        known = {str(p) for p in self.inputs()}
        for p in paths:
            path = Path(p)
            if str(path) in known:
                continue
            known.add(str(path))
            item = QListWidgetItem(("📁 " if path.is_dir() else "") + str(path))
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path))
            self.inputs_list.addItem(item)
        self._schedule_preview()

    def options(self) -> BatchOptions:
        """The options as set in the dialog (raises ValueError for an invalid combination)."""
        tile = self.tile_spin.value()
        return BatchOptions(
            scale=int(self.scale_combo.currentData()),
            model=self.model_combo.currentData() or None,
            device=str(self.device_combo.currentData()),
            precision=str(self.precision_combo.currentData()),
            tile=tile or None,
            fmt=str(self.format_combo.currentData()),
            quality=self.quality_spin.value(),
            recursive=self.recursive_check.isChecked(),
            suffix=self.suffix_edit.text(),
            on_exists=str(self.on_exists_combo.currentData()),
            ensemble=self.upscale_quality_combo.currentData() == "best",
            raw_colour=str(self.raw_colour_combo.currentData()),
        )

    def _make_plan(self) -> BatchPlan:
        inputs = self.inputs()
        if not inputs:
            raise BatchError("add image files or folders to upscale")
        out = self.out_dir_edit.text().strip()
        if not out:
            raise BatchError("choose an output folder")
        try:
            options = self.options()
        except ValueError as exc:
            raise BatchError(str(exc)) from None
        return batch.plan_batch(inputs, Path(out), options)

    # --- preview -----------------------------------------------------------------------------------------

    def _schedule_preview(self, *_args: object) -> None:
        if not self.running:
            self._preview_timer.start()

    def refresh_preview(self) -> None:
        """Plan again and show what will happen to each file (while not running)."""
        if self.running:
            return
        self._preview_timer.stop()
        try:
            plan = self._make_plan()
        except BatchError as exc:
            self._plan = None
            self.preview_table.setRowCount(0)
            self._set_plan_text(str(exc), error=True)
            self.start_button.setEnabled(False)
            return
        self._show_plan(plan)
        if len(plan):
            text = f"{plural(len(plan), 'file')}: {plan.describe()}"
            picked = batch.auto_summary(plan.items)
            if picked:
                text += "\nModel Auto: " + "; ".join(picked)
        else:
            text = "no files found" + (
                "" if self.recursive_check.isChecked() else " (tick 'Include subfolders' to look in subfolders)"
            )
        self._set_plan_text(text, error=False)
        self.start_button.setEnabled(bool(plan.work))

    def _set_plan_text(self, text: str, error: bool) -> None:
        self.plan_label.setText(text)
        self.plan_label.setStyleSheet(_ERROR_STYLE if error else "")

    def _show_plan(self, plan: BatchPlan) -> None:
        self._plan = plan
        self._rows = {}
        table = self.preview_table
        table.setRowCount(len(plan))
        for row, item in enumerate(plan.items):
            self._rows[item.index] = row
            if item.auto is not None or item.auto_error:
                model = item.auto.caption if item.auto is not None else f"none: {item.auto_error}"
            else:  # one model for every file
                spec = str(self.model_combo.currentData() or "")
                model = (Path(spec).stem if Path(spec).is_file() else spec) if item.is_work else ""
            cells = (str(item.relative), item.describe(), str(item.output or ""), "", model)
            for col, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(str(item.source) if col == COL_FILE else text)
                table.setItem(row, col, cell)
            if item.auto_error:
                table.item(row, COL_MODEL).setForeground(QColor("#c0392b"))
            if not item.is_work:
                for col in range(table.columnCount()):
                    table.item(row, col).setForeground(QColor("gray"))

    def preview_rows(self) -> list[tuple[str, str, str, str, str]]:
        """The table's text, row by row (file, action, output, status, model)."""
        t = self.preview_table
        return [tuple(t.item(r, c).text() for c in range(t.columnCount())) for r in range(t.rowCount())]  # type: ignore[misc]

    def _set_status(self, index: int, text: str, error: bool = False) -> None:
        row = self._rows.get(index)
        if row is None:
            return
        cell = self.preview_table.item(row, COL_STATUS)
        cell.setText(text)
        cell.setToolTip(text)
        if error:
            cell.setForeground(QColor("#c0392b"))

    # --- running -----------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Plan afresh and start the batch; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        try:
            plan = self._make_plan()
            options = self.options()
        except (BatchError, ValueError) as exc:
            self._set_plan_text(str(exc), error=True)
            return False
        self._show_plan(plan)
        if not plan.work:
            self._set_plan_text(f"nothing to upscale: {plan.describe()}", error=False)
            return False
        self._summary = None
        self._reported: set[int] = set()  # plan items whose outcome the job has reported
        self.failures_list.clear()
        self.failures_box.setVisible(False)
        self.summary_label.clear()
        self.file_bar.setValue(0)
        self.overall_bar.setValue(0)
        self.progress_label.setText("loading the model…")
        job = BatchJob(plan, options)
        job.started_on.connect(self._on_job_started_on)
        job.progress.connect(self._on_job_progress)
        job.item_done.connect(self._on_job_item_done)
        job.result.connect(self._on_job_result)
        job.failed.connect(self._on_job_failed)
        job.finished.connect(self._on_job_finished)
        self._job = job
        self._set_running(True)
        self._runner.start(job)
        return True

    def cancel(self) -> None:
        """Stop after the current tile (the file being upscaled is not written)."""
        if self._job is not None:
            self._job.stop()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("cancelling after the current tile…")

    def _set_running(self, running: bool) -> None:
        for w in (
            self.start_button,
            self.add_files_button,
            self.add_folder_button,
            self.remove_button,
            self.out_dir_edit,
            self.out_dir_button,
            self.scale_combo,
            self.model_combo,
            self.model_button,
            self.device_combo,
            self.precision_combo,
            self.upscale_quality_combo,
            self.tile_spin,
            self.format_combo,
            self.raw_colour_combo,
            self.quality_spin,
            self.recursive_check,
            self.suffix_edit,
            self.on_exists_combo,
        ):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(not running and bool(self.out_dir_edit.text().strip()))

    def _on_job_started_on(self, text: str) -> None:
        self.progress_label.setText(f"upscaling with {text}")

    def _on_job_progress(self, p: BatchProgress) -> None:
        self.file_bar.setValue(round(100 * p.item_fraction))
        self.overall_bar.setValue(round(1000 * p.fraction))
        if p.item is not None:
            name = p.item.relative
            self._set_status(p.item.index, f"upscaling {p.item_fraction:.0%}")
            self.progress_label.setText(
                f"file {p.position} of {p.total}: {name}  ·  elapsed {fmt_duration(p.elapsed_s)}  ·  "
                f"ETA {fmt_duration(p.eta_s)}"
            )

    def _on_job_item_done(self, r: ItemResult) -> None:
        self._reported.add(r.item.index)
        if r.status == batch.OK:
            note = f" ({'; '.join(r.warnings)})" if r.warnings else ""
            ran = f" · {r.backend}" if r.backend else ""
            self._set_status(r.item.index, f"done in {r.seconds:.1f} s{ran}{note}")
        elif r.status == batch.FAILED:
            self._set_status(r.item.index, f"failed: {r.error}", error=True)
            self.failures_list.addItem(f"{r.item.source}: {r.error}")
            self.failures_box.setVisible(True)
        elif r.status == batch.CANCELLED:
            self._set_status(r.item.index, "cancelled (nothing written)")
        elif r.item.action == batch.UNSUPPORTED:
            self._set_status(r.item.index, "unsupported")
        else:
            self._set_status(r.item.index, "skipped (exists)")

    def _on_job_result(self, summary: BatchSummary) -> None:
        self._summary = summary
        record = self._plan.sidecar if self._plan is not None else None
        where = f"\nA record of each file (status, time, errors) is kept in {record}" if record else ""
        self.summary_label.setText(summary.describe() + where)  # said once, here; not again in the progress line
        self.summary_label.setStyleSheet(_ERROR_STYLE if summary.failed else "")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if summary.cancelled and self._plan is not None:  # files the batch never reached say so too
            for item in self._plan.work:
                if item.index not in self._reported:
                    self._set_status(item.index, "cancelled (not started)")
        if not summary.cancelled:
            self.file_bar.setValue(100)
            self.overall_bar.setValue(1000)
        self.progress_label.setText("Stopped." if summary.cancelled else "Finished.")

    def _on_job_failed(self, message: str) -> None:
        self.summary_label.setText(f"the batch could not run: {message}")
        self.summary_label.setStyleSheet(_ERROR_STYLE)
        self.progress_label.clear()

    def _on_job_finished(self) -> None:
        # the job has returned: join its thread now, so that nothing runs once batch_finished is out (a
        # dialog dropped right after it must not destroy a QThread whose quit is still queued)
        self._runner.stop_all(wait=True)
        self._job = None
        self._set_running(False)
        self.batch_finished.emit(self._summary)

    # --- user actions -----------------------------------------------------------------------------------

    def _on_start_button_clicked(self) -> None:
        self.start()

    def _on_cancel_button_clicked(self) -> None:
        self.cancel()

    def _on_add_files_button_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add images", "", image_file_filter())
        self.add_inputs([Path(f) for f in files])

    def _on_add_folder_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.add_inputs([Path(folder)])

    def _on_remove_button_clicked(self) -> None:
        for item in self.inputs_list.selectedItems():
            self.inputs_list.takeItem(self.inputs_list.row(item))
        self._schedule_preview()

    def _on_out_dir_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out_dir_edit.text())
        if folder:
            self.out_dir_edit.setText(folder)

    def _on_model_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "MLRN models (*.pt);;All files (*)")
        if path:
            self._add_model_choice(path, f"{Path(path).stem} (file)")
            self.model_combo.setCurrentIndex(self.model_combo.count() - 1)

    def _on_open_button_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.out_dir_edit.text().strip()))

    def _on_scale_combo_changed(self, _index: int) -> None:
        scale = int(self.scale_combo.currentData())
        for i in range(self.upscale_quality_combo.count()):
            value = str(self.upscale_quality_combo.itemData(i))
            self.upscale_quality_combo.setItemText(i, tiling.quality_label(value, scale))
        self.upscale_quality_combo.setToolTip(tiling.quality_note(scale).capitalize())
        self._fill_models(self.model_combo.currentData())
        self._update_suffix()

    def _on_suffix_edit_edited(self, _text: str) -> None:
        self._suffix_default = False

    def _update_suffix(self) -> None:
        if self._suffix_default:
            self.suffix_edit.setText(f"_x{self.scale_combo.currentData()}")

    def _fill_models(self, keep: str | None) -> None:
        """Auto (the default), then the registry's models of this scale, then model files chosen before."""
        scale = int(self.scale_combo.currentData())
        files = [
            self.model_combo.itemData(i)
            for i in range(self.model_combo.count())
            if self.model_combo.itemData(i) and Path(self.model_combo.itemData(i)).suffix == ".pt"
        ]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self._add_model_choice(auto.AUTO, "Auto (by file type)")
        self.model_combo.setItemData(0, auto.describe(scale), Qt.ItemDataRole.ToolTipRole)
        try:
            entries = registry.list_models(scale)
        except Exception as exc:  # noqa: BLE001 - an unreadable models folder must not break the dialog
            log.warning("cannot list models: %s", exc)
            entries = []
        for e in entries:
            self._add_model_choice(e.name, f"{e.name} ({'built-in' if e.kind == 'built-in' else 'your model'})")
        for f in files:
            self._add_model_choice(f, f"{Path(f).stem} (file)")
        if keep and self.model_combo.findData(keep) < 0 and Path(keep).is_file():
            self._add_model_choice(keep, f"{Path(keep).stem} (file)")
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(keep)) if keep else 0)
        self.model_combo.blockSignals(False)

    def _add_model_choice(self, spec: str, label: str) -> None:
        if self.model_combo.findData(spec) < 0:
            self.model_combo.addItem(label, spec)
            self.model_combo.setItemData(self.model_combo.count() - 1, spec, Qt.ItemDataRole.ToolTipRole)

    # --- drag and drop, closing ---------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if not self.running and event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths and not self.running:
            self.add_inputs(paths)
            event.acceptProposedAction()

    def _shutdown(self) -> None:
        """Stop a running batch after its current tile and wait for its thread (idempotent)."""
        if self._job is not None:
            self._job.stop()
        self._runner.stop_all(wait=True)

    def reject(self) -> None:  # Esc
        self._shutdown()
        super().reject()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._shutdown()
        super().closeEvent(event)
