"""The wizard's Training page.

Runs :class:`mlrn_core.trainer.Trainer` in a :class:`app.wizard.jobs.TrainJob` and shows its events: loss
and hold-out PSNR curves (base and bicubic as reference lines), a before/after crop at each hold-out
check, elapsed and remaining time, pause / resume / stop, continue after a stop, and start over when a
run fails before its first checkpoint.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizardPage,
)

from app.wizard.before_after import BeforeAfterView
from app.wizard.chart import LineChart, Series
from app.wizard.current import CurrentJob
from app.wizard.jobs import Comparison, TrainJob
from app.wizard.state import WizardState
from app.wizard.widgets import (
    ERROR_STYLE,
    wrap_label,
)
from app.worker import JobRunner
from mlrn_core import paths
from mlrn_core.runs import RunFolder, read_events
from mlrn_core.terminal import fmt_duration, fmt_steps
from mlrn_core.trainer import (
    CheckpointEvent,
    FinishedEvent,
    StartedEvent,
    StepEvent,
    ValidationEvent,
)

log = logging.getLogger(__name__)

MAX_CHART_POINTS = 1500  # the curves are thinned to this many points for drawing


class TrainingPage(QWizardPage):
    """Runs the trainer in a worker thread: curves, before/after crop, time, pause/resume/stop/continue."""

    def __init__(self, state: WizardState, runner: JobRunner) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self.training = CurrentJob(runner, self._on_training_done, self)
        self._started_for: Path | None = None
        self._finished: FinishedEvent | None = None
        self._error = ""
        self._paused = False
        self._max_steps: int | None = None
        self._loss: list[tuple[float, float]] = []
        self._psnr: list[tuple[float, float]] = []
        self._base_psnr: float | None = None
        self._bicubic_psnr: float | None = None
        self._chart_timer = QTimer(self, singleShot=True, interval=250)
        self._chart_timer.timeout.connect(self._refresh_charts)
        self.setTitle("Training")
        self.setSubTitle(
            "Your model is learning from your photos. The hold-out is checked regularly; the best "
            "checkpoint by hold-out PSNR is the one kept."
        )

        self.header_label = wrap_label("Starting…")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.time_label = QLabel("elapsed --:--  ·  remaining --:--")
        self.loss_chart = LineChart("Training loss (L1)", "waiting for the first steps")
        self.psnr_chart = LineChart("Hold-out PSNR (dB)", "waiting for the first hold-out check")
        charts = QHBoxLayout()
        charts.addWidget(self.loss_chart)
        charts.addWidget(self.psnr_chart)

        self.preview = BeforeAfterView("What training changed on a hold-out photo (updated at each check)")

        self.psnr_label = wrap_label()
        self.status_label = wrap_label()
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("Continue training")
        self.pause_button.setToolTip("Pause between steps (a minute budget keeps counting while paused)")
        self.stop_button.setToolTip("Stop now: the current state is checked and saved, and can be continued later")
        self.continue_button.setToolTip("Continue this run from its last checkpoint")
        self.restart_button = QPushButton("Start over")
        self.restart_button.setToolTip("The run could not start: go back to the first page and change the settings")
        self.restart_button.clicked.connect(self._on_restart_button_clicked)
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.continue_button.clicked.connect(self._on_continue_button_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.time_label, 1)
        for b in (self.pause_button, self.resume_button, self.stop_button, self.continue_button, self.restart_button):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addWidget(self.header_label)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        layout.addLayout(charts, 1)
        layout.addWidget(self.psnr_label)
        layout.addWidget(self.preview)
        layout.addWidget(self.status_label)
        self._update_buttons()

    # -- QWizardPage
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        if self.state.run_dir is not None and self._started_for != self.state.run_dir:
            self._reset()
            if self.state.resume:
                self._load_history(self.state.run_dir)
            self.start(resume=self.state.resume)

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return (
            not self.training.busy and self.state.run_dir is not None and RunFolder(self.state.run_dir).model.exists()
        )

    @property
    def running(self) -> bool:
        """True while the training thread runs (false as soon as a shutdown has waited for it)."""
        return self.training.job is not None and self.runner.is_running(self.training.job)

    @property
    def finished_event(self) -> FinishedEvent | None:
        return self._finished

    # -- the run
    def start(self, resume: bool) -> None:
        cfg = self.state.cfg
        if cfg is None or self.training.busy:
            return
        self._started_for = self.state.run_dir
        self._finished = None
        self._error = ""
        self._paused = False
        self._max_steps = cfg.max_steps
        job = TrainJob(cfg, resume=resume, crops=tuple(self.state.holdout_crops()), crop_side=self.state.holdout_side)
        job.event.connect(self._on_job_event)
        job.preview.connect(self._on_job_preview)
        self.training.start(job)  # before the buttons are updated: they read the running job
        self.header_label.setText(
            ("Resuming" if resume else "Starting") + f" '{self.state.name}': loading the photos and the starting model…"
        )
        self.status_label.setStyleSheet("")
        self.status_label.setText(f"Run folder: {self.state.run_dir}")
        self._update_buttons()
        self.completeChanged.emit()

    def stop(self) -> None:
        if self.training.job is not None:
            self.training.job.stop()
            self.header_label.setText("Stopping: finishing the step, checking the hold-out and saving a checkpoint…")
            self._update_buttons()

    def _reset(self) -> None:
        self._loss.clear()
        self._psnr.clear()
        self._base_psnr = self._bicubic_psnr = None
        self.psnr_label.clear()
        self.preview.clear()
        self._refresh_charts()

    def _load_history(self, run_dir: Path) -> None:
        """Fill the curves of a resumed run from its events.jsonl."""
        for ev in read_events(run_dir):
            kind = ev.get("event")
            if kind == "step" and isinstance(ev.get("loss"), (int, float)):
                self._add_point(self._loss, ev["step"], ev["loss"])
            elif kind == "validation":
                self._add_point(self._psnr, ev["step"], ev["psnr"])
                self._bicubic_psnr = ev.get("bicubic_psnr", self._bicubic_psnr)
                self._base_psnr = ev.get("base_psnr", self._base_psnr)
        self._refresh_charts()

    @staticmethod
    def _add_point(points: list[tuple[float, float]], step: float, value: float) -> None:
        while points and points[-1][0] >= step:  # a resumed run repeats the steps after its checkpoint
            points.pop()
        points.append((float(step), float(value)))

    def _refresh_charts(self) -> None:
        loss = self._loss
        if len(loss) > MAX_CHART_POINTS:
            every = math.ceil(len(loss) / MAX_CHART_POINTS)
            loss = loss[::every] + [loss[-1]]
        smooth, value = [], None
        for x, y in self._loss:
            value = y if value is None else 0.9 * value + 0.1 * y
            smooth.append((x, value))
        if len(smooth) > MAX_CHART_POINTS:
            every = math.ceil(len(smooth) / MAX_CHART_POINTS)
            smooth = smooth[::every] + [smooth[-1]]
        self.loss_chart.set_series(
            [Series("loss", "#9bb7d4", loss, width=1.0), Series("smoothed", "#1f4e79", smooth, width=2.0)]
        )
        psnr = [Series("fine-tuned", "#c0392b", self._psnr, width=2.0, markers=True)]
        if self._base_psnr is not None:
            psnr.append(Series("base", "#2e86c1", [(0, self._base_psnr)], hline=True, dashed=True))
        if self._bicubic_psnr is not None:
            psnr.append(Series("bicubic", "#7f8c8d", [(0, self._bicubic_psnr)], hline=True, dashed=True))
        self.psnr_chart.set_series(psnr)

    def _update_buttons(self) -> None:
        running = self.training.job is not None and not self.training.job.stopping
        self.pause_button.setEnabled(running and not self._paused)
        self.resume_button.setEnabled(running and self._paused)
        self.stop_button.setEnabled(running)
        can_continue = (
            not self.training.busy
            and self.state.run_dir is not None
            and RunFolder(self.state.run_dir).checkpoint.exists()
            and (self._finished is None or self._finished.stopped)
        )
        self.continue_button.setEnabled(can_continue)
        self.continue_button.setVisible(can_continue)
        # a run that failed before its first checkpoint has nothing to continue: offer to change the settings
        can_restart = (
            not self.training.busy
            and bool(self._error)
            and self.state.run_dir is not None
            and not RunFolder(self.state.run_dir).checkpoint.exists()
        )
        self.restart_button.setVisible(can_restart)

    def _show_time(self, elapsed: float, eta: float | None) -> None:
        self.time_label.setText(f"elapsed {fmt_duration(elapsed)}  ·  remaining {fmt_duration(eta)}")
        cfg = self.state.cfg
        if not self._max_steps and cfg is not None and cfg.max_minutes:  # a step budget sets it by the step
            self.progress.setValue(round(1000 * min(1.0, elapsed / (cfg.max_minutes * 60))))

    # -- job signals
    @Slot(object)
    def _on_job_event(self, ev) -> None:
        if not self.training.is_current(self.sender()):
            return
        if isinstance(ev, StartedEvent):
            self._max_steps = ev.max_steps
            what = "Resumed" if ev.resumed else "Training"
            self.header_label.setText(
                f"{what} '{self.state.name}' on {ev.device}: {ev.train_images} photos to "
                f"train on, {ev.val_images} held out" + (f", from step {ev.step}" if ev.resumed else "") + "."
            )
            if ev.skipped:
                names = "; ".join(f"{Path(p).name} ({why})" for p, why in ev.skipped[:5])
                more = f" and {len(ev.skipped) - 5} more" if len(ev.skipped) > 5 else ""
                self.status_label.setText(f"Skipped by the trainer: {names}{more}.")
        elif isinstance(ev, StepEvent):
            self._add_point(self._loss, ev.step, ev.loss)
            if self._max_steps:
                self.progress.setValue(round(1000 * min(1.0, ev.step / self._max_steps)))
            self._show_time(ev.elapsed_s, ev.eta_s)
            if not self._paused and not self.training.job.stopping:
                of = f" of {fmt_steps(self._max_steps)}" if self._max_steps else ""
                self.header_label.setText(
                    f"Training '{self.state.name}': step {fmt_steps(ev.step)}{of}, "
                    f"{ev.steps_per_s:.2f} steps/s, loss {ev.loss:.4f}."
                )
            self._chart_timer.start()
        elif isinstance(ev, ValidationEvent):
            self._add_point(self._psnr, ev.step, ev.psnr)
            self._bicubic_psnr = ev.bicubic_psnr
            self._base_psnr = ev.base_psnr
            parts = [f"current {ev.psnr:.2f} dB", f"best {ev.best_psnr:.2f} dB"]
            if ev.base_psnr is not None:
                parts.append(f"base {ev.base_psnr:.2f} dB")
            parts.append(f"bicubic {ev.bicubic_psnr:.2f} dB")
            self.psnr_label.setText(f"Hold-out PSNR at step {fmt_steps(ev.step)}: " + "  ·  ".join(parts))
            self._refresh_charts()
        elif isinstance(ev, CheckpointEvent):
            self.status_label.setText(f"Checkpoint saved at step {fmt_steps(ev.step)} in {self.state.run_dir}.")
        elif isinstance(ev, FinishedEvent):
            self._finished = ev
            self._refresh_charts()
            self.time_label.setText(
                f"elapsed {fmt_duration(ev.elapsed_s)}  ·  " + ("stopped" if ev.stopped else "done")
            )
            best = f" Best hold-out PSNR {ev.best_psnr:.2f} dB." if ev.best_psnr is not None else ""
            if ev.stopped:
                self.header_label.setText(
                    f"Stopped at step {fmt_steps(ev.step)}; the checkpoint is saved.{best} "
                    "Continue training, or press Next for the result of the best model so "
                    "far."
                )
            else:
                self.progress.setValue(1000)
                self.header_label.setText(
                    f"Finished: {fmt_steps(ev.step)} steps in {fmt_duration(ev.elapsed_s)}."
                    f"{best} Press Next for the result."
                )

    @Slot(object, int)
    def _on_job_preview(self, comparison: Comparison, step: int) -> None:
        self.preview.set_comparison(comparison, f"Fine-tuned, step {fmt_steps(step)}")

    def _on_training_done(self, error: str) -> None:
        self._error = error
        self._paused = False
        if self._error:
            self.header_label.setText("Training failed.")
            self.status_label.setText(f"Training failed: {self._error}")
            self.status_label.setStyleSheet(ERROR_STYLE)
        self._update_buttons()
        self.completeChanged.emit()

    # -- buttons
    @Slot()
    def _on_pause_button_clicked(self) -> None:
        if self.training.job is not None:
            self.training.job.pause()
            self._paused = True
            minutes = self.state.cfg is not None and self.state.cfg.max_minutes is not None
            self.header_label.setText(
                "Paused after the current step. Press Resume to go on"
                + (" (the time budget keeps counting while paused)." if minutes else ".")
            )
            self._update_buttons()

    @Slot()
    def _on_resume_button_clicked(self) -> None:
        if self.training.job is not None:
            self.training.job.unpause()
            self._paused = False
            self.header_label.setText("Resumed.")
            self._update_buttons()

    @Slot()
    def _on_stop_button_clicked(self) -> None:
        self.stop()

    @Slot()
    def _on_continue_button_clicked(self) -> None:
        self.start(resume=True)

    @Slot()
    def _on_restart_button_clicked(self) -> None:
        run_dir = self.state.run_dir
        fresh = run_dir is not None and not RunFolder(run_dir).checkpoint.exists()
        if fresh and run_dir.parent == paths.user_runs_dir():
            shutil.rmtree(run_dir, ignore_errors=True)  # it holds no training yet, only its set-up files
        self.state.run_dir = None
        self.state.cfg = None
        self.state.resume = False
        self._started_for = None
        self._error = ""
        self.status_label.setStyleSheet("")
        self._update_buttons()
        self.wizard().restart()
