"""The wizard's Hold-out page: the photos that are never trained on and measure the result."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from app.wizard.state import WizardState
from app.wizard.widgets import (
    ERROR_STYLE,
    PATH_ROLE,
    placeholder_icon,
    thumb_list,
    wrap_label,
)
from mlrn_core.finetune import HOLDOUT_FRACTION, pick_holdout


class HoldoutPage(QWizardPage):
    """The photos that are never trained on and measure the result; ticked automatically, editable."""

    def __init__(self, state: WizardState, thumbnails: dict[str, QImage]) -> None:
        super().__init__()
        self.state = state
        self.thumbnails = thumbnails
        self.setTitle("Hold-out photos")
        self.setSubTitle(
            "The ticked photos are never trained on. After training they are upscaled by bicubic, the "
            "starting model and the new model and compared with the originals: that is the honest "
            "score. Pick photos typical of your work."
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")
        self.list = thumb_list()
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
        placeholder = placeholder_icon()
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
        return [
            self.list.item(i).data(PATH_ROLE)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

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
