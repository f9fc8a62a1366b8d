"""The training engine behind ``mlrn train``, the in-app wizard and the shipped weights.

Plain on purpose (nanoGPT's ``train.py`` is the model): a frozen :class:`TrainConfig`, a pure
:func:`lr_at`, an explicit step loop, ``@torch.no_grad()`` validation with the project's metrics,
self-describing checkpoints, and typed events reported through one callback that the CLI prints and
the GUI plots. Stopping is cooperative (a flag checked every step) and always saves a checkpoint.
The same code runs under ``torchrun`` with DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
only rank 0 validates, logs and writes files.

The run folder's layout is :class:`mlrn_core.runs.RunFolder`; validation scores come from the one
evaluator, :mod:`mlrn_core.evaluate`, so they are the numbers ``mlrn bench`` and the wizard report.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlrn_core import atomic, distributed, paths, registry
from mlrn_core import data as data_mod
from mlrn_core.cards import model_card
from mlrn_core.distributed import Dist
from mlrn_core.evaluate import EvalImage, eval_images, evaluate
from mlrn_core.metrics import Score
from mlrn_core.model import DEFAULT_KERNELS, MLRN
from mlrn_core.runs import RunFolder
from mlrn_core.tiling import cpu_bf16_supported, device_label

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mlrn-studio-checkpoint"
SCHEDULES = ("cosine", "cosine-time", "step", "constant-cosine")
#: The pixel losses a run can train with (TrainConfig.loss).
LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Stored in every checkpoint."""

    data: tuple[str, ...]
    out: str
    scale: int = 2
    val: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # files never trained on (the wizard's hold-out)
    max_steps: int | None = 1000
    max_minutes: float | None = None
    batch: int = 16
    patch: int = 48  # LR patch side; HR patches are patch * scale
    lr: float = 5e-4
    # "cosine" (warm-up then cosine), "cosine-time" (over max_minutes), "step" (halving) or "constant-cosine"
    # (warm-up, constant, then a cosine over the last tail_steps of max_steps: a long run that spans sessions)
    schedule: str = "cosine"
    warmup_steps: int = 100
    schedule_steps: int | None = None  # cosine horizon; defaults to max_steps
    tail_steps: int = 0  # constant-cosine: the length of the cosine tail that ends at max_steps
    min_lr_ratio: float = 0.02
    halve_every: int = 200_000  # the paper: every 200 epochs of 1000 iterations
    betas: tuple[float, float] = (0.9, 0.999)
    ema: float = 0.0  # EMA decay of the weights (0 = off), e.g. 0.999
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    # the pixel loss: "l1" (the paper's) or "l2" (MSE: the loss PSNR measures; used by small PSNR networks for a
    # final phase at a small learning rate, e.g. RFDN/RLFN in the NTIRE efficient-SR challenges)
    loss: str = "l1"
    amp: str = "auto"  # off | bf16 | fp16 | auto (bf16 where the device supports it, else fp16 on CUDA, off on CPU)
    compile: bool = False
    seed: int = 0
    val_every: int = 250  # also the checkpoint interval: an interrupted run loses at most this many steps
    ckpt_every: int = 0  # extra checkpoints between validations (0 = none): a kill then loses fewer steps
    val_tile: int = 256
    log_every: int = 10
    device: str = "auto"
    threads: int = 0  # CPU threads (0 = torch's default)
    init: str | None = None  # model name or file to warm-start from
    save_as: str | None = None  # register the result as a user model under this name
    # the network (ignored when `init` gives the architecture)
    features: int = 32
    blocks: int = 8
    kernels: tuple[tuple[int, int], ...] = DEFAULT_KERNELS
    gff: bool = True
    rsc: bool = True
    image_skip: bool = False
    # LR degradations for matching real photos (off by default)
    jpeg_quality: tuple[int, int] | None = None
    noise_sigma: float = 0.0
    blur: float = 0.0  # max Gaussian blur sigma on the HR before downscaling (data.Degradation)
    resize: str = "bicubic"  # bicubic | area | mixed
    clean_share: float = 0.0  # fraction of training samples left clean (validation is always fully degraded)
    sample_by_area: bool = True  # draw images in proportion to their area (else every file the same)

    def degradation(self) -> data_mod.Degradation:
        """The LR degradation this run trains (and validates) with."""
        return data_mod.Degradation(
            self.jpeg_quality, self.noise_sigma, self.blur, self.resize, clean_share=self.clean_share
        )

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if not self.data:
            raise ValueError("at least one data folder is needed")
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("give max_steps or max_minutes (or both)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule == "constant-cosine" and not (
            self.max_steps and 0 < self.tail_steps <= self.max_steps - self.warmup_steps
        ):
            raise ValueError(
                "the constant-cosine schedule needs max_steps and 0 < tail_steps <= max_steps - warmup_steps, "
                f"got max_steps {self.max_steps}, tail_steps {self.tail_steps}, warmup_steps {self.warmup_steps}"
            )
        if self.schedule == "cosine-time" and not self.max_minutes:
            raise ValueError("the cosine-time schedule needs max_minutes (its horizon)")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.batch < 1 or self.patch < 8:
            raise ValueError(f"batch must be >= 1 and patch >= 8, got {self.batch} and {self.patch}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("data", "val", "exclude"):
            if key in d:
                d[key] = tuple(d[key])
        if "kernels" in d:
            d["kernels"] = tuple(tuple(k) for k in d["kernels"])
        for key in ("betas", "jpeg_quality"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def model_hparams(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "features": self.features,
            "blocks": self.blocks,
            "kernels": self.kernels,
            "gff": self.gff,
            "rsc": self.rsc,
            "image_skip": self.image_skip,
        }


def autocast_for(device: torch.device, amp: str = "auto"):
    """(autocast context, GradScaler or None) for training on ``device`` with ``TrainConfig.amp``.

    The one rule for the trainer and for anything that measures its speed (scripts/train_weights.py,
    benchmarks/train_pipeline.py).
    """
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext(), None
    if device.type == "cpu":
        # bf16 autocast runs the convolutions on oneDNN's AVX512-BF16/AMX kernels: 2.3x the fp32 steps/s
        # on the 2-core EPYC here (benchmarks/cpu_train_step.py); without them it is emulated and slower.
        if amp == "fp16" or (amp == "auto" and not cpu_bf16_supported()):
            return contextlib.nullcontext(), None
        return torch.autocast("cpu", dtype=torch.bfloat16), None
    dtype = torch.bfloat16
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        dtype = torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float | None = None) -> float:
    """The learning rate at ``step`` (0-based): a pure function of the step and the config.

    ``cosine-time`` decays over the time budget instead (``elapsed_s`` of ``max_minutes``), for machines
    whose speed is not known in advance (a CPU shared with other work): the schedule always ends when the
    budget does, however many steps fit in it.
    """
    if cfg.schedule == "step":
        return cfg.lr * 0.5 ** (step // cfg.halve_every)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine-time" and cfg.max_minutes:
        progress = min(1.0, max(0.0, (elapsed_s or 0.0) / (cfg.max_minutes * 60)))
        floor = cfg.lr * cfg.min_lr_ratio
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "constant-cosine" and cfg.max_steps:
        tail0 = cfg.max_steps - cfg.tail_steps
        if step < tail0:
            return cfg.lr
        progress = min(1.0, (step - tail0) / max(1, cfg.tail_steps))
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    horizon = cfg.schedule_steps or cfg.max_steps
    if not horizon:
        return cfg.lr  # a time-only budget without a horizon: constant after warm-up
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, horizon - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    step: int


@dataclass(frozen=True)
class StartedEvent(Event):
    max_steps: int | None
    device: str
    train_images: int
    val_images: int
    skipped: tuple[tuple[str, str], ...]
    resumed: bool


@dataclass(frozen=True)
class StepEvent(Event):
    loss: float
    lr: float
    steps_per_s: float
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class ValidationEvent(Event):
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    best_psnr: float
    is_best: bool
    base_psnr: float | None = None  # the warm-start model's score (fine-tuning)
    preview: np.ndarray | None = field(default=None, compare=False, repr=False)  # uint8 HR output, val image 0
    raw_psnr: float | None = None  # with EMA on: the latest weights' PSNR (``psnr`` is the better of the two)


@dataclass(frozen=True)
class CheckpointEvent(Event):
    path: str


@dataclass(frozen=True)
class FinishedEvent(Event):
    model_path: str
    best_psnr: float | None
    elapsed_s: float
    stopped: bool  # True when stopped early by request
    user_model: str | None = None


@dataclass(frozen=True)
class FailedEvent(Event):
    error: str


EventFn = Callable[[Event], None]


def event_to_json(ev: Event) -> dict[str, Any]:
    d = {k: v for k, v in dataclasses.asdict(ev).items() if k != "preview"}
    d["event"] = type(ev).__name__.removesuffix("Event").lower()
    return d


# --- distributed ---------------------------------------------------------------------------------


def join_process_group(device_pref: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    try:
        dist = distributed.from_env()
    except distributed.TorchrunError as exc:
        raise TrainingError(str(exc)) from None
    if not dist.enabled:
        return dist
    import torch.distributed as tdist

    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(dist.local_rank)
    return dist


def _barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


# --- the trainer ---------------------------------------------------------------------------------


class TrainingError(Exception):
    """A run that cannot start or continue; the message says why."""


class Trainer:
    """One training run. ``run()`` trains until max_steps, max_minutes or a stop request.

    :meth:`_run` reads as the run's steps, each a method: open the run folder, load the data, build the
    model and optimiser (fresh, warm-started or resumed), then the loop (:meth:`_train_step` per batch,
    :meth:`_validate_and_save` every ``val_every`` steps), then :meth:`_finish`. The state they share
    lives on ``self`` and is declared below.
    """

    # set by the steps of _run (declared here so each step's inputs and outputs are visible)
    dist: Dist
    device: torch.device
    degradation: data_mod.Degradation
    sampler: data_mod.PatchSampler
    data_desc: dict[str, Any]
    train_images: int
    skipped: tuple[tuple[str, str], ...]
    val_images: list[EvalImage]
    bicubic: Score | None  # bicubic on the validation images (computed once)
    model: MLRN  # the unwrapped network being trained (also for callers after run())
    ema: MLRN | None
    train_model: torch.nn.Module  # model, wrapped in DDP and/or torch.compile
    opt: torch.optim.Optimizer
    channels_last: bool
    base: dict[str, Any] | None  # what a warm start started from (name, path, scale, info, val_psnr)
    base_score: float | None  # the base model's validation PSNR, before fine-tuning changed it
    history: list[dict[str, float]]
    best: dict[str, float]  # {"psnr", "ssim", "step"} of the best validation so far
    elapsed0: float  # seconds trained by earlier sessions of this run

    def __init__(self, cfg: TrainConfig, on_event: EventFn | None = None, resume: bool = False) -> None:
        self.cfg = cfg
        self.on_event = on_event or (lambda ev: None)
        self.resume = resume
        self.folder = RunFolder(Path(cfg.out))
        self.out = self.folder.path
        self.dist = Dist()
        self.step = 0
        self._preview: np.ndarray | None = None
        self._raw_psnr: float | None = None  # with EMA on: the latest (not averaged) weights' validation PSNR
        self._val_net: torch.nn.Module | None = None  # the weights the last validation chose (EMA or latest)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()  # cleared while paused
        self._t_start = time.perf_counter()
        self._paused_s = 0.0

    # cooperative control, safe from any thread or a signal handler
    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def unpause(self) -> None:
        self._running.set()

    def pause_on_signals(self) -> None:
        """``kill -USR1 PID`` pauses this training and ``kill -USR2 PID`` resumes it (POSIX, main thread only):
        a benchmark that needs a quiet machine can borrow the cores without costing training time, since
        paused time counts neither against ``max_minutes`` nor in the ``cosine-time`` schedule."""
        signal.signal(signal.SIGUSR1, lambda *_: self.pause())
        signal.signal(signal.SIGUSR2, lambda *_: self.unpause())

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _emit(self, ev: Event) -> None:
        if self.dist.main:
            try:
                self.folder.append_event(event_to_json(ev))
            except OSError as exc:
                log.warning("cannot append to %s: %s", self.folder.events.name, exc)
            self.on_event(ev)

    def run(self) -> FinishedEvent:
        self.dist = join_process_group(self.cfg.device)
        try:
            return self._run()
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):
                self._emit(FailedEvent(self.step, f"{type(exc).__name__}: {exc}"))
            raise

    def _run(self) -> FinishedEvent:
        cfg = self.cfg
        state = self._open_folder()
        self.device = self._setup_device()
        self._load_data()
        self._build(state)
        self._emit(
            StartedEvent(
                self.step,
                cfg.max_steps,
                device_label(self.device),
                self.train_images,
                len(self.val_images),
                self.skipped,
                state is not None,
            )
        )
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            log.info("the run already reached %d steps", self.step)
        if self.dist.main:
            atomic.write_json(self.folder.config, cfg.to_json())
        self._t_start, self._paused_s = time.perf_counter(), 0.0
        self._score_base()

        prefetch = data_mod.Prefetcher(self.sampler, self.step)
        self.model.train()
        steps_here, t_loop = 0, time.perf_counter()
        stopped = False
        try:
            while True:
                done, want_stop = self._should_end()
                if done or want_stop:
                    stopped = want_stop and not done
                    break
                if not self._running.is_set():
                    self._wait_while_paused()
                    continue
                lr = lr_at(self.step, cfg, self.elapsed())
                loss = self._train_step(*prefetch.get(self.step), lr)
                self.step += 1
                steps_here += 1
                if self.dist.main and (self.step % cfg.log_every == 0 or self.step == 1):
                    self._log_step(loss, lr, steps_here / max(1e-9, time.perf_counter() - t_loop))
                if self.step % cfg.val_every == 0:
                    self._validate_and_save()
                elif cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self._checkpoint()
        finally:
            prefetch.close()
        return self._finish(steps_here, stopped)

    # -- the steps of a run, in order

    def _open_folder(self) -> dict[str, Any] | None:
        """Check the run folder (and the --save-as name); the checkpoint to resume from, if resuming."""
        cfg, ckpt = self.cfg, self.folder.checkpoint
        if self.dist.main:
            self.folder.path.mkdir(parents=True, exist_ok=True)
        state = None
        if self.resume:
            if not ckpt.exists():
                raise TrainingError(f"nothing to resume: {ckpt} does not exist")
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise TrainingError(f"'{ckpt}' is not an MLRN Studio training checkpoint")
        elif ckpt.exists():
            raise TrainingError(
                f"{self.out} already holds a run ({ckpt.name}); pass --resume to continue it or choose another --out"
            )
        if cfg.save_as and self.dist.main:
            try:
                registry.validate_name(cfg.save_as)
            except registry.ModelError as exc:
                raise TrainingError(str(exc)) from exc
            if not self.resume and registry.user_model_path(cfg.save_as).exists():
                raise TrainingError(
                    f"a user model named '{cfg.save_as}' already exists: choose another --save-as "
                    "name or delete it first (mlrn models lists them)"
                )
        return state

    def _setup_device(self) -> torch.device:
        cfg = self.cfg
        device = distributed.device_for(cfg.device, self.dist)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        return device

    def _load_data(self) -> None:
        """Training pairs and the patch sampler; on rank 0 the validation images (degraded like the training LR)."""
        cfg, dist = self.cfg, self.dist
        min_hr = cfg.patch * cfg.scale
        cache = None
        with contextlib.suppress(Exception):
            cache = paths.cache_dir() / "lr"
        try:
            pairs, scan = data_mod.load_pairs(cfg.data, cfg.scale, min_hr, cfg.exclude, cache, "training")
            val_pairs: list[data_mod.ImagePair] = []
            if cfg.val and dist.main:
                val_pairs, _ = data_mod.load_pairs(cfg.val, cfg.scale, 2 * cfg.scale + 11, (), cache, "validation")
        except data_mod.DataError as exc:
            raise TrainingError(str(exc)) from exc
        degradation = cfg.degradation()
        self.degradation = degradation
        self.sampler = data_mod.PatchSampler(
            pairs, cfg.scale, cfg.patch, cfg.batch, cfg.seed, dist.rank, dist.world, degradation, cfg.sample_by_area
        )
        self.train_images = len(pairs)
        self.skipped = tuple((str(s.path), s.reason) for s in scan.skipped)
        self.data_desc = {
            "folders": [str(Path(f)) for f in cfg.data],
            "images": len(pairs),
            "skipped": [list(s) for s in self.skipped],
            "val_folders": [str(Path(f)) for f in cfg.val],
            "val_images": len(val_pairs),
            "excluded": list(cfg.exclude),
        }
        # With a degradation ("match camera JPEGs") the validation LR gets it too, drawn once per image from a
        # fixed seed: the best checkpoint is the one best at the inputs it is trained for, and the scores are
        # the wizard's own hold-out evaluation (both go through mlrn_core.evaluate).
        self.val_images = eval_images(val_pairs, degradation)
        self.bicubic = evaluate(None, self.val_images, cfg.scale).mean if self.val_images else None

    def _build(self, state: dict[str, Any] | None) -> None:
        """The network (fresh, warm-started or from the checkpoint), EMA copy, optimiser and counters."""
        cfg, dist, device = self.cfg, self.dist, self.device
        model, base = self._build_model()
        if state is not None:
            model = MLRN(**state["model"]["hparams"])
            model.load_state_dict(state["model"]["state_dict"], strict=True)
            base = state.get("base")
        model.to(device)
        # channels_last: faster on CUDA and on CPUs with native bf16 kernels (AVX512-BF16/AMX: 1.15x fp32, 1.16x
        # bf16), slower on an AVX2-only CPU (0.87x fp32: benchmarks/cpu_train_step.py --variants fp32,fp32-cl), so
        # the same rule as inference (tiling.py). gloo's DDP buffer broadcast cannot handle channels_last CPU
        # tensors, so a multi-process CPU run stays NCHW.
        self.channels_last = device.type == "cuda" or (
            device.type == "cpu" and not dist.enabled and cpu_bf16_supported()
        )
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        ema = copy.deepcopy(model).eval() if cfg.ema > 0 else None
        if ema is not None:
            for p in ema.parameters():
                p.requires_grad_(False)
        opt = torch.optim.Adam(model.parameters(), lr=lr_at(0, cfg), betas=cfg.betas, eps=1e-8)
        self.step, self.elapsed0 = 0, 0.0
        self.history, self.best = [], {"psnr": -1.0, "step": -1}
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            self.step, self.elapsed0 = int(state["step"]), float(state.get("elapsed_s", 0.0))
            self.history, self.best = list(state.get("history", [])), dict(state.get("best", self.best))
            torch.set_rng_state(state["rng"]["torch"])
        self.model, self.ema, self.opt, self.base = model, ema, opt, base
        self.base_score = base.get("val_psnr") if base else None
        train_model: torch.nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile and getattr(sys, "frozen", False):
            raise TrainingError(
                "--compile is not available in the desktop app bundle; use a pip install of "
                "MLRN Studio (it needs a C++ compiler and Python headers)"
            )
        if cfg.compile:
            train_model = torch.compile(train_model)
        self.train_model = train_model
        self._autocast, self._scaler = autocast_for(device, cfg.amp)

    def _build_model(self) -> tuple[MLRN, dict[str, Any] | None]:
        """The network: from `init` (its architecture and weights) or fresh from the config."""
        cfg = self.cfg
        if not cfg.init:
            torch.manual_seed(cfg.seed)
            return MLRN(**cfg.model_hparams()), None
        try:
            name, path = registry.resolve_model_path(cfg.init, None)
            mf = registry.read_model_file(path)
        except registry.ModelError as exc:
            raise TrainingError(f"cannot warm-start from '{cfg.init}': {exc}") from exc
        hp = dict(mf.hparams, scale=cfg.scale)
        model = MLRN(**hp)
        own = model.state_dict()
        fitting = {k: v.float() for k, v in mf.state_dict.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(fitting))
        if mf.scale == cfg.scale and skipped:
            raise TrainingError(f"'{path.name}' does not fit its own architecture: missing {skipped[:5]}")
        if skipped:  # a different scale: everything but the upsampler carries over
            log.info("warm start from x%d: %d tensors re-initialised (%s)", mf.scale, len(skipped), ", ".join(skipped))
        model.load_state_dict(fitting, strict=False)
        return model, {"name": name, "path": str(path), "scale": mf.scale, "info": mf.info}

    def _score_base(self) -> None:
        """The warm-start model's validation score, once, before fine-tuning changes it."""
        if self.dist.main and self.base is not None and self.base_score is None and self.val_images:
            s0 = self._validate()
            self.base_score = s0.psnr if s0 else None
            self.base["val_psnr"] = self.base_score

    def elapsed(self) -> float:
        """Seconds this run has trained (all sessions), not counting pauses: what max_minutes limits."""
        return self.elapsed0 + time.perf_counter() - self._t_start - self._paused_s

    def _should_end(self) -> tuple[bool, bool]:
        """(the budget is spent, a stop was asked for), the same on every rank."""
        cfg = self.cfg
        done = (cfg.max_steps is not None and self.step >= cfg.max_steps) or (
            cfg.max_minutes is not None and self.elapsed() / 60 >= cfg.max_minutes
        )
        want_stop = self._stop.is_set()
        if self.dist.enabled:  # every rank stops at the same step
            import torch.distributed as tdist

            flags = torch.tensor([float(done), float(want_stop)], device=self.device)
            tdist.all_reduce(flags, op=tdist.ReduceOp.MAX)
            done, want_stop = bool(flags[0].item()), bool(flags[1].item())
        return done, want_stop

    def _wait_while_paused(self) -> None:
        t_pause = time.perf_counter()
        while not self._running.wait(0.5):  # short waits: a signal handler can unpause from this thread
            pass
        self._paused_s += time.perf_counter() - t_pause

    def _train_step(self, lo_np: np.ndarray, hi_np: np.ndarray, lr: float) -> torch.Tensor:
        """One optimiser step on a batch of LR/HR patches at learning rate ``lr``; returns the loss."""
        cfg, opt = self.cfg, self.opt
        for g in opt.param_groups:
            g["lr"] = lr
        lo = torch.from_numpy(lo_np).to(self.device, non_blocking=True)
        hi = torch.from_numpy(hi_np).to(self.device, non_blocking=True)
        if self.channels_last:
            lo = lo.contiguous(memory_format=torch.channels_last)
        with self._autocast:
            loss = LOSSES[cfg.loss](self.train_model(lo).float(), hi)
        opt.zero_grad(set_to_none=True)
        scaler = self._scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                    pe.lerp_(pm.detach(), 1 - cfg.ema)
        return loss

    def _log_step(self, loss: torch.Tensor, lr: float, rate: float) -> None:
        cfg = self.cfg
        eta = (cfg.max_steps - self.step) / rate if cfg.max_steps and rate > 0 else None
        if cfg.max_minutes is not None:
            left = cfg.max_minutes * 60 - self.elapsed()
            eta = left if eta is None else min(eta, left)
        self._emit(StepEvent(self.step, float(loss.item()), lr, rate, self.elapsed(), eta))

    @torch.no_grad()
    def _validate(self) -> Score | None:
        """The validation score of the weights that would be saved.

        With EMA on, both the averaged and the latest weights are validated: the better of the two is
        the candidate (so EMA can never make a run worse), and the latest weights' PSNR is reported
        beside it (``ValidationEvent.raw_psnr``), which is how EMA is measured.
        """
        self._raw_psnr = None
        self._val_net = self.ema if self.ema is not None else self.model
        if not self.val_images:
            return None
        best = None
        for net in (self.model,) if self.ema is None else (self.ema, self.model):
            net.eval()
            result = evaluate(
                net, self.val_images, self.cfg.scale, self.device, tile=self.cfg.val_tile, keep_first=True
            )
            net.train()
            if self.ema is not None and net is self.model:
                self._raw_psnr = result.mean.psnr
            if best is None or result.mean.psnr > best[0].mean.psnr:
                best = (result, net)
        result, self._val_net = best
        self._preview = result.first_output
        return result.mean

    def _validate_and_save(self) -> Score | None:
        """Validate (rank 0), keep model.pt if this is the best so far, and write the checkpoint."""
        val = self._validate() if self.dist.main else None
        if val is not None and self.bicubic is not None:
            is_best = val.psnr > self.best["psnr"]
            if is_best:
                self.best.update(psnr=val.psnr, ssim=val.ssim, step=self.step)
            entry = {"step": self.step, "psnr": val.psnr, "ssim": val.ssim}
            if self._raw_psnr is not None:
                entry["raw_psnr"] = self._raw_psnr
            self.history.append(entry)
            self._emit(
                ValidationEvent(
                    self.step,
                    val.psnr,
                    val.ssim,
                    self.bicubic.psnr,
                    self.bicubic.ssim,
                    self.best["psnr"],
                    is_best,
                    self.base_score,
                    self._preview,
                    raw_psnr=self._raw_psnr,
                )
            )
        else:
            is_best = True  # no validation: the latest weights are the best we know
        if self.dist.main and (is_best or not self.folder.model.exists()):
            self._export_model(val)
        self._checkpoint()
        _barrier(self.dist)
        return val

    def _checkpoint(self) -> None:
        if not self.dist.main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "model": registry.make_model_payload(self.model.hparams, registry.model_state(self.model), {}),
            "ema": registry.model_state(self.ema) if self.ema is not None else None,
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed(),
            "config": self.cfg.to_json(),
            "rng": {"torch": torch.get_rng_state()},
            "data": self.data_desc,
            "history": self.history,
            "best": self.best,
            "base": self.base,
        }
        registry.atomic_torch_save(payload, self.folder.checkpoint)
        self._emit(CheckpointEvent(self.step, str(self.folder.checkpoint)))

    def _export_model(self, val: Score | None) -> None:
        """model.pt: the best weights by validation PSNR (the latest ones when there is no validation)."""
        net = self._val_net  # set by _validate, which runs before every export
        bicubic, base_score = self.bicubic, self.base_score
        info = {
            "provenance": {
                "config": self.cfg.to_json(),
                "data": self.data_desc,
                "steps": self.step,
                "train_seconds": round(self.elapsed(), 1),
                "device": device_label(self.device),
                "world_size": self.dist.world,
                "base": {k: v for k, v in (self.base or {}).items() if k != "info"} or None,
                "torch": str(torch.__version__),
            },
            "metrics": {
                "val_psnr": round(val.psnr, 4) if val else None,
                "val_ssim": round(val.ssim, 5) if val else None,
                "val_bicubic_psnr": round(bicubic.psnr, 4) if bicubic else None,
                "val_base_psnr": round(base_score, 4) if base_score is not None else None,
                "val_step": self.step,
            },
        }
        registry.save_model(self.folder.model, net, info)

    def _finish(self, steps_here: int, stopped: bool) -> FinishedEvent:
        """The last validation, checkpoint and model.pt; the user model when --save-as asked for one."""
        cfg = self.cfg
        if steps_here > 0 and self.step % cfg.val_every != 0 or not self.folder.model.exists():
            self._validate_and_save()
        total_s = self.elapsed()
        user_model = None
        if self.dist.main and cfg.save_as and not stopped:
            user_model = self._register(cfg.save_as, total_s)
        _barrier(self.dist)
        best = self.best["psnr"] if self.best["psnr"] >= 0 else None
        fin = FinishedEvent(self.step, str(self.folder.model), best, total_s, stopped, user_model)
        self._emit(fin)
        return fin

    def _register(self, name: str, seconds: float) -> str:
        mf = registry.read_model_file(self.folder.model)
        m = mf.info.get("metrics", {})
        bicubic = self.bicubic
        card = model_card(
            name=name,
            scale=self.cfg.scale,
            base=self.cfg.init or "none (trained from scratch)",
            data=self.data_desc,
            steps=self.step,
            seconds=seconds,
            device=device_label(self.device),
            val_psnr=m.get("val_psnr"),
            val_ssim=m.get("val_ssim"),
            bicubic_psnr=bicubic.psnr if bicubic else None,
            bicubic_ssim=bicubic.ssim if bicubic else None,
            base_psnr=self.base_score,
            config=self.cfg,
        )
        registry.register_user_model(self.folder.model, name, card, overwrite=True)
        return name
