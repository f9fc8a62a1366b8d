"""The training run folder: its layout, and reading what a run says about itself.

A run folder holds ``ckpt.pt`` (the latest full state, for ``--resume``), ``model.pt`` (the best
weights by validation PSNR, loadable by ``mlrn upscale --model``), ``config.json`` (the
:class:`mlrn_core.trainer.TrainConfig`), ``events.jsonl`` (one JSON event per line) and, for runs the
wizard started, ``wizard.json`` (the wizard's own choices). :class:`RunFolder` is the one place these
names are spelled; the trainer writes the folder, the wizard and the scripts read it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrn_core import atomic, paths
from mlrn_core.terminal import fmt_steps


@dataclass(frozen=True)
class RunFolder:
    """Where each file of a run lives."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def checkpoint(self) -> Path:
        return self.path / "ckpt.pt"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def wizard(self) -> Path:
        return self.path / "wizard.json"

    def append_event(self, record: dict[str, Any]) -> None:
        """One line of events.jsonl (appended: a crash loses at most the line being written)."""
        with open(self.events, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_events(self) -> list[dict[str, Any]]:
        """events.jsonl as dicts (a half-written last line, e.g. after a crash, is ignored)."""
        events: list[dict[str, Any]] = []
        try:
            text = self.events.read_text(encoding="utf-8")
        except OSError:
            return events
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's events.jsonl as dicts; see :meth:`RunFolder.read_events`."""
    return RunFolder(run_dir).read_events()


@dataclass
class RunInfo:
    """What a run folder says about itself (from config.json, wizard.json and events.jsonl)."""

    path: Path
    config: dict[str, Any]
    wizard: dict[str, Any] = field(default_factory=dict)
    step: int = 0  # the step of the last checkpoint (where a resume continues)
    finished: bool = False  # reached its budget (a stopped or crashed run is not finished)
    has_checkpoint: bool = False
    best_psnr: float | None = None

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def name(self) -> str:
        return str(self.wizard.get("name") or self.path.name)

    @property
    def resumable(self) -> bool:
        return self.has_checkpoint and not self.finished

    def describe(self) -> str:
        budget = self.config.get("max_steps")
        minutes = self.config.get("max_minutes")
        limit = f"{fmt_steps(budget)} steps" if budget else f"{minutes:g} min" if minutes else "?"
        best = f", best hold-out {self.best_psnr:.2f} dB" if self.best_psnr is not None else ""
        when = ""
        with contextlib.suppress(OSError):
            saved = _dt.datetime.fromtimestamp(self.folder.checkpoint.stat().st_mtime)
            when = saved.strftime(" (saved %Y-%m-%d %H:%M)")
        return f"{self.name}: step {fmt_steps(self.step)} of {limit}{best}{when}"


def read_run(run_dir: Path) -> RunInfo | None:
    """A run folder's state, or None when it is not a training run (no readable config.json)."""
    folder = RunFolder(run_dir)
    try:
        config = json.loads(folder.config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wizard: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        wizard = json.loads(folder.wizard.read_text(encoding="utf-8"))
    info = RunInfo(folder.path, config, wizard, has_checkpoint=folder.checkpoint.exists())
    for ev in folder.read_events():
        kind = ev.get("event")
        if kind == "checkpoint":
            info.step = int(ev.get("step", 0))
        elif kind == "validation":
            info.best_psnr = ev.get("best_psnr", info.best_psnr)
        elif kind == "finished":
            info.finished = not ev.get("stopped", False)
        elif kind == "started":
            info.finished = False  # a later start (a resume) reopens the run
    return info


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every training run in the runs folder, newest first."""
    folder = runs_dir or paths.user_runs_dir()
    runs = [r for d in folder.iterdir() if d.is_dir() and (r := read_run(d)) is not None] if folder.is_dir() else []
    runs.sort(key=lambda r: r.folder.config.stat().st_mtime, reverse=True)
    return runs


def unfinished_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Runs that were stopped or interrupted (a checkpoint exists, the budget was not reached)."""
    return [r for r in list_runs(runs_dir) if r.resumable]


def free_run_dir(name: str, runs_dir: Path | None = None) -> Path:
    """``runs/<name>``, or ``runs/<name> (2)`` ... when that folder is taken."""
    folder = runs_dir or paths.user_runs_dir()
    safe = "".join(c if c.isalnum() or c in " ._+-" else "_" for c in name).strip() or "run"
    candidate, i = folder / safe, 2
    while candidate.exists():
        candidate = folder / f"{safe} ({i})"
        i += 1
    return candidate


def write_wizard_file(run_dir: Path, choices: dict[str, Any]) -> None:
    """The wizard's choices for a run (atomically: a reopened wizard never reads half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(RunFolder(run_dir).wizard, choices)


def discard_run(run: RunInfo) -> None:
    """Delete a run folder (only one the runs folder holds, never anything outside it)."""
    runs_root = paths.user_runs_dir().resolve()
    target = run.path.resolve()
    if target.parent != runs_root:
        raise ValueError(f"refusing to delete '{target}': it is not a run in {runs_root}")
    shutil.rmtree(target)
