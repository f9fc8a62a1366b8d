"""The fine-tuning wizard's background jobs: folder scan, speed measurement, training, hold-out evaluation.

Each is an :class:`app.worker.Job` (a QObject moved to a QThread by :class:`app.worker.JobRunner`):
immutable inputs, results as signals, every exception reported through ``failed``. Training calls
:class:`mlrn_core.trainer.Trainer`, the engine behind ``mlrn train``; its events (frozen dataclasses)
are forwarded unchanged through a signal, and the validation preview is cropped and turned into a
QImage here so the GUI thread only shows it. Stopping is the trainer's cooperative flag, which always
saves a checkpoint, so a stopped run can be resumed.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage

from app.viewer import qimage_from_rgb8
from app.worker import Job
from mlrn_core import data as data_mod
from mlrn_core import paths, registry
from mlrn_core.difference import difference_image, most_changed_box
from mlrn_core.evaluate import evaluate_models, load_eval_images
from mlrn_core.finetune import write_holdout_crop
from mlrn_core.metrics import Score, imresize
from mlrn_core.tiling import TileRunner, pick_device, upscale_array
from mlrn_core.trainer import Event, StartedEvent, StepEvent, TrainConfig, Trainer, TrainingError

log = logging.getLogger(__name__)

THUMB_SIDE = 96
COMPARE_SIDE = 96  # HR pixels of the before/after region (shown enlarged)
COMPARE_PHOTOS = 3  # hold-out photos the Result page looks through for the most changed region
SPEED_STEPS = 12
SPEED_MAX_MINUTES = 1.0  # the trainer's clock, which includes loading the photos and the model
SPEED_PHOTOS = 4  # a step costs the same whatever the number of photos: load only a few to time it


def thumbnail(rgb: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


@dataclass(frozen=True)
class Comparison:
    """The region of a hold-out photo where the fine-tuned output differs most from the one before training."""

    reference: QImage  # before training: the base model's output (bicubic when trained from scratch)
    tuned: QImage
    original: QImage
    difference: QImage  # |tuned - reference| amplified (mlrn_core.difference)
    gain: int  # how much the difference is amplified
    reference_label: str
    photo: str  # the hold-out photo's file name
    box: tuple[int, int, int]  # y, x, side in the photo's HR pixels
    mean_change: float  # mean |tuned - reference| in the region, 0-255 units


def make_comparison(
    reference: np.ndarray, tuned: np.ndarray, hr: np.ndarray, scale: int, reference_label: str, photo: str
) -> Comparison:
    """Crop the three uint8 RGB images at the region where ``tuned`` and ``reference`` differ most."""
    y, x, side, change = most_changed_box(tuned, reference, COMPARE_SIDE, scale)
    crop = np.s_[y : y + side, x : x + side]
    diff, gain = difference_image(tuned[crop], reference[crop])
    return Comparison(
        qimage_from_rgb8(reference[crop]),
        qimage_from_rgb8(tuned[crop]),
        qimage_from_rgb8(hr[crop]),
        qimage_from_rgb8(diff),
        gain,
        reference_label,
        photo,
        (y, x, side),
        change,
    )


def to_uint8(sr: np.ndarray) -> np.ndarray:
    return (np.clip(sr, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- scan -------------------------------------------------------------------------------------------


class ScanJob(Job):
    """Counts, scans (readable, not a duplicate) and thumbnails the images in some folders."""

    counted = Signal(int)  # image files found
    scanned = Signal(object)  # data.ScanResult (min size 1: the size rule depends on scale and patch)
    thumbnail_ready = Signal(str, QImage)  # path, thumbnail

    def __init__(self, folders: tuple[str, ...]) -> None:
        super().__init__()
        self.folders = folders

    def work(self) -> None:
        try:
            files = data_mod.iter_image_files(self.folders)
        except data_mod.DataError as exc:
            self.failed.emit(str(exc))
            return
        self.counted.emit(len(files))
        scan, _ = data_mod.scan_folders(self.folders, 1)
        self.scanned.emit(scan)
        for path in scan.usable:
            if self.stopping:
                return
            try:
                rgb = data_mod.load_hr(path)
            except Exception as exc:  # noqa: BLE001 - a thumbnail is not worth failing the scan for
                log.warning("no thumbnail for %s: %s", path, exc)
                continue
            self.thumbnail_ready.emit(str(path), qimage_from_rgb8(thumbnail(rgb)))


# --- speed ------------------------------------------------------------------------------------------


class SpeedJob(Job):
    """Runs a few real training steps (the same Trainer, a throw-away folder) and reports steps/s.

    ``cfg`` is the run's own config; ``photos`` (the usable ones) replace its folders, and only
    :data:`SPEED_PHOTOS` of them are linked into the throw-away folder, so that loading a large shoot does
    not delay the figure: a step's cost depends on the batch, the patch and the network, not on the photos.
    """

    measured = Signal(float, str)  # steps per second, device label

    def __init__(self, cfg: TrainConfig, photos: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.cfg = cfg
        self.photos = photos
        self._trainer: Trainer | None = None
        self._steps: list[tuple[int, float]] = []
        self._device = ""

    def stop(self) -> None:
        super().stop()
        if self._trainer is not None:
            self._trainer.request_stop()

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, StartedEvent):
            self._device = ev.device
        elif isinstance(ev, StepEvent):
            self._steps.append((ev.step, ev.elapsed_s))

    def work(self) -> None:
        with tempfile.TemporaryDirectory(prefix="speed-", dir=paths.cache_dir()) as tmp:
            data = self.cfg.data
            if self.photos:
                folder = Path(tmp) / "photos"
                folder.mkdir()
                for i, src in enumerate(self.photos[:SPEED_PHOTOS]):
                    link = folder / f"{i:02d}{Path(src).suffix.lower()}"
                    try:
                        link.symlink_to(src)
                    except OSError:  # no symlinks here (Windows without the privilege): copy
                        shutil.copyfile(src, link)
                data = (str(folder),)
            cfg = dataclasses.replace(
                self.cfg,
                data=data,
                exclude=(),
                out=str(Path(tmp) / "run"),
                val=(),
                max_steps=SPEED_STEPS,
                max_minutes=SPEED_MAX_MINUTES,
                schedule_steps=None,
                log_every=1,
                save_as=None,
            )
            trainer = Trainer(cfg, self._on_event)
            self._trainer = trainer
            if self.stopping:
                return
            try:
                trainer.run()
            except TrainingError as exc:
                self.failed.emit(str(exc))
                return
        if self.stopping:
            return
        # skip the first steps (memory allocation, first-call overheads) when enough are left to time
        steps = self._steps[2:] if len(self._steps) > 4 else self._steps[1:] if len(self._steps) > 2 else self._steps
        if len(steps) < 2 or steps[-1][1] <= steps[0][1]:
            self.failed.emit("too few steps ran in a minute to time them (a very busy computer?): press Measure again")
            return
        rate = (steps[-1][0] - steps[0][0]) / (steps[-1][1] - steps[0][1])
        self.measured.emit(rate, self._device)


# --- training ---------------------------------------------------------------------------------------


class TrainJob(Job):
    """One training run (new or resumed) with the project's Trainer; forwards its events as signals."""

    event = Signal(object)  # trainer events, unchanged (StartedEvent, StepEvent, ValidationEvent, ...)
    preview = Signal(object, int)  # Comparison on the first hold-out image at a validation step, the step

    def __init__(
        self, cfg: TrainConfig, resume: bool = False, crops: tuple[tuple[str, str], ...] = (), crop_side: int = 768
    ) -> None:
        """``crops``: (hold-out photo, crop file) pairs to write, when missing, before the run starts (its val
        set): the most detailed ``crop_side`` px region of each photo."""
        super().__init__()
        self.cfg = cfg
        self.resume = resume
        self.crops = crops
        self.crop_side = crop_side
        self._trainer: Trainer | None = None
        self._before: tuple[np.ndarray, np.ndarray, str] | None = None  # (HR, output before training, label)

    def stop(self) -> None:
        super().stop()
        if self._trainer is not None:
            self._trainer.request_stop()

    def pause(self) -> None:
        if self._trainer is not None:
            self._trainer.pause()

    def unpause(self) -> None:
        if self._trainer is not None:
            self._trainer.unpause()

    def _prepare_reference(self) -> None:
        """The first hold-out image as the trainer validates on it, upscaled by the model training starts from
        (bicubic when from scratch): what each check's output is compared with."""
        if not self.cfg.val:
            return
        s = self.cfg.scale
        degradation = self.cfg.degradation() if self.cfg.degradation().active else None
        try:
            img = load_eval_images(self.cfg.val[:1], s, degradation)[0]
            if self.cfg.init:
                base = registry.load_model(self.cfg.init, s)
                runner = TileRunner(base.model, pick_device(self.cfg.device), half=False)
                before = to_uint8(upscale_array(base.model, img.lr.astype(np.float32) / 255, runner=runner))
                label = f"Before: {base.name}"
            else:
                before, label = imresize(img.lr, s), "Before: bicubic"
        except Exception as exc:  # noqa: BLE001 - the preview is optional, the trainer reports bad files
            log.warning("no before/after preview: %s", exc)
            return
        self._before = (img.hr, before, label)

    def _on_event(self, ev: Event) -> None:
        preview = getattr(ev, "preview", None)
        if preview is not None and self._before is not None and self.cfg.val:
            hr, before, label = self._before
            try:
                name = Path(self.crops[0][0] if self.crops else self.cfg.val[0]).name  # the photo, not its crop
                self.preview.emit(make_comparison(before, preview, hr, self.cfg.scale, label, name), ev.step)
            except ValueError as exc:  # sizes differ: no preview rather than a wrong one
                log.warning("no before/after preview: %s", exc)
        self.event.emit(ev)

    def work(self) -> None:
        for src, dst in self.crops:
            if not Path(dst).exists():
                write_holdout_crop(src, Path(dst), self.cfg.scale, self.crop_side)
        self._prepare_reference()
        trainer = Trainer(self.cfg, self._on_event, resume=self.resume)
        self._trainer = trainer
        if self.stopping:
            trainer.request_stop()
        try:
            fin = trainer.run()
        except TrainingError as exc:
            self.failed.emit(str(exc))
            return
        log.info("training ended at step %d (stopped=%s)", fin.step, fin.stopped)


# --- evaluation -------------------------------------------------------------------------------------


CLEAN, DEGRADED = "clean", "degraded"
BICUBIC, BASE, TUNED = "bicubic", "base", "tuned"


@dataclass(frozen=True)
class EvalRequest:
    model_path: Path
    base: str | None  # registry name or file; None = trained from scratch
    files: tuple[str, ...]
    scale: int
    degradation: data_mod.Degradation
    device: str = "auto"
    names: tuple[str, ...] = ()  # the photos' own names, when ``files`` are their hold-out crops


@dataclass
class EvalResult:
    """Hold-out scores: ``scores[domain][BICUBIC | BASE | TUNED]``; domains CLEAN and, if used, DEGRADED."""

    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    base_name: str | None = None
    warnings: list[str] = field(default_factory=list)
    comparison: Comparison | None = None  # where the fine-tuned model changed a hold-out photo most


class EvalJob(Job):
    """Scores bicubic, the base model and the fine-tuned model on the hold-out (clean and degraded LR)."""

    progress = Signal(int, int)
    result = Signal(object)  # EvalResult

    def __init__(self, request: EvalRequest) -> None:
        super().__init__()
        self.request = request

    def work(self) -> None:
        req = self.request
        out = EvalResult()
        tuned = registry.load_model(req.model_path, req.scale)
        models: dict[str, torch.nn.Module | None] = {BICUBIC: None}
        if req.base:
            try:
                base = registry.load_model(req.base, req.scale)
                models[BASE] = base.model
                out.base_name = base.name
            except registry.ModelError as exc:
                out.warnings.append(f"the base model cannot be scored: {exc}")
        models[TUNED] = tuned.model
        device = pick_device(req.device)
        domains = [(CLEAN, None)]
        if req.degradation.active:
            domains.append((DEGRADED, req.degradation))
        total = len(domains) * len(models) * len(req.files)
        done_before = 0
        for domain, degradation in domains:
            images = load_eval_images(req.files, req.scale, degradation)

            def progress(done: int, _total: int, offset: int = done_before) -> None:
                self.progress.emit(offset + done, total)

            out.scores[domain] = evaluate_models(models, images, req.scale, device, progress, self._stop.is_set)
            done_before += len(models) * len(images)
        out.comparison = self._compare(models, domains[-1][1], device, out.base_name or req.base)
        self.result.emit(out)

    def _compare(
        self,
        models: dict[str, torch.nn.Module | None],
        degradation: data_mod.Degradation | None,
        device: torch.device,
        base_name: str | None,
    ) -> Comparison | None:
        """The most changed region over the first few hold-out photos, in the inputs the model was made for."""
        req = self.request
        before = models.get(BASE)
        label = f"Before: {base_name}" if before is not None else "Before: bicubic"
        runners = {k: TileRunner(m, device, half=False) for k, m in models.items() if m is not None}
        best: Comparison | None = None
        for i, img in enumerate(load_eval_images(req.files[:COMPARE_PHOTOS], req.scale, degradation)):
            if self.stopping:
                return None
            name = req.names[i] if i < len(req.names) else img.path.name
            lr = img.lr.astype(np.float32) / 255
            ref = (
                to_uint8(upscale_array(before, lr, runner=runners[BASE]))
                if before is not None
                else imresize(img.lr, req.scale)
            )
            tuned = to_uint8(upscale_array(models[TUNED], lr, runner=runners[TUNED]))
            c = make_comparison(ref, tuned, img.hr, req.scale, label, name)
            if best is None or c.mean_change > best.mean_change:
                best = c
        return best
