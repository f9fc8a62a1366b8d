"""What the fine-tuning wizard has collected so far, as one plain object its pages share.

The pages read and write a :class:`WizardState`; it knows which photos are usable at the chosen scale
and patch size, and builds the :class:`mlrn_core.trainer.TrainConfig` of the run (hold-out passed as
both ``exclude`` and ``val``). A resumed run rebuilds the state from its folder (config.json and the
wizard's own wizard.json).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrn_core.data import CAMERA, Degradation, ScanResult
from mlrn_core.finetune import auto_val_every, holdout_crop_paths, holdout_crop_side
from mlrn_core.runs import RunInfo, free_run_dir, write_wizard_file
from mlrn_core.tiling import pick_device
from mlrn_core.trainer import TrainConfig

# "match camera JPEGs" is the photo models' camera pipeline (mlrn_core.data.CAMERA); the JPEG range and
# the noise can be changed on the Setup page, the blur and the bicubic-or-area downscale come with it
DEFAULT_JPEG_QUALITY = CAMERA.jpeg_quality
DEFAULT_NOISE_SIGMA = CAMERA.noise_sigma
# A fine-tune starts from a model that is already good: a full-size first step of Adam (every weight moves by
# about the learning rate, whatever its gradient) knocks it off, and on smooth photos the hold-out fell from
# 51.98 to 45.28 dB before recovering. So a fine-tune learns at a smaller rate and warms up over
# FT_WARMUP_STEPS steps (never decided from a guessed speed); benchmarks/finetune_start.py measures it.
FT_LR, SCRATCH_LR = 1e-4, 5e-4
FT_WARMUP_STEPS = 100
# A photo smaller than this on its short side (a thumbnail, a web preview) has lost the fine detail the model
# should learn to restore: it teaches nothing, even when it holds one training patch.
MIN_PHOTO_SIDE = 256


@dataclass
class WizardState:
    """The user's choices; ``base`` is a registry name or a model file, None = train from scratch."""

    scale: int = 2
    folders: list[str] = field(default_factory=list)
    scan: ScanResult | None = None
    base: str | None = None
    name: str = ""
    jpeg: bool = False
    jpeg_quality: tuple[int, int] = DEFAULT_JPEG_QUALITY
    noise_sigma: float = DEFAULT_NOISE_SIGMA
    device: str = "auto"
    budget_minutes: bool = True  # False: a step budget
    minutes: float = 30.0
    steps: int = 2000
    batch: int = 16
    patch: int = 48
    lr: float = FT_LR
    val_every: int = 0  # 0 = auto (about a dozen checks per run)
    features: int = 32  # the network when training from scratch
    blocks: int = 8
    steps_per_s: float | None = None  # measured speed for the current settings (None: not measured)
    rough_steps_per_s: float | None = None  # the documented per-device guess, when not measured
    holdout: list[str] = field(default_factory=list)
    holdout_side: int = 768  # the side of the hold-out regions the run validates on (set per device)
    run_dir: Path | None = None
    resume: bool = False  # the Training page continues run_dir instead of starting it
    cfg: TrainConfig | None = None

    # -- photos
    @property
    def min_train_side(self) -> int:
        """The smallest HR side the trainer accepts for a training image (one patch)."""
        return self.patch * self.scale

    def candidates(self) -> list[Path]:
        """Usable photos large enough to train on at the current scale and patch size, and to teach anything."""
        if self.scan is None:
            return []
        need = max(self.min_train_side, MIN_PHOTO_SIDE)
        return [p for p in self.scan.usable if min(self.scan.sizes.get(p, (0, 0))) >= need]

    def too_small(self) -> list[tuple[Path, str]]:
        """Readable photos refused for their size, with the reason."""
        if self.scan is None:
            return []
        need = self.min_train_side
        out = []
        for p in self.scan.usable:
            w, h = self.scan.sizes.get(p, (0, 0))
            if min(w, h) < need:
                out.append((p, f"too small for x{self.scale} ({w}x{h}, needs at least {need} px a side)"))
            elif min(w, h) < MIN_PHOTO_SIDE:
                out.append(
                    (
                        p,
                        f"too small to teach anything ({w}x{h}, a thumbnail?): use full-size photos, at "
                        f"least {MIN_PHOTO_SIDE} px a side",
                    )
                )
        return out

    def refused(self) -> list[str]:
        """Photos the trainer's own scan would take (they hold a patch) that the wizard refuses as too small."""
        if self.scan is None:
            return []
        return [
            str(p)
            for p in self.scan.usable
            if self.min_train_side <= min(self.scan.sizes.get(p, (0, 0))) < MIN_PHOTO_SIDE
        ]

    def train_pixels(self) -> int:
        """HR pixels of the photos that will be trained on (candidates minus the hold-out)."""
        if self.scan is None:
            return 0
        held = set(self.holdout)
        return sum(w * h for p in self.candidates() if str(p) not in held for w, h in [self.scan.sizes[p]])

    # -- training
    @property
    def degradation(self) -> Degradation:
        if not self.jpeg:
            return Degradation()
        return Degradation(self.jpeg_quality, self.noise_sigma, CAMERA.blur, CAMERA.resize)

    def planned_steps(self, measured_only: bool = False) -> int | None:
        """The step budget, or the steps a minute budget buys at the measured (else rough) speed."""
        if not self.budget_minutes:
            return self.steps
        rate = self.steps_per_s if measured_only else (self.steps_per_s or self.rough_steps_per_s)
        if rate is None:
            return None
        return max(1, int(self.minutes * 60 * rate))

    def warmup_steps(self) -> int:
        """Steps over which the learning rate rises from 0: :data:`FT_WARMUP_STEPS` for a fine-tune (at most half
        of a step budget or of the steps a measured speed buys), a tenth of the run (at most 100) from scratch."""
        planned = self.planned_steps(measured_only=True)
        if self.base is not None:
            return max(1, min(FT_WARMUP_STEPS, planned // 2)) if planned else FT_WARMUP_STEPS
        return max(1, min(100, (planned or 1000) // 10))

    def default_name(self) -> str:
        stem = Path(self.folders[0]).name if self.folders else "my photos"
        stem = re.sub(r"[^\w .+-]", "_", stem).strip(" ._+-") or "my photos"
        return f"{stem[:50]} x{self.scale}"

    def holdout_crops(self) -> list[tuple[str, str]]:
        """(hold-out photo, its crop in the run folder) pairs: the crops are the run's validation set."""
        if self.run_dir is None:
            return []
        return [(src, str(dst)) for src, dst in zip(self.holdout, holdout_crop_paths(self.run_dir, self.holdout))]

    def build_config(self, out: str | None = None) -> TrainConfig:
        """The run's TrainConfig (the one builder: the run and the speed measurement use it): data = the
        folders; the hold-out photos are excluded from training and their most detailed regions (written by
        the training job) are the validation set. ``out``: another folder than the run folder (the speed
        measurement's), without a validation set."""
        if out is None and self.run_dir is None:
            raise ValueError("no run folder chosen")
        planned = self.planned_steps()
        val_every = self.val_every or auto_val_every(planned or 1200)
        # a minute budget decays the learning rate over the steps it buys only when the speed was measured;
        # with a guessed speed the rate stays constant after warm-up rather than decaying at the wrong time
        horizon = self.planned_steps(measured_only=True) if self.budget_minutes else None
        extra: dict[str, Any] = {}
        if self.base is None:
            extra.update(features=self.features, blocks=self.blocks)
        return TrainConfig(
            data=tuple(self.folders),
            out=out or str(self.run_dir),
            scale=self.scale,
            val=() if out else tuple(dst for _src, dst in self.holdout_crops()),
            exclude=tuple(self.holdout) + tuple(self.refused()),  # never trained on: the hold-out, thumbnails
            max_steps=None if self.budget_minutes else self.steps,
            max_minutes=self.minutes if self.budget_minutes else None,
            schedule_steps=horizon,
            batch=self.batch,
            patch=self.patch,
            lr=self.lr,
            warmup_steps=self.warmup_steps(),
            val_every=val_every,
            log_every=max(1, min(10, val_every // 5)),
            device=self.device,
            init=self.base,
            jpeg_quality=self.jpeg_quality if self.jpeg else None,
            noise_sigma=self.noise_sigma if self.jpeg else 0.0,
            blur=CAMERA.blur if self.jpeg else 0.0,
            resize=CAMERA.resize if self.jpeg else "bicubic",
            **extra,
        )

    def prepare_run(self) -> TrainConfig:
        """Choose a free run folder, build the config and record the wizard's choices there."""
        self.run_dir = free_run_dir(self.name)
        self.holdout_side = holdout_crop_side(pick_device(self.device).type)
        cfg = self.build_config()
        write_wizard_file(
            self.run_dir,
            {
                "name": self.name,
                "base": self.base,
                "folders": self.folders,
                "holdout": self.holdout,
                "holdout_side": self.holdout_side,
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
            },
        )
        self.cfg = cfg
        self.resume = False
        return cfg

    def replace_with(self, other: WizardState) -> None:
        """Take every field of ``other`` (the pages keep their reference to this object)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    @classmethod
    def from_run(cls, run: RunInfo) -> WizardState:
        """The state of an existing run, for resuming it (its config.json is the source of truth)."""
        cfg = TrainConfig.from_json(run.config)
        state = cls(
            scale=cfg.scale,
            folders=list(cfg.data),
            base=cfg.init,
            name=run.name,
            jpeg=cfg.jpeg_quality is not None or cfg.noise_sigma > 0,
            device=cfg.device,
            budget_minutes=cfg.max_steps is None,
            batch=cfg.batch,
            patch=cfg.patch,
            lr=cfg.lr,
            val_every=cfg.val_every,
            features=cfg.features,
            blocks=cfg.blocks,
            holdout=list(run.wizard.get("holdout", cfg.exclude)),
            run_dir=run.path,
            resume=True,
        )
        if cfg.jpeg_quality is not None:
            state.jpeg_quality = cfg.jpeg_quality
        state.noise_sigma = cfg.noise_sigma or DEFAULT_NOISE_SIGMA
        if cfg.max_minutes is not None:
            state.minutes = cfg.max_minutes
        if cfg.max_steps is not None:
            state.steps = cfg.max_steps
        state.holdout_side = int(run.wizard.get("holdout_side", state.holdout_side))
        state.cfg = dataclasses.replace(cfg, out=str(run.path))
        return state
