"""The wizard's before/after view: the region of a hold-out photo that training changed most, enlarged.

Three views side by side (the starting point, the fine-tuned model, the original photo) of one
:class:`app.wizard.jobs.Comparison`, zoomed by whole pixels so single pixels can be judged, and a
"Show the differences" toggle that puts the amplified difference in the middle view.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QGridLayout, QGroupBox, QLabel, QSizePolicy, QVBoxLayout

from app.wizard.jobs import Comparison

VIEW_SIDE = 192


class BeforeAfterView(QGroupBox):
    """Reference | fine-tuned (or the difference) | original, for one :class:`Comparison`."""

    def __init__(self, title: str, side: int = VIEW_SIDE) -> None:
        super().__init__(title)
        self._comparison: Comparison | None = None
        self._tuned_caption = "Fine-tuned"
        self.reference_view, self.tuned_view, self.original_view = (self._view(side) for _ in range(3))
        self.reference_caption = QLabel("Before")
        self.tuned_caption = QLabel("Fine-tuned")
        self.original_caption = QLabel("Original")
        grid = QGridLayout()
        for col, (caption, view) in enumerate(
            (
                (self.reference_caption, self.reference_view),
                (self.tuned_caption, self.tuned_view),
                (self.original_caption, self.original_view),
            )
        ):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(caption, 0, col)
            grid.addWidget(view, 1, col)
        self.difference_check = QCheckBox("Show the differences (amplified)")
        self.difference_check.setToolTip(
            "The middle view shows how far the fine-tuned result is from the one before "
            "training, amplified so the largest changes are white: black where nothing "
            "changed"
        )
        self.difference_check.setEnabled(False)
        self.difference_check.toggled.connect(self._on_difference_check_toggled)
        self.note = QLabel("Waiting for the first hold-out check.")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.difference_check)
        layout.addWidget(self.note)
        self.note.setFixedWidth(3 * side + 2 * grid.horizontalSpacing())
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # never squeezed over the views

    @staticmethod
    def _view(side: int) -> QLabel:
        label = QLabel("—")
        label.setFixedSize(side, side)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("background: #222; color: #aaa;")
        return label

    @property
    def comparison(self) -> Comparison | None:
        return self._comparison

    def clear(self, note: str = "Waiting for the first hold-out check.") -> None:
        self._comparison = None
        for view in (self.reference_view, self.tuned_view, self.original_view):
            view.clear()
            view.setText("—")
        self.difference_check.setEnabled(False)
        self.note.setText(note)

    def set_comparison(self, comparison: Comparison, tuned_caption: str = "Fine-tuned") -> None:
        self._comparison = comparison
        self._tuned_caption = tuned_caption
        self.reference_caption.setText(comparison.reference_label)
        self.reference_view.setPixmap(self._zoom(comparison.reference, self.reference_view))
        self.original_view.setPixmap(self._zoom(comparison.original, self.original_view))
        self.difference_check.setEnabled(True)
        side = comparison.box[2]
        zoom = max(1, self.tuned_view.width() // max(1, side))
        change = (
            f"the outputs differ by {comparison.mean_change:.1f} levels of 255 on average there"
            if comparison.mean_change >= 0.05
            else "the outputs are practically identical everywhere"
        )
        self.note.setText(
            f"{comparison.photo}: the {side} px region where training changed the picture most, "
            f"enlarged {zoom}x; {change}."
        )
        self._show_tuned()

    def _show_tuned(self) -> None:
        c = self._comparison
        if c is None:
            return
        diff = self.difference_check.isChecked()
        self.tuned_view.setPixmap(self._zoom(c.difference if diff else c.tuned, self.tuned_view))
        self.tuned_caption.setText(f"Difference x{c.gain}" if diff else self._tuned_caption)

    @staticmethod
    def _zoom(image: QImage, view: QLabel) -> QPixmap:
        """Fit the crop to the view: shrink smoothly, or zoom a small crop by whole pixels to inspect it."""
        pix = QPixmap.fromImage(image)
        w, h = view.width(), view.height()
        if pix.width() > w or pix.height() > h:
            return pix.scaled(w, h, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        zoom = min(w // max(1, pix.width()), h // max(1, pix.height()))
        if zoom > 1:
            pix = pix.scaled(
                pix.width() * zoom,
                pix.height() * zoom,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        return pix

    @Slot(bool)
    def _on_difference_check_toggled(self, _checked: bool) -> None:
        self._show_tuned()
