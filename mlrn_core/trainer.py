"""The training engine behind ``mlrn train``, the in-app wizard and the shipped weights.

Plain on purpose (nanoGPT's ``train.py`` is the model): a frozen :class:`TrainConfig`, a pure
:func:`lr_at`, an explicit step loop, ``@torch.no_grad()`` validation with the project's metrics,
self-describing checkpoints, and typed events reported through one callback that the CLI prints and
the GUI plots. Stopping is cooperative (a flag checked every step) and always saves a checkpoint.
The same code runs under ``torchrun`` with DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
only rank 0 validates, logs and writes files.

Run folder layout: ``ckpt.pt`` (latest full state, for ``--resume``), ``model.pt`` (best weights by
validation PSNR, loadable by ``mlrn upscale --model``), ``config.json`` and ``events.jsonl``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
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

from mlrn_core import data as data_mod
from mlrn_core import paths, registry
from mlrn_core.metrics import Score, imresize, mean_score, score
from mlrn_core.model import DEFAULT_KERNELS, MLRN
from mlrn_core.tiling import TileRunner, device_label, pick_device, upscale_array

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mlrn-studio-checkpoint"


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
    schedule: str = "cosine"  # "cosine" (warm-up then cosine), "cosine-time" (over max_minutes) or "step" (halving)
    warmup_steps: int = 100
    schedule_steps: int | None = None  # cosine horizon; defaults to max_steps
    min_lr_ratio: float = 0.02
    halve_every: int = 200_000  # the paper: every 200 epochs of 1000 iterations
    betas: tuple[float, float] = (0.9, 0.999)
    ema: float = 0.0  # EMA decay of the weights (0 = off), e.g. 0.999
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    amp: str = "auto"  # off | bf16 | fp16 | auto (bf16 where the device supports it, else fp16 on CUDA, off on CPU)
    compile: bool = False
    seed: int = 0
    val_every: int = 250  # also the checkpoint interval: an interrupted run loses at most this many steps
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
    sample_by_area: bool = True  # draw images in proportion to their area (else every file the same)

    def degradation(self) -> data_mod.Degradation:
        """The LR degradation this run trains (and validates) with."""
        return data_mod.Degradation(self.jpeg_quality, self.noise_sigma, self.blur, self.resize)

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if not self.data:
            raise ValueError("at least one data folder is needed")
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("give max_steps or max_minutes (or both)")
        if self.schedule not in ("cosine", "step", "cosine-time"):
            raise ValueError(f"schedule must be 'cosine', 'cosine-time' or 'step', got {self.schedule!r}")
        if self.schedule == "cosine-time" and not self.max_minutes:
            raise ValueError("the cosine-time schedule needs max_minutes (its horizon)")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
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


def cpu_bf16_supported() -> bool:
    """True where oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX), so bf16 training is faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank, world, local)


# --- the trainer ---------------------------------------------------------------------------------


class TrainingError(Exception):
    """A run that cannot start or continue; the message says why."""


class Trainer:
    """One training run. ``run()`` trains until max_steps, max_minutes or a stop request."""

    def __init__(self, cfg: TrainConfig, on_event: EventFn | None = None, resume: bool = False) -> None:
        self.cfg = cfg
        self.on_event = on_event or (lambda ev: None)
        self.resume = resume
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()  # cleared while paused

    # cooperative control, safe from any thread or a signal handler
    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def unpause(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _emit(self, ev: Event) -> None:
        if self.dist.main:
            try:
                with open(self.out / "events.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(event_to_json(ev)) + "\n")
            except OSError as exc:
                log.warning("cannot append to events.jsonl: %s", exc)
            self.on_event(ev)

    def run(self) -> FinishedEvent:
        self.dist = init_distributed(self.cfg.device)
        self.out = Path(self.cfg.out)
        try:
            return self._run()
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):
                self._emit(FailedEvent(getattr(self, "step", 0), f"{type(exc).__name__}: {exc}"))
            raise

    # -- setup
    def _setup_device(self) -> torch.device:
        cfg = self.cfg
        if self.dist.enabled and torch.cuda.is_available() and cfg.device in ("auto", "cuda"):
            device = torch.device("cuda", self.dist.local_rank)
        else:
            device = pick_device(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        return device

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
            log.info("warm start from x%d: %d tensors re-initialised (%s)", mf.scale, len(skipped),
                     ", ".join(skipped))
        model.load_state_dict(fitting, strict=False)
        return model, {"name": name, "path": str(path), "scale": mf.scale, "info": mf.info}

    # -- main loop
    def _run(self) -> FinishedEvent:  # noqa: C901 - the loop reads best in one piece
        cfg, dist = self.cfg, self.dist
        if dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.out / "ckpt.pt"
        state = None
        if self.resume:
            if not ckpt_path.exists():
                raise TrainingError(f"nothing to resume: {ckpt_path} does not exist")
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise TrainingError(f"'{ckpt_path}' is not an MLRN Studio training checkpoint")
        elif ckpt_path.exists():
            raise TrainingError(
                f"{self.out} already holds a run (ckpt.pt); pass --resume to continue it or choose another --out"
            )
        if cfg.save_as and dist.main:
            try:
                registry.validate_name(cfg.save_as)
            except registry.ModelError as exc:
                raise TrainingError(str(exc)) from exc
            if not self.resume and registry.user_model_path(cfg.save_as).exists():
                raise TrainingError(f"a user model named '{cfg.save_as}' already exists: choose another --save-as "
                                    "name or delete it first (mlrn models lists them)")
        device = self._setup_device()

        # data
        min_hr = cfg.patch * cfg.scale
        cache = None
        with contextlib.suppress(Exception):
            cache = paths.cache_dir() / "lr"
        try:
            pairs, scan = data_mod.load_pairs(cfg.data, cfg.scale, min_hr, cfg.exclude, cache, "training")
            val_pairs: list[data_mod.ImagePair] = []
            if cfg.val and dist.main:
                val_pairs, _ = data_mod.load_pairs(cfg.val, cfg.scale, 2 * cfg.scale + 11, (), cache,
                                                   "validation")
        except data_mod.DataError as exc:
            raise TrainingError(str(exc)) from exc
        degradation = cfg.degradation()
        sampler = data_mod.PatchSampler(pairs, cfg.scale, cfg.patch, cfg.batch, cfg.seed, dist.rank,
                                        dist.world, degradation, cfg.sample_by_area)
        data_desc = {
            "folders": [str(Path(f)) for f in cfg.data],
            "images": len(pairs),
            "skipped": [[str(s.path), s.reason] for s in scan.skipped],
            "val_folders": [str(Path(f)) for f in cfg.val],
            "val_images": len(val_pairs),
            "excluded": list(cfg.exclude),
        }

        # model, optimiser, EMA
        model, base = self._build_model()
        if state is not None:
            model = MLRN(**state["model"]["hparams"])
            model.load_state_dict(state["model"]["state_dict"], strict=True)
            base = state.get("base")
        model.to(device)
        # channels_last: faster on CUDA and on oneDNN CPUs (1.15x fp32, 1.16x bf16 here); gloo's DDP buffer
        # broadcast cannot handle channels_last CPU tensors, so a multi-process CPU run stays NCHW.
        channels_last = device.type == "cuda" or (device.type == "cpu" and not dist.enabled)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        ema = copy.deepcopy(model).eval() if cfg.ema > 0 else None
        if ema is not None:
            for p in ema.parameters():
                p.requires_grad_(False)
        opt = torch.optim.Adam(model.parameters(), lr=lr_at(0, cfg), betas=cfg.betas, eps=1e-8)
        step, elapsed0, history, best = 0, 0.0, [], {"psnr": -1.0, "step": -1}
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            step, elapsed0 = int(state["step"]), float(state.get("elapsed_s", 0.0))
            history, best = list(state.get("history", [])), dict(state.get("best", best))
            torch.set_rng_state(state["rng"]["torch"])
        self.step = step
        self.model = model  # the unwrapped network being trained (for callers after run())
        train_model: torch.nn.Module = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile and getattr(sys, "frozen", False):
            raise TrainingError("--compile is not available in the desktop app bundle; use a pip install of "
                                "MLRN Studio (it needs a C++ compiler and Python headers)")
        if cfg.compile:
            train_model = torch.compile(train_model)
        autocast, scaler = autocast_for(device, cfg.amp)

        max_steps = cfg.max_steps
        self._emit(StartedEvent(step, max_steps, device_label(device), len(pairs), len(val_pairs),
                                tuple((str(s.path), s.reason) for s in scan.skipped), state is not None))
        if cfg.max_steps is not None and step >= cfg.max_steps:
            log.info("the run already reached %d steps", step)

        # validation set prepared once: LR tensors and the bicubic baseline
        # With a degradation ("match camera JPEGs"), the validation LR gets it too, drawn once per image from
        # a fixed seed: the best checkpoint is then the one best at the inputs it is trained for, and the
        # scores match the wizard's own hold-out evaluation (app.wizard_core.load_eval_images).
        val_lr = [degradation.apply_for_eval(p.lr, i, hr=p.hr, scale=cfg.scale) for i, p in enumerate(val_pairs)]
        val_cache = [(p, lr, imresize(lr, cfg.scale)) for p, lr in zip(val_pairs, val_lr)]
        bicubic = mean_score([score(bi, p.hr, cfg.scale) for p, _lr, bi in val_cache]) if val_cache else None
        base_score: float | None = base.get("val_psnr") if base else None

        def validate() -> Score | None:
            if not val_cache:
                return None
            net = ema if ema is not None else model
            net.eval()
            runner = TileRunner(net, device, half=False)
            scores, preview = [], None
            for i, (p, lr, _bi) in enumerate(val_cache):
                sr = upscale_array(net, lr.astype(np.float32) / 255, tile=cfg.val_tile, runner=runner)
                scores.append(score(sr, p.hr, cfg.scale))
                if i == 0:
                    preview = (np.clip(sr, 0, 1) * 255 + 0.5).astype(np.uint8)
            net.train()
            self._preview = preview
            return mean_score(scores)

        def checkpoint() -> None:
            if not dist.main:
                return
            payload = {
                "format": CHECKPOINT_FORMAT,
                "version": 1,
                "model": registry.make_model_payload(model.hparams, registry.model_state(model), {}),
                "ema": registry.model_state(ema) if ema is not None else None,
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed(),
                "config": cfg.to_json(),
                "rng": {"torch": torch.get_rng_state()},
                "data": data_desc,
                "history": history,
                "best": best,
                "base": base,
            }
            registry.atomic_torch_save(payload, ckpt_path)
            self._emit(CheckpointEvent(step, str(ckpt_path)))

        def export_model(val: Score | None) -> None:
            """model.pt: the best weights by validation PSNR (the latest ones when there is no validation)."""
            net = ema if ema is not None else model
            info = {
                "provenance": {
                    "config": cfg.to_json(),
                    "data": data_desc,
                    "steps": step,
                    "train_seconds": round(elapsed(), 1),
                    "device": device_label(device),
                    "world_size": dist.world,
                    "base": {k: v for k, v in (base or {}).items() if k != "info"} or None,
                    "torch": str(torch.__version__),
                },
                "metrics": {
                    "val_psnr": round(val.psnr, 4) if val else None,
                    "val_ssim": round(val.ssim, 5) if val else None,
                    "val_bicubic_psnr": round(bicubic.psnr, 4) if bicubic else None,
                    "val_base_psnr": round(base_score, 4) if base_score is not None else None,
                    "val_step": step,
                },
            }
            registry.save_model(self.out / "model.pt", net, info)

        if dist.main:
            (self.out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        t_start = time.perf_counter()
        paused_s = [0.0]

        def elapsed() -> float:
            """Seconds this run has trained (all sessions), not counting pauses: what max_minutes limits."""
            return elapsed0 + time.perf_counter() - t_start - paused_s[0]
        self._preview = None

        # the base model's score on the validation set, once, before fine-tuning changes it
        if dist.main and base is not None and base_score is None and val_cache:
            s0 = validate()
            base_score = s0.psnr if s0 else None
            base["val_psnr"] = base_score

        prefetch = data_mod.Prefetcher(sampler, step)
        model.train()
        steps_done_here, t_loop = 0, time.perf_counter()
        stopped = False
        try:
            while True:
                minutes = elapsed() / 60
                done = (max_steps is not None and step >= max_steps) or (
                    cfg.max_minutes is not None and minutes >= cfg.max_minutes
                )
                want_stop = self._stop.is_set()
                if dist.enabled:  # every rank stops at the same step
                    import torch.distributed as tdist

                    flags = torch.tensor([float(done), float(want_stop)], device=device)
                    tdist.all_reduce(flags, op=tdist.ReduceOp.MAX)
                    done, want_stop = bool(flags[0].item()), bool(flags[1].item())
                if done or want_stop:
                    stopped = want_stop and not done
                    break
                if not self._running.is_set():
                    t_pause = time.perf_counter()
                    self._running.wait()
                    paused_s[0] += time.perf_counter() - t_pause
                    continue
                lr_val = lr_at(step, cfg, elapsed())
                for g in opt.param_groups:
                    g["lr"] = lr_val
                lo_np, hi_np = prefetch.get(step)
                lo = torch.from_numpy(lo_np).to(device, non_blocking=True)
                hi = torch.from_numpy(hi_np).to(device, non_blocking=True)
                if channels_last:
                    lo = lo.contiguous(memory_format=torch.channels_last)
                with autocast:
                    loss = F.l1_loss(train_model(lo).float(), hi)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                if ema is not None:
                    with torch.no_grad():
                        for pe, pm in zip(ema.parameters(), model.parameters()):
                            pe.lerp_(pm.detach(), 1 - cfg.ema)
                step += 1
                self.step = step
                steps_done_here += 1
                if dist.main and (step % cfg.log_every == 0 or step == 1):
                    rate = steps_done_here / max(1e-9, time.perf_counter() - t_loop)
                    eta = (max_steps - step) / rate if max_steps and rate > 0 else None
                    if cfg.max_minutes is not None:
                        left = cfg.max_minutes * 60 - elapsed()
                        eta = left if eta is None else min(eta, left)
                    self._emit(StepEvent(step, float(loss.item()), lr_val, rate,
                                         elapsed(), eta))
                if step % cfg.val_every == 0:
                    self._validate_and_save(validate, checkpoint, export_model, history, best, bicubic,
                                            base_score, step)
        finally:
            prefetch.close()
        # the end: final validation, checkpoint and model.pt
        if steps_done_here > 0 and step % cfg.val_every != 0 or not (self.out / "model.pt").exists():
            self._validate_and_save(validate, checkpoint, export_model, history, best, bicubic, base_score,
                                    step)
        total_s = elapsed()
        user_model = None
        if dist.main and cfg.save_as and not stopped:
            user_model = self._register(cfg.save_as, data_desc, step, total_s, device_label(device), history,
                                        bicubic, base_score)
        if dist.enabled:
            import torch.distributed as tdist

            tdist.barrier()
        fin = FinishedEvent(step, str(self.out / "model.pt"), best["psnr"] if best["psnr"] >= 0 else None,
                            total_s, stopped, user_model)
        self._emit(fin)
        return fin

    def _validate_and_save(self, validate, checkpoint, export_model, history, best, bicubic, base_score,
                           step) -> Score | None:
        val = validate() if self.dist.main else None
        if val is not None and bicubic is not None:
            is_best = val.psnr > best["psnr"]
            if is_best:
                best.update(psnr=val.psnr, ssim=val.ssim, step=step)
            history.append({"step": step, "psnr": val.psnr, "ssim": val.ssim})
            self._emit(ValidationEvent(step, val.psnr, val.ssim, bicubic.psnr, bicubic.ssim, best["psnr"],
                                       is_best, base_score, self._preview))
        else:
            is_best = True  # no validation: the latest weights are the best we know
        if self.dist.main and (is_best or not (self.out / "model.pt").exists()):
            export_model(val)
        checkpoint()
        if self.dist.enabled:
            import torch.distributed as tdist

            tdist.barrier()
        return val

    def _register(self, name, data_desc, step, elapsed, device, history, bicubic, base_score) -> str:
        model_path = self.out / "model.pt"
        mf = registry.read_model_file(model_path)
        m = mf.info.get("metrics", {})
        card = model_card(
            name=name,
            scale=self.cfg.scale,
            base=self.cfg.init or "none (trained from scratch)",
            data=data_desc,
            steps=step,
            seconds=elapsed,
            device=device,
            val_psnr=m.get("val_psnr"),
            val_ssim=m.get("val_ssim"),
            bicubic_psnr=bicubic.psnr if bicubic else None,
            bicubic_ssim=bicubic.ssim if bicubic else None,
            base_psnr=base_score,
            config=self.cfg,
        )
        registry.register_user_model(model_path, name, card, overwrite=True)
        return name


def model_card(*, name, scale, base, data, steps, seconds, device, val_psnr, val_ssim, bicubic_psnr, base_psnr,
               config: TrainConfig, bicubic_ssim=None, degraded_inputs: bool | None = None) -> str:
    """The Markdown card written next to a user model.

    ``degraded_inputs``: whether the scores were measured on LR inputs with the training degradation (what
    the trainer validates on when one is set); ``None`` means "as the trainer did", i.e. when ``config`` has one.
    """
    if degraded_inputs is None:
        degraded_inputs = config.degradation().active
    protocol = "MATLAB bicubic LR, Y channel, border = scale"
    if degraded_inputs:
        protocol = ("MATLAB bicubic LR, then the training degradation drawn once per image from a fixed seed, "
                    "Y channel, border = scale")

    def f(v, unit=" dB"):
        return "n/a" if v is None else f"{v:.2f}{unit}"

    verdict = ""
    if val_psnr is not None and base_psnr is not None:
        gain = val_psnr - base_psnr
        verdict = (f"\n**{'Better' if gain > 0 else 'Not better'} than the base model on the hold-out: "
                   f"{gain:+.2f} dB.**\n")
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""# {name}

MLRN x{scale}, fine-tuned with MLRN Studio on {when}.
{verdict}
| | PSNR (Y) | SSIM |
|---|---|---|
| bicubic | {f(bicubic_psnr)} | {'n/a' if bicubic_ssim is None else f'{bicubic_ssim:.4f}'} |
| base model | {f(base_psnr)} | |
| this model | {f(val_psnr)} | {'n/a' if val_ssim is None else f'{val_ssim:.4f}'} |

Measured on the hold-out/validation images ({data.get('val_images', 0)}) with the protocol of
EVALUATION.md ({protocol}).

- Base model: {base}
- Data: {', '.join(data.get('folders', []))} ({data.get('images', 0)} images,
  {len(data.get('skipped', []))} skipped, {len(data.get('excluded', []))} held out)
- LR inputs: {config.degradation().describe()}
- Steps: {steps} (batch {config.batch}, LR patch {config.patch} px, lr {config.lr}, {config.schedule})
- Time: {seconds / 60:.1f} min on {device}
"""
