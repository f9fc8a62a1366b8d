"""The "train on your own photos" wizard: fine-tune MLRN on a photographer's folders, honestly measured.

A package: five pages, a module each (``photos``, ``setup``, ``holdout``, ``training``, ``result``), their
shared ``state``, background ``jobs``, ``widgets``, the live ``chart`` and the ``before_after`` crop;
only :class:`TrainingWizard` (here) is used from outside. The pages: Photos (folders, scan, thumbnails,
what is skipped and why, and unfinished runs to resume), Setup (scale, base model, name, LR
degradation, device, budget with a speed estimate), Hold-out (photos never trained on, passed to the
trainer as ``exclude``; their most detailed regions are its ``val`` set), Training (the
:class:`mlrn_core.trainer.Trainer` that ``mlrn train`` uses, in a worker thread, with live curves and
a before/after crop, pause / resume / stop / continue) and Result (hold-out PSNR/SSIM of bicubic, base
and fine-tuned, a verdict, saving as a user model with its card).

Entry point for the main window: ``TrainingWizard(parent, scale, base_model)``; connect
``modelSaved(name)`` (emitted when the model was saved and the user chose to make it current).
Runs live in ``paths.user_runs_dir()/<name>``: closing the wizard mid-run asks, stops at the next step
with a checkpoint, and waits for the thread; the run can be resumed from the first page later.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QCoreApplication, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from app.wizard.holdout import HoldoutPage
from app.wizard.photos import PhotosPage
from app.wizard.result import ResultPage
from app.wizard.setup import SetupPage
from app.wizard.state import WizardState
from app.wizard.training import TrainingPage
from app.wizard.widgets import HOLDOUT, PHOTOS, RESULT, SETUP, TRAINING
from app.worker import JobRunner
from mlrn_core import registry

log = logging.getLogger(__name__)

__all__ = ["TrainingWizard", "PHOTOS", "SETUP", "HOLDOUT", "TRAINING", "RESULT"]


class TrainingWizard(QWizard):
    """Fine-tune a model on the user's photos. ``base_model``: a model name or file (None: the built-in)."""

    modelSaved = Signal(str)  # noqa: N815 - Qt signal naming

    def __init__(self, parent: QWidget | None = None, scale: int = 2, base_model: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train on your photos")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, False)
        self.resize(1000, 800)
        self.runner = JobRunner(self)
        self.state = WizardState(scale=scale if scale in (2, 3, 4) else 2)
        self.thumbnails: dict[str, QImage] = {}
        preferred = base_model or registry.builtin_name(self.state.scale)
        self.photos_page = PhotosPage(self.state, self.runner, self.thumbnails)
        self.setup_page = SetupPage(self.state, self.runner, preferred)
        self.holdout_page = HoldoutPage(self.state, self.thumbnails)
        self.training_page = TrainingPage(self.state, self.runner)
        self.result_page = ResultPage(self.state, self.runner)
        self.setPage(PHOTOS, self.photos_page)
        self.setPage(SETUP, self.setup_page)
        self.setPage(HOLDOUT, self.holdout_page)
        self.setPage(TRAINING, self.training_page)
        self.setPage(RESULT, self.result_page)
        self.setStartId(PHOTOS)
        self.result_page.saved.connect(self._on_result_page_saved)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def is_training(self) -> bool:
        return self.training_page.running

    def shutdown(self) -> None:
        """Stop every job (training stops at its next step and saves a checkpoint) and wait for the threads."""
        if self.training_page.running:
            self.training_page.stop()
        if not self.runner.busy:
            return
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.runner.stop_all(wait=True)
        finally:
            QGuiApplication.restoreOverrideCursor()

    def reject(self) -> None:  # Cancel, Esc and the window's close button
        if self.is_training:
            answer = QMessageBox.question(
                self,
                "Stop training?",
                "Training is still running. Stop it and close the wizard?\n\nA checkpoint is saved: you can "
                "resume the run later from the first page of this wizard.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.shutdown()
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    @Slot(str, bool)
    def _on_result_page_saved(self, name: str, make_current: bool) -> None:
        log.info("saved the fine-tuned model as '%s' (current: %s)", name, make_current)
        if make_current:
            self.modelSaved.emit(name)
