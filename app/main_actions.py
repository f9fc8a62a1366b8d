"""The main window's actions, menus and toolbar (a mixin of :class:`app.main_window.MainWindow`).

Every command is a QAction added to the window, so its shortcut works whichever widget has the focus;
the menus and the toolbar show the same actions. The slots are the window's methods.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QStyle

from app.session import RAW_COLOUR_LABELS, raw_development_note

MODES = (("side", "Side by side"), ("split", "Split"), ("single", "Single"))


class WindowActions(QMainWindow):
    """Builds the actions (``self.open_action``, ``self.mode_actions``...), the menu bar and the toolbar."""

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work whichever widget has the focus
        return action

    def _build_actions(self) -> None:
        style = self.style()
        self.open_action = self._action(
            "&Open…", self._on_open_action_triggered, QKeySequence.StandardKey.Open, "Open one or more photos"
        )
        self.open_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
        self.save_action = self._action(
            "&Save Result…",
            self._on_save_action_triggered,
            QKeySequence.StandardKey.Save,
            "Save the MLRN result (the original is never overwritten)",
        )
        self.save_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton))
        self.batch_action = self._action(
            "&Batch Export…", self._on_batch_action_triggered, "Ctrl+B", "Upscale many photos or a whole folder"
        )
        self.open_model_action = self._action(
            "Open &Model File…",
            self._on_open_model_action_triggered,
            "Ctrl+M",
            "Use a model file (.pt) you trained or were given",
        )
        self.train_action = self._action(
            "&Train on My Photos…",
            self._on_train_action_triggered,
            "Ctrl+T",
            "Fine-tune a model on your own photos and see whether it beats the base on a hold-out",
        )
        self.models_action = self._action(
            "Manage &Models…", self._on_models_action_triggered, None, "Rename, delete, import or export your models"
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.raw_colour_group = QActionGroup(self)
        self.raw_colour_actions: dict[str, QAction] = {}
        for value, text in RAW_COLOUR_LABELS.items():
            action = self._action(
                text,
                functools.partial(self._apply_raw_colour, value),
                checkable=True,
                tip=f"Develop camera RAW files into {text}, with its ICC profile",
            )
            self.raw_colour_group.addAction(action)
            self.raw_colour_actions[value] = action
        self.mode_group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for mode, text in MODES:
            action = self._action(
                text,
                functools.partial(self._apply_mode, mode),
                checkable=True,
                tip={
                    "side": "Bicubic (A) and MLRN (B) next to each other",
                    "split": "One view with a divider to drag between A and B",
                    "single": "One image; flip between A and B in place",
                }[mode],
            )
            self.mode_group.addAction(action)
            self.mode_actions[mode] = action
        self.cycle_mode_action = self._action("Next Compare Mode", self._on_cycle_mode_action_triggered, "M")
        self.flip_action = self._action(
            "&Flip A/B",
            self._on_flip_action_triggered,
            ["\\", "X"],
            "Swap A and B in place (\\ or X) to see what changed",
        )
        self.fit_action = self._action("Fit", self.view_state.set_fit, "Ctrl+0", "Fit the image in the view")
        self.zoom_actions = [
            self._action(
                f"{pct}%",
                functools.partial(self.set_zoom_percent, pct),
                f"Ctrl+{pct // 100}",
                f"{pct}%: one output pixel is {pct // 100}x{pct // 100} screen pixels"
                + (" (nearest-neighbour, to judge pixels)" if pct > 100 else ""),
            )
            for pct in (100, 200, 400)
        ]
        self.zoom_in_action = self._action(
            "Zoom In", functools.partial(self._zoom_step, 1.5), [QKeySequence.StandardKey.ZoomIn, "Ctrl+="]
        )
        self.zoom_out_action = self._action(
            "Zoom Out", functools.partial(self._zoom_step, 1 / 1.5), QKeySequence.StandardKey.ZoomOut
        )
        self.next_action = self._action("Next Image", functools.partial(self._step_image, 1), "PgDown")
        self.prev_action = self._action("Previous Image", functools.partial(self._step_image, -1), "PgUp")
        self.render_action = self._action(
            "&Upscale", self._request_renders, "F5", "Upscale again / continue after a cancel"
        )
        self.cancel_action = self._action(
            "Cancel", self._on_cancel_action_triggered, "Esc", "Stop the upscale (after the current tile)"
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.save_action)
        file_menu.addSeparator()
        file_menu.addAction(self.batch_action)
        raw_menu = file_menu.addMenu("RAW &Colour Space")
        raw_menu.setToolTipsVisible(True)
        raw_menu.setToolTip(raw_development_note())
        for action in self.raw_colour_actions.values():
            raw_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&View")
        for action in self.mode_actions.values():
            view_menu.addAction(action)
        view_menu.addAction(self.cycle_mode_action)
        view_menu.addAction(self.flip_action)
        view_menu.addSeparator()
        view_menu.addAction(self.fit_action)
        for action in self.zoom_actions:
            view_menu.addAction(action)
        view_menu.addAction(self.zoom_in_action)
        view_menu.addAction(self.zoom_out_action)
        view_menu.addSeparator()
        view_menu.addAction(self.prev_action)
        view_menu.addAction(self.next_action)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self.open_model_action)
        model_menu.addAction(self.render_action)
        model_menu.addAction(self.cancel_action)
        model_menu.addSeparator()
        model_menu.addAction(self.train_action)
        model_menu.addAction(self.models_action)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.open_action)
        tb.addAction(self.save_action)
        tb.addSeparator()
        for action in self.mode_actions.values():
            tb.addAction(action)
        tb.addAction(self.flip_action)
        tb.addSeparator()
        tb.addAction(self.fit_action)
        for action in self.zoom_actions:
            tb.addAction(action)
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("Zoom 3200%") + 12)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.zoom_label.setToolTip("Wheel to zoom, drag to pan; both views move together. Double-click: fit / 100%")
        tb.addWidget(self.zoom_label)
