"""Helpers shared by the fine-tuning wizard's pages: page ids, message colours, labels, grids, tables and
thumbnail lists."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QListView,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

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


class WrapTable(QTableWidget):
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


def placeholder_icon(side: int = 96) -> QIcon:
    pix = QPixmap(side, side)
    pix.fill(QColor(200, 200, 200))
    return QIcon(pix)


def thumb_list() -> QListWidget:
    view = QListWidget()
    view.setViewMode(QListView.ViewMode.IconMode)
    view.setIconSize(QSize(96, 96))
    view.setGridSize(QSize(122, 124))
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setMovement(QListView.Movement.Static)
    view.setUniformItemSizes(True)
    # camera names end in the frame number (DSC_0421.JPG, IMG_20231014_153012.jpg): a long one loses its start,
    # never the number that tells two photos apart (the tooltip has the whole path)
    view.setTextElideMode(Qt.TextElideMode.ElideLeft)
    view.setWordWrap(False)
    return view
