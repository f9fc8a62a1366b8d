"""The main window's status bar: messages on the left, then progress, cancel, sizes, timing, device, memory.

:class:`StatusFields` builds the widgets into a QStatusBar and fills them from the render session;
the window calls :meth:`StatusFields.update` when the session's status changes and a timer calls
:meth:`StatusFields.update_memory`.
"""

from __future__ import annotations

import torch
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton

from app.session import Progress, RenderSession
from app.status import MessageArea, format_bytes, process_memory_bytes
from mlrn_core.tiling import device_label


class StatusFields:
    """The widgets of the status bar (``messages``, ``progress``, ``size_label``...) and how they are filled."""

    def __init__(self, bar: QStatusBar, cancel_action: QAction) -> None:
        self.messages = MessageArea()
        bar.addWidget(self.messages, 1)
        self.progress = QProgressBar()
        # wide enough for the longest count the bar says ("888/888 tiles · 100% · eta 0:00:00") on one line
        widest = self.progress.fontMetrics().horizontalAdvance("8888/8888 tiles · 100% · eta 0:00:00")
        self.progress.setFixedWidth(widest + 24)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setDefaultAction(cancel_action)
        self.cancel_button.hide()
        self.size_label = QLabel()
        self.time_label = QLabel()
        self.device_label = QLabel()
        self.device_label.setToolTip(
            "Where and how the network ran for the image on the right: device, backend and precision "
            "(Device and Precision in the side panel)"
        )
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

    def set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def show_progress(self, progress: Progress) -> None:
        self.progress.setRange(0, progress.maximum)
        self.progress.setValue(progress.value)
        self.progress.setFormat(progress.text)
        if progress.tip:
            self.progress.setToolTip(progress.tip)

    def update(self, session: RenderSession, scale: int) -> None:
        """Input and output size of the current image, the MLRN render's time and the device."""
        pic = session.current.picture if session.current is not None else None
        if pic is not None:
            self.size_label.setText(f"{pic.width}×{pic.height} → {pic.width * scale}×{pic.height * scale}")
            self.size_label.setToolTip(
                f"Input {pic.width}×{pic.height} px, {pic.bit_depth}-bit {pic.source_format.upper()}; "
                f"output ×{scale}: {pic.width * scale}×{pic.height * scale} px"
            )
        else:
            self.size_label.setText("")
        self.time_label.setText(session.right_timing())
        self.time_label.setToolTip(session.right_image.label if session.right_key is not None else "")
        ran = session.right_path()  # the path the shown render took; else the device that will run
        self.device_label.setText(ran or device_label(session.device()))

    def update_memory(self, session: RenderSession) -> None:
        """Process memory, GPU memory in use and the render cache."""
        rss = process_memory_bytes()
        parts = []
        if rss is not None:
            parts.append(f"RAM {format_bytes(rss)}")
        if torch.cuda.is_available():
            parts.append(f"GPU {format_bytes(torch.cuda.memory_allocated())}")
        cache = session.cache
        parts.append(f"cache {format_bytes(cache.nbytes)}")
        self.memory_label.setText(" · ".join(parts))
        self.memory_label.setToolTip(
            f"Finished renders kept for instant flipping back: {len(cache)}, up to {format_bytes(cache.budget_bytes)}"
        )
