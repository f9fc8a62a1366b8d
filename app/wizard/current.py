"""The one background job a wizard page runs at a time (a scan, a speed measurement, training, scoring)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Slot

from app.worker import Job, JobRunner


class CurrentJob(QObject):
    """Starts a page's job through the app's one :class:`JobRunner`, keeps the error it reports, ignores the
    signals of a job it has replaced or dropped, and calls ``on_done(error)`` once, in the GUI thread, when its
    job has finished (``error`` is "" when the job succeeded). Pages connect their other signals themselves and
    check :meth:`is_current` on the sender, since a replaced job may still emit while it stops."""

    def __init__(self, runner: JobRunner, on_done: Callable[[str], None], parent: QObject) -> None:
        super().__init__(parent)
        self._runner = runner
        self._on_done = on_done
        self.job: Job | None = None
        self._error = ""

    @property
    def busy(self) -> bool:
        return self.job is not None

    def is_current(self, sender: QObject | None) -> bool:
        return sender is not None and sender is self.job

    def start(self, job: Job) -> None:
        """Run ``job`` (any earlier one should have been stopped or dropped)."""
        self.job, self._error = job, ""
        job.failed.connect(self._on_failed)
        job.finished.connect(self._on_finished)
        self._runner.start(job)

    def stop(self) -> None:
        """Ask the job to stop; ``on_done`` follows when it has."""
        if self.job is not None:
            self.job.stop()

    def drop(self) -> None:
        """Stop the job and forget it: it finishes in the background and ``on_done`` is not called for it."""
        self.stop()
        self.job = None

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self.is_current(self.sender()):
            self._error = message

    @Slot()
    def _on_finished(self) -> None:
        if not self.is_current(self.sender()):
            return
        self.job, error = None, self._error
        self._on_done(error)
