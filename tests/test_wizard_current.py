"""CurrentJob: the one background job a wizard page runs, finished once, with its error, in the GUI thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject

from app.wizard.current import CurrentJob
from app.worker import Job, JobRunner


class FailingJob(Job):
    def work(self) -> None:
        raise OSError("disk full")


class WaitingJob(Job):
    """Runs until it is asked to stop, or until ``release`` is set, then fails if told to."""

    def __init__(self, fail: str = "") -> None:
        super().__init__()
        self.release = threading.Event()
        self.fail = fail

    def work(self) -> None:
        while not self.stopping and not self.release.wait(0.01):
            pass
        if self.fail:
            raise RuntimeError(self.fail)


@pytest.fixture
def parts(qtbot):
    owner = QObject()
    runner = JobRunner(owner)
    done: list[tuple[str, bool]] = []  # (error, whether the GUI thread ran it)
    current = CurrentJob(
        runner, lambda error: done.append((error, threading.current_thread() is threading.main_thread())), owner
    )
    yield current, runner, done
    runner.stop_all()


def test_a_failed_job_is_done_once_with_its_message(qtbot, parts) -> None:
    current, _runner, done = parts
    current.start(FailingJob())
    assert current.busy
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert done == [("OSError: disk full", True)]
    assert not current.busy and current.job is None


def test_a_stopped_job_is_done_without_error(qtbot, parts) -> None:
    current, _runner, done = parts
    job = WaitingJob()
    current.start(job)
    assert current.is_current(job) and not current.is_current(WaitingJob())
    current.stop()
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert done == [("", True)]
    assert not current.busy


def test_a_dropped_job_is_ignored_and_its_successor_reports(qtbot, parts) -> None:
    current, runner, done = parts
    first = WaitingJob(fail="the first one's failure")
    current.start(first)
    current.drop()  # forgotten at once: the page can start another while the first still stops
    assert not current.busy and not current.is_current(first)
    second = WaitingJob(fail="the second one's failure")
    current.start(second)
    qtbot.waitUntil(lambda: not runner.is_running(first), timeout=5000)
    assert done == []  # the first one's failure and end never reached the page
    second.release.set()
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert done == [("RuntimeError: the second one's failure", True)]
    assert not current.busy
