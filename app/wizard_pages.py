"""The first pages of the fine-tuning wizard (Photos, Setup, Hold-out) and helpers shared by all pages.

The Training and Result pages are in :mod:`app.wizard_training`.

Pages compose widgets, keep the user's choices in the shared :class:`app.wizard_state.WizardState`
and start background jobs (:mod:`app.wizard_jobs`) through the wizard's :class:`app.worker.JobRunner`.
Slots that receive job signals check ``self.sender()`` against the job they are waiting for, so a
result from a superseded job (a rescan after adding a folder) is ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.controls import device_choices
from app.wizard_jobs import (
    ScanJob,
    SpeedJob,
)
from app.wizard_state import FT_LR, SCRATCH_LR, WizardState
from app.worker import JobRunner
from mlrn_core import registry
from mlrn_core.finetune import FEW_IMAGES, HOLDOUT_FRACTION, passes_over_data, pick_holdout, rough_steps_per_s
from mlrn_core.model import MLRN, count_parameters
from mlrn_core.runs import RunInfo, discard_run, unfinished_runs
from mlrn_core.terminal import fmt_duration, fmt_steps
from mlrn_core.tiling import pick_device
from mlrn_core.trainer import (
    TrainConfig,
)

log = logging.getLogger(__name__)

PHOTOS, SETUP, HOLDOUT, TRAINING, RESULT = range(5)
PATH_ROLE = Qt.ItemDataRole.UserRole
ERROR_STYLE = "color: #c0392b;"
WARN_STYLE = "color: #b9770e;"
GOOD_STYLE = "color: #1e8449;"


def wrap_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def form_grid(rows: list[tuple[str, QWidget | QLayout]]) -> QGridLayout:
    """A label/field grid (QFormLayout leaves gaps around word-wrapped labels)."""
    grid = QGridLayout()
    grid.setColumnStretch(1, 1)
    for r, (label, field) in enumerate(rows):
        if isinstance(field, QLayout):
            if label:
                tall = isinstance(field, QVBoxLayout)
                align = Qt.AlignmentFlag.AlignTop if tall else Qt.AlignmentFlag.AlignVCenter
                grid.addWidget(QLabel(label), r, 0, align | Qt.AlignmentFlag.AlignLeft)
            grid.addLayout(field, r, 1)
        else:
            if label:
                grid.addWidget(QLabel(label), r, 0)
            grid.addWidget(field, r, 1)
    return grid


class _WrapTable(QTableWidget):
    """A read-only two-column table whose second column wraps (row heights follow the width)."""

    def __init__(self, headers: list[str]) -> None:
        super().__init__(0, len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(True)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def set_rows(self, rows: list[tuple[str, str, str]]) -> None:
        """(first column, second column, tooltip) per row."""
        self.setRowCount(len(rows))
        for r, (a, b, tip) in enumerate(rows):
            for c, text in enumerate((a, b)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip if c == 0 else text)
                self.setItem(r, c, item)
        self.resizeRowsToContents()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.resizeRowsToContents()


def _placeholder_icon(side: int = 96) -> QIcon:
    pix = QPixmap(side, side)
    pix.fill(QColor(200, 200, 200))
    return QIcon(pix)


def _thumb_list() -> QListWidget:
    view = QListWidget()
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setIconSize(QSize(96, 96))
    view.setGridSize(QSize(122, 124))
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setMovement(QListView.Movement.Static)
    view.setUniformItemSizes(True)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.setWordWrap(False)
    return view


# --- Photos -----------------------------------------------------------------------------------------


class PhotosPage(QWizardPage):
    """Folders of the user's photos: a background scan, thumbnails, what is skipped and why."""

    def __init__(self, state: WizardState, runner: JobRunner, thumbnails: dict[str, QImage]) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self.thumbnails = thumbnails
        self._scan_job: ScanJob | None = None
        self._scanning = False
        self._error = ""
        self._runs: list[RunInfo] = []
        self.setTitle("Your photos")
        self.setSubTitle("Add one or more folders of your own full-resolution photos (sub-folders included). "
                         "MLRN Studio learns from them on this computer; nothing leaves it.")
        self.setAcceptDrops(True)

        # unfinished runs (resume)
        self.runs_list = QListWidget()
        self.runs_list.setMaximumHeight(72)
        self.resume_button = QPushButton("Resume run")
        self.discard_button = QPushButton("Discard run…")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.discard_button.clicked.connect(self._on_discard_button_clicked)
        run_buttons = QVBoxLayout()
        run_buttons.addWidget(self.resume_button)
        run_buttons.addWidget(self.discard_button)
        run_buttons.addStretch(1)
        self.runs_box = QGroupBox("Unfinished training runs (stopped or interrupted): continue one where it stopped")
        runs_row = QHBoxLayout(self.runs_box)
        runs_row.addWidget(self.runs_list, 1)
        runs_row.addLayout(run_buttons)

        # folders
        self.folders_list = QListWidget()
        self.folders_list.setMaximumHeight(64)
        self.folders_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.add_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        folder_buttons = QVBoxLayout()
        folder_buttons.addWidget(self.add_button)
        folder_buttons.addWidget(self.remove_button)
        folder_buttons.addStretch(1)
        folders_row = QHBoxLayout()
        folders_row.addWidget(self.folders_list, 1)
        folders_row.addLayout(folder_buttons)

        self.status_label = wrap_label("No folder yet: press Add folder… or drop folders here.")
        self.scan_bar = QProgressBar()
        self.scan_bar.setRange(0, 0)
        self.scan_bar.setMaximumHeight(12)
        self.scan_bar.setTextVisible(False)
        self.scan_bar.setVisible(False)
        self.warning_label = wrap_label()
        self.warning_label.setStyleSheet(WARN_STYLE)
        self.warning_label.setVisible(False)

        self.thumbs = _thumb_list()
        self.skipped_table = _WrapTable(["Skipped file", "Why"])
        usable_box = QGroupBox("Usable photos")
        QVBoxLayout(usable_box).addWidget(self.thumbs)
        self.skipped_box = QGroupBox("Skipped")
        QVBoxLayout(self.skipped_box).addWidget(self.skipped_table)
        lists = QHBoxLayout()
        lists.addWidget(usable_box, 1)
        lists.addWidget(self.skipped_box, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.runs_box)
        layout.addLayout(folders_row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.scan_bar)
        layout.addWidget(self.warning_label)
        layout.addLayout(lists, 1)
        self.refresh_runs()
        self._update_buttons()

    # -- QWizardPage
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.setCommitPage(False)  # set while jumping to a resumed run; a restarted wizard starts afresh
        self.refresh_runs()
        self._show_scan()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return not self._scanning and len(self.state.candidates()) >= 2

    def nextId(self) -> int:  # noqa: N802 - Qt override
        return TRAINING if self.state.resume else SETUP

    # -- folders
    def add_folders(self, folders: list[Path]) -> None:
        changed = False
        for folder in folders:
            text = str(Path(folder).expanduser().absolute())
            if Path(text).is_dir() and text not in self.state.folders:
                self.state.folders.append(text)
                self.folders_list.addItem(text)
                changed = True
            elif not Path(text).is_dir():
                self.status_label.setText(f"'{text}' is not a folder: add folders of photos.")
                self.status_label.setStyleSheet(ERROR_STYLE)
        if changed:
            self.start_scan()

    def start_scan(self) -> None:
        if self._scan_job is not None:
            self._scan_job.stop()  # it finishes in the background; its results are ignored
        self.state.scan = None
        self._error = ""
        self.thumbs.clear()
        self.skipped_table.setRowCount(0)
        if not self.state.folders:
            self._scan_job = None
            self._scanning = False
            self.status_label.setText("No folder yet: press Add folder… or drop folders here.")
            self._update_buttons()
            return
        job = ScanJob(tuple(self.state.folders))
        job.counted.connect(self._on_scan_counted)
        job.scanned.connect(self._on_scan_scanned)
        job.thumbnail_ready.connect(self._on_scan_thumbnail_ready)
        job.failed.connect(self._on_scan_failed)
        job.finished.connect(self._on_scan_finished)
        self._scan_job = job
        self._scanning = True
        self.status_label.setStyleSheet("")
        self.status_label.setText("Looking for photos…")
        self._update_buttons()
        self.runner.start(job)

    @Slot(int)
    def _on_scan_counted(self, count: int) -> None:
        if self.sender() is self._scan_job:
            self.status_label.setText(f"Checking {count} image files (readable, size, duplicates)…")

    @Slot(object)
    def _on_scan_scanned(self, scan) -> None:
        if self.sender() is not self._scan_job:
            return
        self.state.scan = scan
        self._scanning = False
        self._show_scan()
        self.completeChanged.emit()

    @Slot(str, QImage)
    def _on_scan_thumbnail_ready(self, path: str, image: QImage) -> None:
        self.thumbnails[path] = image
        for i in range(self.thumbs.count()):
            item = self.thumbs.item(i)
            if item.data(PATH_ROLE) == path:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
                break

    @Slot(str)
    def _on_scan_failed(self, message: str) -> None:
        if self.sender() is self._scan_job:
            self._error = message

    @Slot()
    def _on_scan_finished(self) -> None:
        if self.sender() is not self._scan_job:
            return
        self._scan_job = None
        self._scanning = False
        if self._error:
            self.status_label.setText(f"The scan failed: {self._error}")
            self.status_label.setStyleSheet(ERROR_STYLE)
        self._update_buttons()
        self.completeChanged.emit()

    def _show_scan(self) -> None:
        """Fill the thumbnails and the skipped list for the current scale and patch size."""
        scan = self.state.scan
        self.thumbs.clear()
        self.skipped_table.setRowCount(0)
        if scan is None:
            self._update_buttons()
            return
        placeholder = _placeholder_icon()
        for path in self.state.candidates():
            item = QListWidgetItem(path.name)
            image = self.thumbnails.get(str(path))
            item.setIcon(QIcon(QPixmap.fromImage(image)) if image is not None else placeholder)
            w, h = scan.sizes[path]
            item.setToolTip(f"{path}\n{w} x {h} px")
            item.setData(PATH_ROLE, str(path))
            self.thumbs.addItem(item)
        skipped = [(s.path, s.reason) for s in scan.skipped] + self.state.too_small()
        self.skipped_table.set_rows([(Path(path).name, reason, str(path)) for path, reason in skipped])
        self.skipped_box.setTitle(f"Skipped ({len(skipped)})")
        n = len(self.state.candidates())
        self.status_label.setStyleSheet("")
        self.status_label.setText(
            f"{n} usable photo{'s' if n != 1 else ''} for x{self.state.scale}"
            + (f", {len(skipped)} skipped (see the list)" if skipped else "") + "."
        )
        if n < 2:
            self.warning_label.setText("At least 2 usable photos are needed: one to train on and one held out to "
                                       "check the result. Add a folder with more photos.")
        elif n < FEW_IMAGES:
            self.warning_label.setText(f"Only {n} usable photos: fine-tuning works best with {FEW_IMAGES} or more "
                                       "(about one in ten is held out to check the result).")
        self.warning_label.setVisible(n < FEW_IMAGES)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.scan_bar.setVisible(self._scanning)
        self.remove_button.setEnabled(self.folders_list.count() > 0)
        has_run = self.runs_list.currentRow() >= 0
        self.resume_button.setEnabled(has_run)
        self.discard_button.setEnabled(has_run)

    @Slot()
    def _on_add_button_clicked(self) -> None:
        start = self.state.folders[-1] if self.state.folders else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of your photos", start)
        if folder:
            self.add_folders([Path(folder)])

    @Slot()
    def _on_remove_button_clicked(self) -> None:
        rows = sorted((self.folders_list.row(i) for i in self.folders_list.selectedItems()), reverse=True)
        if not rows and self.folders_list.count():
            rows = [self.folders_list.count() - 1]
        for row in rows:
            self.folders_list.takeItem(row)
            del self.state.folders[row]
        self.start_scan()

    # -- drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        folders = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [f if f.is_dir() else f.parent for f in folders]
        if folders:
            self.add_folders(folders)
            event.acceptProposedAction()

    # -- unfinished runs
    def refresh_runs(self) -> None:
        try:
            self._runs = unfinished_runs()
        except OSError as exc:
            log.warning("cannot list training runs: %s", exc)
            self._runs = []
        self.runs_list.clear()
        for run in self._runs:
            item = QListWidgetItem(run.describe())
            item.setToolTip(str(run.path))
            self.runs_list.addItem(item)
        if self._runs:
            self.runs_list.setCurrentRow(0)
        self.runs_box.setVisible(bool(self._runs))
        self._update_buttons()

    def selected_run(self) -> RunInfo | None:
        row = self.runs_list.currentRow()
        return self._runs[row] if 0 <= row < len(self._runs) else None

    @Slot()
    def _on_resume_button_clicked(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        try:
            self.state.replace_with(WizardState.from_run(run))
        except (ValueError, TypeError, KeyError) as exc:
            QMessageBox.warning(self, "Cannot resume", f"The run in '{run.path}' cannot be resumed: {exc}")
            return
        self.setCommitPage(True)  # the Training page offers no way back to a half-edited setup
        self.wizard().next()

    @Slot()
    def _on_discard_button_clicked(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        answer = QMessageBox.question(
            self, "Discard run",
            f"Delete the unfinished run '{run.name}' ({run.path})?\nIts checkpoint and best model so far are "
            "deleted; models you saved from it are kept.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            discard_run(run)
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Cannot discard", f"Cannot delete '{run.path}': {exc}")
        self.refresh_runs()


# --- Setup ------------------------------------------------------------------------------------------


class SetupPage(QWizardPage):
    """Scale, base model, name, LR degradation, device and budget, with a speed estimate."""

    def __init__(self, state: WizardState, runner: JobRunner, preferred_base: str | None) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self._preferred_base = preferred_base
        self._name_edited = False
        self._speed_job: SpeedJob | None = None
        self._measured: tuple[tuple, float, str] | None = None  # (settings key, steps/s, device label)
        self._params_cache: dict[tuple, int] = {}
        self._scratch: bool | None = None  # the base kind the learning rate default was set for
        self.setTitle("Setup")
        self.setSubTitle("What to train, starting from which model, and for how long.")

        self.scale_combo = QComboBox()
        for s in (2, 3, 4):
            self.scale_combo.addItem(f"x{s}", s)
        self.base_combo = QComboBox()
        self.base_note = wrap_label()
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(64)
        self.name_note = wrap_label()

        self.clean_radio = QRadioButton("Clean bicubic (standard; for sharp, well-exposed originals)")
        self.jpeg_radio = QRadioButton("Match camera JPEGs: JPEG compression and mild noise in the inputs")
        self._degradation_group = QButtonGroup(self)
        self._degradation_group.addButton(self.clean_radio)
        self._degradation_group.addButton(self.jpeg_radio)
        self.jpeg_min = QSpinBox()
        self.jpeg_max = QSpinBox()
        for spin in (self.jpeg_min, self.jpeg_max):
            spin.setRange(10, 100)
        self.noise_spin = QDoubleSpinBox()
        self.noise_spin.setRange(0.0, 10.0)
        self.noise_spin.setSingleStep(0.5)
        self.noise_spin.setDecimals(1)
        jpeg_row = QHBoxLayout()
        jpeg_row.addSpacing(24)
        jpeg_row.addWidget(QLabel("JPEG quality"))
        jpeg_row.addWidget(self.jpeg_min)
        jpeg_row.addWidget(QLabel("to"))
        jpeg_row.addWidget(self.jpeg_max)
        jpeg_row.addSpacing(16)
        jpeg_row.addWidget(QLabel("noise up to sigma"))
        jpeg_row.addWidget(self.noise_spin)
        jpeg_row.addStretch(1)
        degradation_box = QVBoxLayout()
        degradation_box.addWidget(self.clean_radio)
        degradation_box.addWidget(self.jpeg_radio)
        degradation_box.addLayout(jpeg_row)

        self.device_combo = QComboBox()
        for value, label in device_choices():
            self.device_combo.addItem(label, value)

        self.minutes_radio = QRadioButton("Minutes")
        self.steps_radio = QRadioButton("Steps")
        self._budget_group = QButtonGroup(self)
        self._budget_group.addButton(self.minutes_radio)
        self._budget_group.addButton(self.steps_radio)
        self.minutes_spin = QSpinBox()
        self.minutes_spin.setRange(1, 7 * 24 * 60)
        self.minutes_spin.setSuffix(" min")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setSingleStep(100)
        self.measure_button = QPushButton("Measure speed")
        self.measure_button.setToolTip("Runs a few real training steps on this device with these settings")
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.minutes_radio)
        budget_row.addWidget(self.minutes_spin)
        budget_row.addSpacing(16)
        budget_row.addWidget(self.steps_radio)
        budget_row.addWidget(self.steps_spin)
        budget_row.addStretch(1)
        budget_row.addWidget(self.measure_button)
        self.estimate_label = wrap_label()

        # advanced
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(8, 256)
        self.patch_spin.setSingleStep(8)
        self.patch_spin.setSuffix(" px (LR)")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 0.01)
        self.lr_spin.setSingleStep(0.0001)
        self.val_every_spin = QSpinBox()
        self.val_every_spin.setRange(0, 1_000_000)
        self.val_every_spin.setSpecialValueText("auto")
        self.val_every_spin.setSuffix(" steps")
        self.val_every_spin.setToolTip("How often the hold-out is checked and a checkpoint saved (auto: ~12 per run)")
        self.features_spin = QSpinBox()
        self.features_spin.setRange(4, 256)
        self.blocks_spin = QSpinBox()
        self.blocks_spin.setRange(1, 64)
        advanced = QGroupBox("Advanced")
        grid = QGridLayout(advanced)
        grid.addWidget(QLabel("Batch"), 0, 0)
        grid.addWidget(self.batch_spin, 0, 1)
        grid.addWidget(QLabel("Patch"), 0, 2)
        grid.addWidget(self.patch_spin, 0, 3)
        grid.addWidget(QLabel("Learning rate"), 0, 4)
        grid.addWidget(self.lr_spin, 0, 5)
        grid.addWidget(QLabel("Check hold-out every"), 1, 0)
        grid.addWidget(self.val_every_spin, 1, 1)
        grid.addWidget(QLabel("New network: features"), 1, 2)
        grid.addWidget(self.features_spin, 1, 3)
        grid.addWidget(QLabel("blocks"), 1, 4)
        grid.addWidget(self.blocks_spin, 1, 5)
        grid.setColumnStretch(6, 1)
        self.size_note = wrap_label()
        self.size_note.setStyleSheet(WARN_STYLE)

        form = form_grid([
            ("Scale", self.scale_combo),
            ("Start from", self.base_combo),
            ("", self.base_note),
            ("Name of the new model", self.name_edit),
            ("", self.name_note),
            ("Low-resolution inputs", degradation_box),
            ("Device", self.device_combo),
            ("Budget", budget_row),
            ("", self.estimate_label),
        ])
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(advanced)
        layout.addWidget(self.size_note)
        layout.addStretch(1)

        self._load_state()
        self.scale_combo.currentIndexChanged.connect(self._on_scale_combo_changed)
        self.base_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.name_edit.textEdited.connect(self._on_name_edit_edited)
        self.name_edit.textChanged.connect(self._on_name_edit_changed)
        self.jpeg_radio.toggled.connect(self._on_settings_changed)
        self.device_combo.currentIndexChanged.connect(self._on_device_combo_changed)
        self.minutes_radio.toggled.connect(self._on_settings_changed)
        self.measure_button.clicked.connect(self._on_measure_button_clicked)
        for spin in (self.jpeg_min, self.jpeg_max, self.minutes_spin, self.steps_spin, self.batch_spin,
                     self.patch_spin, self.val_every_spin, self.features_spin, self.blocks_spin):
            spin.valueChanged.connect(self._on_settings_changed)
        for spin in (self.noise_spin, self.lr_spin):
            spin.valueChanged.connect(self._on_settings_changed)

    def _load_state(self) -> None:
        st = self.state
        self.scale_combo.setCurrentIndex(max(0, self.scale_combo.findData(st.scale)))
        device = pick_device(st.device)
        if device.type == "cpu":  # smaller steps so that a CPU run shows progress within minutes
            st.batch, st.patch = 8, 32
        self.batch_spin.setValue(st.batch)
        self.patch_spin.setValue(st.patch)
        self.val_every_spin.setValue(st.val_every)
        self.features_spin.setValue(st.features)
        self.blocks_spin.setValue(st.blocks)
        self.jpeg_min.setValue(st.jpeg_quality[0])
        self.jpeg_max.setValue(st.jpeg_quality[1])
        self.noise_spin.setValue(st.noise_sigma)
        (self.jpeg_radio if st.jpeg else self.clean_radio).setChecked(True)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(st.device)))
        (self.minutes_radio if st.budget_minutes else self.steps_radio).setChecked(True)
        self.minutes_spin.setValue(int(st.minutes))
        self.steps_spin.setValue(st.steps)
        self._fill_bases(self._preferred_base)
        self._scratch = not self.base_combo.currentData()
        self.lr_spin.setValue(SCRATCH_LR if self._scratch else st.lr)

    # -- QWizardPage
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        if not self._name_edited or not self.name_edit.text().strip():
            self.name_edit.setText(self.state.default_name())
        self._on_settings_changed()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self._name_error() is None and len(self.state.candidates()) >= 2

    def validatePage(self) -> bool:  # noqa: N802 - Qt override
        self._store()
        if self._speed_job is not None:
            self._speed_job.stop()
        return self.isComplete()

    # -- choices
    def _fill_bases(self, keep: str | None) -> None:
        scale = int(self.scale_combo.currentData())
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        try:
            entries = registry.list_models(scale)
        except Exception as exc:  # noqa: BLE001 - an unreadable models folder must not break the wizard
            log.warning("cannot list models: %s", exc)
            entries = []
        builtin = registry.builtin_name(scale)
        for e in entries:
            what = "built-in" if e.kind == "built-in" else "your model"
            psnr = f", {e.psnr:.2f} dB" if e.psnr is not None else ""
            self.base_combo.addItem(f"{e.name} ({what}{psnr})", e.name)
        if keep and self.base_combo.findData(keep) < 0 and Path(keep).is_file():
            self.base_combo.addItem(f"{Path(keep).stem} (file)", keep)
        self.base_combo.addItem("From scratch (a new network)", "")
        index = self.base_combo.findData(keep) if keep else -1
        if index < 0:
            index = self.base_combo.findData(builtin)
        self.base_combo.setCurrentIndex(index if index >= 0 else self.base_combo.count() - 1)
        self.base_combo.blockSignals(False)
        has_builtin = any(e.name == builtin for e in entries)
        if has_builtin:
            self.base_note.setText("Fine-tuning starts from an existing model: it keeps what that model knows "
                                   "and adapts it to your photos.")
            self.base_note.setStyleSheet("")
        else:
            self.base_note.setText(f"The built-in x{scale} weights ({builtin}) are missing from this installation, so "
                                   "you can start from one of your own models or from scratch. A new network needs "
                                   "a much longer budget than a fine-tune (an hour or more on a GPU for good "
                                   "results).")
            self.base_note.setStyleSheet(WARN_STYLE)

    def _store(self) -> None:
        st = self.state
        st.scale = int(self.scale_combo.currentData())
        st.base = self.base_combo.currentData() or None
        st.name = self.name_edit.text().strip()
        st.jpeg = self.jpeg_radio.isChecked()
        lo, hi = sorted((self.jpeg_min.value(), self.jpeg_max.value()))
        st.jpeg_quality = (lo, hi)
        st.noise_sigma = float(self.noise_spin.value())
        st.device = self.device_combo.currentData()
        st.budget_minutes = self.minutes_radio.isChecked()
        st.minutes = float(self.minutes_spin.value())
        st.steps = int(self.steps_spin.value())
        st.batch = self.batch_spin.value()
        st.patch = self.patch_spin.value()
        st.lr = float(self.lr_spin.value())
        st.val_every = self.val_every_spin.value()
        st.features = self.features_spin.value()
        st.blocks = self.blocks_spin.value()
        speed = self._speed()
        st.steps_per_s = speed[0] if speed[2] else None
        st.rough_steps_per_s = speed[0]

    def _settings_key(self) -> tuple:
        return (self.device_combo.currentData(), self.base_combo.currentData(), self.scale_combo.currentData(),
                self.batch_spin.value(), self.patch_spin.value(), self.features_spin.value(),
                self.blocks_spin.value(), self.jpeg_radio.isChecked())

    def _parameters(self) -> int:
        base = self.base_combo.currentData()
        key = (base, self.scale_combo.currentData(), self.features_spin.value(), self.blocks_spin.value())
        if key not in self._params_cache:
            try:
                if base:
                    _name, path = registry.resolve_model_path(base, None)
                    mf = registry.read_model_file(path)
                    count = sum(v.numel() for v in mf.state_dict.values())
                else:
                    count = count_parameters(MLRN(scale=key[1], features=key[2], blocks=key[3]))
            except (registry.ModelError, ValueError, TypeError) as exc:
                log.warning("cannot size the base model: %s", exc)
                count = 900_000
            self._params_cache[key] = count
        return self._params_cache[key]

    def _speed(self) -> tuple[float, str, bool]:
        """(steps/s, where it comes from, measured?) for the current settings."""
        if self._measured is not None and self._measured[0] == self._settings_key():
            return self._measured[1], f"measured on {self._measured[2]}", True
        import torch

        try:
            device = pick_device(self.device_combo.currentData())
        except Exception:  # noqa: BLE001 - DeviceError; the estimate falls back to the CPU
            device = torch.device("cpu")
        rate = rough_steps_per_s(device.type, self._parameters(), self.batch_spin.value(), self.patch_spin.value(),
                                 torch.get_num_threads())
        return rate, f"rough estimate for {device.type.upper()}, not measured: press Measure speed", False

    def _name_error(self) -> str | None:
        name = self.name_edit.text().strip()
        if not name:
            return "Give the new model a name."
        try:
            registry.validate_name(name)
        except registry.ModelError as exc:
            return str(exc)
        return None

    def _update_estimate(self) -> None:
        self._store()
        st = self.state
        rate, source, _measured = self._speed()
        steps = st.planned_steps() or 0
        passes = passes_over_data(steps, st.batch, st.patch, st.scale, st.train_pixels())
        if st.budget_minutes:
            head = f"≈ {fmt_steps(steps)} steps in {fmt_duration(st.minutes * 60)}"
        else:
            head = f"{fmt_steps(steps)} steps ≈ {fmt_duration(steps / rate if rate > 0 else None)}"
        text = (f"{head}, about {passes:.1f} passes over your photos' pixels "
                f"({rate:.2f} steps/s, {source}).")
        if st.budget_minutes:
            text += " The hold-out checks count toward the time."
        if steps < 300:
            text += " A short run: expect the result to stay close to the starting model."
        if self._speed_job is not None:
            text += " Measuring…"
        self.estimate_label.setText(text)

    # -- slots
    @Slot(int)
    def _on_scale_combo_changed(self, _index: int) -> None:
        self._fill_bases(self.base_combo.currentData() or None)
        if not self._name_edited:
            self.state.scale = int(self.scale_combo.currentData())
            self.name_edit.setText(self.state.default_name())
        self._on_settings_changed()

    @Slot(int)
    def _on_device_combo_changed(self, _index: int) -> None:
        self._on_settings_changed()

    @Slot(str)
    def _on_name_edit_edited(self, _text: str) -> None:
        self._name_edited = True

    @Slot(str)
    def _on_name_edit_changed(self, _text: str) -> None:
        error = self._name_error()
        name = self.name_edit.text().strip()
        if error:
            self.name_note.setText(error)
            self.name_note.setStyleSheet(ERROR_STYLE)
        elif registry.user_model_path(name).exists():
            self.name_note.setText(f"You already have a model named '{name}'; you will be asked before it is "
                                   "replaced.")
            self.name_note.setStyleSheet(WARN_STYLE)
        else:
            self.name_note.setText("Saved with your models, with a card describing how it was trained.")
            self.name_note.setStyleSheet("")
        self.completeChanged.emit()

    @Slot()
    def _on_settings_changed(self, *_args) -> None:
        scratch = not self.base_combo.currentData()
        if scratch != self._scratch:  # a new network learns with a higher rate than a fine-tune
            self._scratch = scratch
            self.lr_spin.setValue(SCRATCH_LR if scratch else FT_LR)
        self.features_spin.setEnabled(scratch)
        self.blocks_spin.setEnabled(scratch)
        for w in (self.jpeg_min, self.jpeg_max, self.noise_spin):
            w.setEnabled(self.jpeg_radio.isChecked())
        self.minutes_spin.setEnabled(self.minutes_radio.isChecked())
        self.steps_spin.setEnabled(self.steps_radio.isChecked())
        self._update_estimate()
        small = self.state.too_small()
        if small:
            self.size_note.setText(f"{len(small)} photo{'s are' if len(small) != 1 else ' is'} smaller than one "
                                   f"{self.state.min_train_side} px training patch at x{self.state.scale} and "
                                   "will not be used (a smaller patch size keeps them).")
        self.size_note.setVisible(bool(small))
        self.completeChanged.emit()

    @Slot()
    def _on_measure_button_clicked(self) -> None:
        self._store()
        st = self.state
        cfg = TrainConfig(data=tuple(st.folders), out="speed", scale=st.scale, max_steps=1, batch=st.batch,
                          patch=st.patch, device=st.device, init=st.base, features=st.features, blocks=st.blocks,
                          jpeg_quality=st.jpeg_quality if st.jpeg else None,
                          noise_sigma=st.noise_sigma if st.jpeg else 0.0)
        job = SpeedJob(cfg)
        job.measured.connect(self._on_speed_measured)
        job.failed.connect(self._on_speed_failed)
        job.finished.connect(self._on_speed_finished)
        self._speed_job = job
        self._speed_key = self._settings_key()
        self.measure_button.setEnabled(False)
        self.measure_button.setText("Measuring…")
        self.runner.start(job)
        self._update_estimate()

    @Slot(float, str)
    def _on_speed_measured(self, rate: float, device: str) -> None:
        if self.sender() is self._speed_job:
            self._measured = (self._speed_key, rate, device)

    @Slot(str)
    def _on_speed_failed(self, message: str) -> None:
        if self.sender() is self._speed_job:
            QMessageBox.warning(self, "Speed measurement failed", f"The speed could not be measured: {message}")

    @Slot()
    def _on_speed_finished(self) -> None:
        if self.sender() is not self._speed_job:
            return
        self._speed_job = None
        self.measure_button.setEnabled(True)
        self.measure_button.setText("Measure speed")
        self._update_estimate()

    @property
    def measuring(self) -> bool:
        return self._speed_job is not None


# --- Hold-out ---------------------------------------------------------------------------------------


class HoldoutPage(QWizardPage):
    """The photos that are never trained on and measure the result; ticked automatically, editable."""

    def __init__(self, state: WizardState, thumbnails: dict[str, QImage]) -> None:
        super().__init__()
        self.state = state
        self.thumbnails = thumbnails
        self.setTitle("Hold-out photos")
        self.setSubTitle("The ticked photos are never trained on. After training they are upscaled by bicubic, the "
                         "starting model and the new model and compared with the originals: that is the honest "
                         "score. Pick photos typical of your work.")
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")
        self.list = _thumb_list()
        self.list.itemChanged.connect(self._on_list_item_changed)
        self.auto_button = QPushButton(f"Pick automatically ({HOLDOUT_FRACTION:.0%})")
        self.auto_button.clicked.connect(self._on_auto_button_clicked)
        self.count_label = wrap_label()
        row = QHBoxLayout()
        row.addWidget(self.count_label, 1)
        row.addWidget(self.auto_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        files = self.state.candidates()
        names = {str(p) for p in files}
        chosen = [h for h in self.state.holdout if h in names]
        if not chosen or len(chosen) >= len(files):
            chosen = [str(p) for p in pick_holdout(files)]
        self._fill(files, set(chosen))

    def _fill(self, files: list[Path], chosen: set[str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        placeholder = _placeholder_icon()
        for path in files:
            item = QListWidgetItem(path.name)
            image = self.thumbnails.get(str(path))
            item.setIcon(QIcon(QPixmap.fromImage(image)) if image is not None else placeholder)
            item.setToolTip(str(path))
            item.setData(PATH_ROLE, str(path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if str(path) in chosen else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._update()

    def checked(self) -> list[str]:
        return [self.list.item(i).data(PATH_ROLE) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def _update(self) -> None:
        held, total = len(self.checked()), self.list.count()
        text = f"{held} held out, {total - held} to train on."
        if held == 0:
            text += " Tick at least one photo to hold out."
        elif held == total:
            text += " Leave at least one photo to train on."
        self.count_label.setText(text)
        self.count_label.setStyleSheet(ERROR_STYLE if held in (0, total) else "")
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        held = len(self.checked())
        return 0 < held < self.list.count()

    def validatePage(self) -> bool:  # noqa: N802 - Qt override
        self.state.holdout = self.checked()
        try:
            self.state.prepare_run()
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self, "Cannot start training", f"The training run cannot be set up: {exc}")
            return False
        return True

    @Slot(QListWidgetItem)
    def _on_list_item_changed(self, _item: QListWidgetItem) -> None:
        self._update()

    @Slot()
    def _on_auto_button_clicked(self) -> None:
        files = self.state.candidates()
        self._fill(files, {str(p) for p in pick_holdout(files)})
