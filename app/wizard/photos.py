"""The wizard's first page, Photos: folders of the user's photos, a background scan, thumbnails, what is
skipped and why, and unfinished runs to resume.

Slots that receive job signals check ``self.sender()`` against the job they are waiting for, so a result
from a superseded job (a rescan after adding a folder) is ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizardPage,
)

from app.wizard.current import CurrentJob
from app.wizard.jobs import (
    ScanJob,
)
from app.wizard.state import WizardState
from app.wizard.widgets import (
    ERROR_STYLE,
    PATH_ROLE,
    SETUP,
    TRAINING,
    WARN_STYLE,
    WrapTable,
    placeholder_icon,
    thumb_list,
    wrap_label,
)
from app.worker import JobRunner
from mlrn_core.finetune import FEW_IMAGES
from mlrn_core.runs import RunInfo, discard_run, unfinished_runs

log = logging.getLogger(__name__)


def skip_summary(reasons: list[str]) -> str:
    """'2 too small, 1 unreadable, 1 duplicate': the skip reasons counted by kind, most frequent first."""
    kinds = ("too small", "unreadable", "duplicate")
    counts: dict[str, int] = {}
    for reason in reasons:
        kind = next((k for k in kinds if reason.startswith(k)), "other")
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


class PhotosPage(QWizardPage):
    """Folders of the user's photos: a background scan, thumbnails, what is skipped and why."""

    def __init__(self, state: WizardState, runner: JobRunner, thumbnails: dict[str, QImage]) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self.thumbnails = thumbnails
        self.scan = CurrentJob(runner, self._on_scan_done, self)
        self._scanning = False
        self._runs: list[RunInfo] = []
        self.setTitle("Your photos")
        self.setSubTitle(
            "Add one or more folders of your own full-resolution photos (sub-folders included). "
            "MLRN Studio learns from them on this computer; nothing leaves it."
        )
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

        self.thumbs = thumb_list()
        self.skipped_table = WrapTable(["Skipped file", "Why"])
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
        self.scan.drop()  # it finishes in the background; its results are ignored
        self.state.scan = None
        self.thumbs.clear()
        self.skipped_table.setRowCount(0)
        if not self.state.folders:
            self._scanning = False
            self.status_label.setText("No folder yet: press Add folder… or drop folders here.")
            self._update_buttons()
            return
        job = ScanJob(tuple(self.state.folders))
        job.counted.connect(self._on_scan_counted)
        job.scanned.connect(self._on_scan_scanned)
        job.thumbnail_ready.connect(self._on_scan_thumbnail_ready)
        self._scanning = True
        self.status_label.setStyleSheet("")
        self.status_label.setText("Looking for photos…")
        self._update_buttons()
        self.scan.start(job)

    @Slot(int)
    def _on_scan_counted(self, count: int) -> None:
        if self.scan.is_current(self.sender()):
            self.status_label.setText(f"Checking {count} image files (readable, size, duplicates)…")

    @Slot(object)
    def _on_scan_scanned(self, scan) -> None:
        if not self.scan.is_current(self.sender()):
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

    def _on_scan_done(self, error: str) -> None:
        self._scanning = False
        if error:
            self.status_label.setText(f"The scan failed: {error}")
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
        placeholder = placeholder_icon()
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
            + (f"; {len(skipped)} skipped: {skip_summary([r for _p, r in skipped])} (see the list)" if skipped else "")
            + "."
        )
        if n < 2:
            self.warning_label.setText(
                "At least 2 usable photos are needed: one to train on and one held out to "
                "check the result. Add a folder with more photos."
            )
        elif n < FEW_IMAGES:
            self.warning_label.setText(
                f"Only {n} usable photos: fine-tuning works best with {FEW_IMAGES} or more "
                "(about one in ten is held out to check the result)."
            )
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
            self,
            "Discard run",
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
