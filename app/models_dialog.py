"""The Models dialog: the user's own models with their model cards; rename, delete, export, import.

Lists :func:`mlrn_core.registry.list_models` (built-in models first and read-only, then the user's),
shows the selected model's Markdown card, and calls the registry for every change, so the files on
disk stay the single source of truth. Imports are validated by the registry before anything is
copied, on a background thread (a large or hostile file never freezes the window); a foreign file
(another project's weights, a random file) gets an error that names it; files in the user models folder
that cannot be used are listed under the models with the reason. ``modelsChanged`` is emitted after
every change so the main window can refresh its model list; ``importFinished(bool)`` ends every import.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.worker import Job, app_runner
from mlrn_core import model_summary, paths, registry
from mlrn_core.registry import ModelEntry, ModelError

log = logging.getLogger(__name__)

ENTRY_ROLE = Qt.ItemDataRole.UserRole
ERROR_STYLE = "color: #c0392b;"


def _card_markdown(entry: ModelEntry) -> str:
    """The model's card, or a short description built from its file when it has none."""
    card = entry.card.strip()
    if card:
        return card
    m = entry.info.get("metrics", {})
    psnr = m.get("set5_psnr", m.get("val_psnr"))
    lines = [f"# {entry.name}", "", f"MLRN x{entry.scale}, {entry.kind} model. This model has no card."]
    if isinstance(psnr, (int, float)):
        lines.append(f"\nPSNR: {psnr:.2f} dB")
    lines.append(f"\nFile: `{entry.path}`")
    return "\n".join(lines)


class ImportJob(Job):
    """Validates a model file (``name`` None: reads it and builds its network) or copies it in as ``name``."""

    checked = Signal(str)  # the source, valid
    imported = Signal(object)  # the new ModelEntry

    def __init__(self, source: Path, name: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.name = name

    def work(self) -> None:
        if self.name is None:
            registry.build_model(registry.read_model_file(self.source))
            self.checked.emit(str(self.source))
        else:
            self.imported.emit(registry.import_user_model(self.source, self.name))


class ModelsDialog(QDialog):
    """Browse models and their cards; rename, delete, export and import user models."""

    modelsChanged = Signal()  # noqa: N815 - Qt signal naming
    importFinished = Signal(bool)  # noqa: N815 - True when a model was imported

    def __init__(self, parent: QWidget | None = None, select: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(860, 560)
        self._entries: list[ModelEntry] = []

        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        self.card_view = QTextBrowser()
        self.card_view.setOpenExternalLinks(True)
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete…")
        self.export_button = QPushButton("Export…")
        self.import_button = QPushButton("Import…")
        self.rename_button.clicked.connect(self._on_rename_button_clicked)
        self.delete_button.clicked.connect(self._on_delete_button_clicked)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.import_button.clicked.connect(self._on_import_button_clicked)
        self.read_only_label = QLabel()
        self.read_only_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label = QLabel()  # model files that cannot be used, and why
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(ERROR_STYLE)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._import_source: Path | None = None

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        for b in (self.rename_button, self.delete_button, self.export_button, self.import_button):
            buttons.addWidget(b)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.read_only_label)
        left_layout.addWidget(self.problems_label)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.card_view)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        folder = QLabel(f"Your models are kept in {paths.user_models_dir()}")
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(folder)
        layout.addWidget(close)
        self.refresh(select)

    # -- listing
    def refresh(self, select: str | None = None) -> None:
        """Re-read the registry and select ``select`` (or the first model)."""
        problems: list[tuple[Path, str]] = []
        try:
            self._entries, problems = registry.scan_models()
        except OSError as exc:
            log.warning("cannot list models: %s", exc)
            self._entries = []
            self._show_status(f"Cannot read the models folder: {exc}", error=True)
        self.problems_label.setText("\n".join(reason for _path, reason in problems))
        self.problems_label.setVisible(bool(problems))
        self.list.blockSignals(True)
        self.list.clear()
        groups = (("user", "Your models"), ("built-in", "Built-in models (read-only)"))
        selected_row = -1
        for kind, title in groups:
            entries = [e for e in self._entries if e.kind == kind]
            header = QListWidgetItem(title)
            font = QFont(header.font())
            font.setBold(True)
            header.setFont(font)
            header.setFlags(Qt.ItemFlag.ItemIsEnabled)  # shown in full colour, but not selectable
            self.list.addItem(header)
            if not entries:
                empty = QListWidgetItem(
                    "    none yet: train one with Train on your photos…,\n    or import a model file"
                    if kind == "user"
                    else "    none: reinstalling MLRN Studio restores them"
                )
                empty.setFlags(Qt.ItemFlag.NoItemFlags)
                self.list.addItem(empty)
            for e in entries:
                q = model_summary.quality(e.info)  # a gain on named images: PSNRs of different images mislead
                item = QListWidgetItem(f"    {e.name}  ·  x{e.scale}" + (f"\n        {q.short}" if q else ""))
                item.setData(ENTRY_ROLE, e.name)
                item.setToolTip(f"{q.long}\n{e.path}" if q else str(e.path))
                self.list.addItem(item)
                if e.name == select or (selected_row < 0 and select is None):
                    selected_row = self.list.count() - 1
        self.list.blockSignals(False)
        if selected_row >= 0:
            self.list.setCurrentRow(selected_row)
        self._show_current()

    def current_entry(self) -> ModelEntry | None:
        item = self.list.currentItem()
        name = item.data(ENTRY_ROLE) if item is not None else None
        return next((e for e in self._entries if e.name == name), None) if name else None

    def names(self, kind: str | None = None) -> list[str]:
        return [e.name for e in self._entries if kind is None or e.kind == kind]

    def _show_current(self) -> None:
        entry = self.current_entry()
        user = entry is not None and entry.kind == "user"
        for b in (self.rename_button, self.delete_button, self.export_button):
            b.setEnabled(user)
        if entry is None:
            self.card_view.setMarkdown("Select a model to see its card.")
            self.read_only_label.clear()
            return
        self.card_view.setMarkdown(_card_markdown(entry))
        self.read_only_label.setText(
            "" if user else "Built-in models ship with MLRN Studio and cannot be renamed, deleted or exported."
        )

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_list_current_changed(self, _current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self._show_current()

    # -- actions
    @Slot()
    def _on_rename_button_clicked(self) -> None:
        entry = self.current_entry()
        if entry is None or entry.kind != "user":
            return
        new, ok = QInputDialog.getText(self, "Rename model", f"New name for '{entry.name}':", text=entry.name)
        new = new.strip()
        if not ok or not new or new == entry.name:
            return
        try:
            registry.rename_user_model(entry.name, new)
        except (ModelError, OSError) as exc:
            QMessageBox.warning(self, "Cannot rename", f"Cannot rename '{entry.name}' to '{new}': {exc}")
            return
        self._show_status(f"Renamed '{entry.name}' to '{new}'.")
        self.refresh(new)
        self.modelsChanged.emit()

    @Slot()
    def _on_delete_button_clicked(self) -> None:
        entry = self.current_entry()
        if entry is None or entry.kind != "user":
            return
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete your model '{entry.name}'?\n\n{entry.path} and its model card are removed; this cannot be "
            "undone (export it first to keep a copy).",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            registry.delete_user_model(entry.name)
        except (ModelError, OSError) as exc:
            QMessageBox.warning(self, "Cannot delete", f"Cannot delete '{entry.path}': {exc}")
            return
        self._show_status(f"Deleted '{entry.name}'.")
        self.refresh()
        self.modelsChanged.emit()

    @Slot()
    def _on_export_button_clicked(self) -> None:
        entry = self.current_entry()
        if entry is None or entry.kind != "user":
            return
        target, _ = QFileDialog.getSaveFileName(
            self, "Export model", str(Path.home() / f"{entry.name}.pt"), "MLRN models (*.pt)"
        )
        if not target:
            return
        dest = Path(target)
        if dest.suffix.lower() != ".pt":
            dest = dest.with_name(dest.name + ".pt")
        try:
            out = registry.export_user_model(entry.name, dest)
        except (ModelError, OSError) as exc:
            QMessageBox.warning(self, "Cannot export", f"Cannot export '{entry.name}' to '{dest}': {exc}")
            return
        card = " and its card " + str(out.with_suffix(".md")) if entry.card_path.exists() else ""
        self._show_status(f"Exported '{entry.name}' to {out}{card}.")

    @Slot()
    def _on_import_button_clicked(self) -> None:
        source, _ = QFileDialog.getOpenFileName(
            self, "Import a model", str(Path.home()), "MLRN models (*.pt);;All files (*)"
        )
        if source:
            self.import_file(Path(source))

    def import_file(self, source: Path) -> bool:
        """Validate (in the background) and copy a model file into the user models; asks for a name when its
        own is taken. Returns False when an import is already running; ``importFinished`` tells the end."""
        if self._import_source is not None:
            self._show_status("An import is already running.", error=True)
            return False
        self.import_button.setEnabled(False)
        self._show_status(f"Checking '{source}'…")
        self._import_source = source
        job = ImportJob(source)
        # bound slots of this GUI-thread object, so Qt queues the calls here (a lambda would run in the job's
        # thread and build message boxes there)
        job.checked.connect(self._on_import_job_checked)
        job.failed.connect(self._on_import_job_failed)
        self._start(job)
        return True

    @staticmethod
    def _start(job: ImportJob) -> None:
        # the app's runner, not the dialog's: a dialog deleted while its import runs must not take the
        # running thread with it
        app_runner().start(job)

    @staticmethod
    def _wait_for_imports() -> None:
        app_runner().wait((ImportJob,))

    @Slot(str)
    def _on_import_job_checked(self, source_text: str) -> None:
        source = Path(source_text)
        name = source.stem
        problem = self._name_problem(name)
        while problem is not None:
            name, ok = QInputDialog.getText(
                self, "Import model", f"{problem}\nName for the imported model:", text=f"{source.stem} (imported)"
            )
            name = name.strip()
            if not ok or not name:
                self._show_status("Import cancelled.")
                self._import_done(False)
                return
            problem = self._name_problem(name)
        self._show_status(f"Importing '{source}' as '{name}'…")
        job = ImportJob(source, name)
        job.imported.connect(self._on_import_job_imported)
        job.failed.connect(self._on_import_job_failed)
        self._start(job)

    @Slot(object)
    def _on_import_job_imported(self, entry: ModelEntry) -> None:
        source = self._import_source
        self._show_status(f"Imported '{source}' as '{entry.name}' (x{entry.scale}).")
        self.refresh(entry.name)
        self.modelsChanged.emit()
        self._import_done(True)

    @Slot(str)
    def _on_import_job_failed(self, message: str) -> None:
        source = self._import_source
        self._show_status(f"'{source}' was not imported.", error=True)
        QMessageBox.warning(self, "Cannot import", f"'{source}' cannot be imported.\n\n{message}")
        self._import_done(False)

    def _import_done(self, ok: bool) -> None:
        self._import_source = None
        self.import_button.setEnabled(True)
        self.importFinished.emit(ok)

    def done(self, result: int) -> None:  # closing waits for a running import (it only copies a file)
        self._wait_for_imports()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self._wait_for_imports()
        super().closeEvent(event)

    @staticmethod
    def _name_problem(name: str) -> str | None:
        try:
            registry.validate_name(name)
        except ModelError as exc:
            return str(exc)
        if registry.user_model_path(name).exists():
            return f"You already have a model named '{name}'."
        return None
