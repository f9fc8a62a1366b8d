"""Small widgets around the viewers: the message area, the no-model banner, the empty-state drop hint.

Errors go to :class:`MessageArea` in the status bar (the latest one with an icon, earlier ones in its
history menu) instead of modal boxes that stack up. Colours come from the palette so a dark system theme
stays readable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mlrn_core.imageio import SUPPORTED_EXTENSIONS, raw_available

MAX_HISTORY = 50


def process_memory_bytes() -> int | None:
    """Resident memory of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil  # optional: macOS and Windows

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - psutil missing or refusing: no number rather than an error
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class MessageArea(QWidget):
    """The latest message (info or error) with a history menu and a dismiss button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[tuple[float, str, bool]] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(6)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.history_button = QToolButton()
        self.history_button.setText("History")
        self.history_button.setAutoRaise(True)
        self.history_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.history_button.setToolTip("Earlier messages")
        self.history_menu = QMenu(self)
        self.history_button.setMenu(self.history_menu)
        self.history_button.hide()
        self.dismiss_button = QToolButton()
        self.dismiss_button.setAutoRaise(True)
        self.dismiss_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self.dismiss_button.setToolTip("Dismiss")
        self.dismiss_button.clicked.connect(self.clear)
        self.dismiss_button.hide()
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.history_button)
        layout.addWidget(self.dismiss_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clear)

    @property
    def current(self) -> str:
        return self.text.text()

    @property
    def errors(self) -> list[str]:
        return [text for _t, text, err in self.history if err]

    def show_error(self, text: str) -> None:
        self._show(text, error=True)

    def show_info(self, text: str, timeout_ms: int = 6000) -> None:
        self._show(text, error=False)
        if timeout_ms:
            self._timer.start(timeout_ms)

    def _show(self, text: str, error: bool) -> None:
        self._timer.stop()
        self.history.append((time.time(), text, error))
        del self.history[:-MAX_HISTORY]
        pixmap = QStyle.StandardPixmap.SP_MessageBoxWarning if error else QStyle.StandardPixmap.SP_MessageBoxInformation
        size = self.fontMetrics().height()
        self.icon.setPixmap(self.style().standardIcon(pixmap).pixmap(size, size))
        self.icon.show()
        self.text.setText(text)
        self.text.setToolTip(text)
        self.dismiss_button.setVisible(error)
        self._rebuild_menu()

    def _rebuild_menu(self) -> None:
        self.history_menu.clear()
        for stamp, text, error in reversed(self.history):
            prefix = "⚠ " if error else ""
            action = self.history_menu.addAction(f"{time.strftime('%H:%M:%S', time.localtime(stamp))}  {prefix}{text}")
            action.setEnabled(True)
        self.history_button.setVisible(len(self.history) > 1)

    def clear(self) -> None:
        self.text.clear()
        self.text.setToolTip("")
        self.icon.hide()
        self.dismiss_button.hide()


class Banner(QFrame):
    """A strip above the viewers for a lasting condition (no model for this scale) with one action."""

    action_clicked = Signal()

    def __init__(self, action_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        self.icon = QLabel()
        size = self.fontMetrics().height() + 4
        self.icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation).pixmap(size))
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.button = QPushButton(action_text)
        self.button.clicked.connect(self.action_clicked)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)

    @property
    def text(self) -> str:
        return self.label.text()

    def set_text(self, text: str) -> None:
        self.label.setText(text)


class DropHint(QWidget):
    """The empty state: where to drop photos, an Open button and the recent files."""

    open_clicked = Signal()
    recent_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(40, 40, 40, 40)
        outer.addStretch(1)
        title = QLabel("Drop photos here")
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 2.0)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        formats = ", ".join(sorted({e.lstrip(".").upper() for e in SUPPORTED_EXTENSIONS} - {"JPEG", "TIF"}))
        if raw_available():
            formats += ", camera RAW"
        sub = QLabel(
            f"One photo to compare bicubic and MLRN side by side, several to step through them, "
            f"a folder to batch-export.\n{formats}, 8 or 16 bits."
        )
        sub.setAlignment(Qt.AlignmentFlag.AlignCenter)
        sub.setWordWrap(True)
        self.open_button = QPushButton("Open images…")
        self.open_button.setToolTip("Ctrl+O")
        self.open_button.clicked.connect(self.open_clicked)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_button)
        row.addStretch(1)
        outer.addWidget(title)
        outer.addSpacing(6)
        outer.addWidget(sub)
        outer.addSpacing(14)
        outer.addLayout(row)
        self.recent_box = QVBoxLayout()
        self.recent_box.setSpacing(2)
        outer.addSpacing(18)
        outer.addLayout(self.recent_box)
        outer.addStretch(2)
        self._recent_widgets: list[QWidget] = []

    def set_recent(self, files: list[str]) -> None:
        for w in self._recent_widgets:
            self.recent_box.removeWidget(w)
            w.deleteLater()
        self._recent_widgets = []
        existing = [f for f in files if Path(f).exists()][:5]
        if not existing:
            return
        heading = QLabel("Recent")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        heading.setEnabled(False)
        self.recent_box.addWidget(heading)
        self._recent_widgets.append(heading)
        for f in existing:
            button = QPushButton(Path(f).name)
            button.setFlat(True)
            button.setToolTip(f)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _checked=False, f=f: self.recent_clicked.emit(f))
            self.recent_box.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
            self._recent_widgets.append(button)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.palette().color(QPalette.ColorRole.Mid), 2, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(16, 16, -16, -16), 14, 14)
        p.end()
