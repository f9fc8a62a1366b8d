"""Tiled inference: upscale an image of any size with bounded working memory.

The image is cut into overlapping LR tiles on a regular grid; each tile runs through the network
(``torch.inference_mode``, at the precision :func:`resolve_precision` picks: fp16 + channels_last on
CUDA, bf16 autocast + channels_last on CPUs with native bf16 kernels, fp32 elsewhere) and is blended into
the output with linear ramps across the overlaps. The grid is a product of row and column intervals, so
the image splits into *cells* between consecutive tile edges, each covered by a known set of tiles (one
inside a tile, two or four in the overlaps). A cell covered by one tile is written to the output as soon
as that tile is done; an overlap cell is summed in a small float32 buffer that is written out and freed
once its last tile has been added. The output can therefore be uint8 or uint16 (rounded exactly as the
image writer rounds): the only full-size buffer is the output itself, and the float32 working memory is
the overlap cells still waiting for a neighbour (one strip of overlaps in grid order). Tiles can be taken
in any order (the GUI computes the visible ones first); each tile reports the cells it made final.
Progress and cancel are plain callables, so the core stays free of Qt.

Alpha is upscaled with OpenCV's bicubic (a = -0.75) rather than the network: masks have no texture to
restore, bicubic keeps edges smooth (no jaggies) and it costs nothing next to the RGB pass.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mlrn_core import edges

if TYPE_CHECKING:  # imported where PyTorch runs: an OpenVINO path with a known model never imports it
    import torch

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 16
CPU_TILE = 192  # measured: on CPU small tiles run faster (cache) and use less memory than 384
MIN_TILE = 32

#: Inference paths, named by their precision (:mod:`mlrn_core.backends` has the table): "auto" is the fastest
#: path measured on this machine for the model (:func:`mlrn_core.backends.make_runner`); the others force one.
#: "openvino" is OpenVINO's fp32 on the CPU, "openvino-int8" its int8 network of a built-in model,
#: "openvino-gpu" OpenVINO on an Intel GPU (issue 31).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "openvino", "openvino-int8", "openvino-gpu")
OPENVINO_PRECISIONS = ("openvino", "openvino-int8", "openvino-gpu")

_LABELS = {
    "fp32": "PyTorch {dev} fp32",
    "bf16": "PyTorch {dev} bf16",
    "fp16": "PyTorch {dev} fp16",
    "openvino": "OpenVINO CPU fp32",
    "openvino-int8": "OpenVINO CPU int8",
    "openvino-gpu": "OpenVINO GPU",
}


def path_label(precision: str, device: torch.device | HostCPU | str = "cpu") -> str:
    """What a user reads for a path: "PyTorch CPU bf16", "OpenVINO CPU int8", "PyTorch CUDA fp16"..."""
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    dev = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}.get(kind, str(device).upper())
    return _LABELS.get(precision, precision).format(dev=dev)


#: Upscaling qualities: "normal" runs each tile through the network once; "best" is the geometric
#: self-ensemble (Lim et al., EDSR, 2017): the tile in its 8 flips and rotations, each result turned back
#: and the 8 averaged, for about 8x the time (gain and cost: ``benchmarks/self_ensemble.py``).
QUALITIES = ("normal", "best")
ENSEMBLE_SIZE = 8

#: What quality "best" buys and costs with the shipped paper models: Set14 PSNR gain over "normal" (dB, Y,
#: border = scale, docs/EVALUATION.md) per scale, and its time as a multiple of normal's on a 480x320
#: photo crop; measured side by side by ``python benchmarks/self_ensemble.py`` (docs/quality.md has the
#: machine and the whole table).
BEST_QUALITY_GAIN_DB: dict[int, float] = {2: 0.10, 3: 0.07, 4: 0.09}
BEST_QUALITY_TIME = 8.0


def quality_label(quality: str, scale: int) -> str:
    """The short name of a quality choice, as the app's and Batch Export's lists show it."""
    if quality == "normal":
        return "Normal"
    if quality != "best":
        raise ValueError(f"unknown quality '{quality}': expected {', '.join(QUALITIES)}")
    gain = BEST_QUALITY_GAIN_DB.get(scale)
    return f"Best ({f'+{gain:.2f} dB, ' if gain is not None else ''}{BEST_QUALITY_TIME:.0f}x time)"


def quality_note(scale: int) -> str:
    """What quality "best" does, gains and costs at ``scale``, in a sentence (tooltips, ``mlrn upscale``)."""
    gain = BEST_QUALITY_GAIN_DB.get(scale)
    measured = f"+{gain:.2f} dB PSNR over Normal on Set14 at x{scale} with the built-in model, " if gain else ""
    return (
        f"best quality: each tile upscaled 8 times, flipped and rotated, and the results averaged (self-ensemble): "
        f"{measured}for about {BEST_QUALITY_TIME:.0f}x the time"
    )


ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]
#: ``on_tile(tile, rects)``: the LR rectangles ``(x0, y0, x1, y1)`` of the output made final by ``tile``.
TileFn = Callable[["Tile", list[tuple[int, int, int, int]]], None]


class Cancelled(Exception):
    """Raised when the cancel callable returned True; nothing partial is returned."""


class DeviceError(Exception):
    """The requested device is not available."""


@dataclass(frozen=True)
class HostCPU:
    """The CPU as the device of a run that does not import torch (:func:`host_cpu`): it answers what the
    OpenVINO paths, the labels and Auto's cache ask of a ``torch.device("cpu")`` (``type``, ``index``, its
    text), and carries the CPU threads the networks run on (Auto's measured count, or ``--threads``)."""

    threads: int
    type: str = "cpu"
    index: None = None

    def __str__(self) -> str:
        return "cpu"


def host_cpu(preference: str | None, threads: int) -> HostCPU | None:
    """The CPU as a :class:`HostCPU`, when it is the device ``preference`` ("auto" or "cpu") picks and that
    is known without importing torch; else None (then :func:`pick_device` decides, with torch).

    "auto" picks CUDA or Apple MPS where they are: the CPU is known to be the pick only when the torch
    installed here is built for neither GPU (read from its ``version.py``, not imported), or built for CUDA
    or ROCm on a machine without that driver, and the machine is not a Mac (MPS)."""
    pref = str(preference or "auto").lower()
    if threads < 1 or pref not in ("auto", "cpu"):
        return None
    if pref == "auto" and (sys.platform == "darwin" or gpu_possible()):
        return None
    return HostCPU(threads)


@functools.cache
def _torch_build() -> dict[str, str | None] | None:
    """The ``__version__``, ``cuda`` and ``hip`` of the torch installed here, read from its ``version.py``
    without importing it (once a process); None when that file cannot be read (e.g. torch not installed as
    files)."""
    try:
        spec = importlib.util.find_spec("torch")
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if not folders:
            return None
        with open(os.path.join(folders[0], "version.py"), encoding="utf-8") as fh:
            text = fh.read(1 << 16)
    except (OSError, ImportError, ValueError):
        return None
    found: dict[str, str | None] = {}
    for name in ("__version__", "cuda", "hip"):
        m = re.search(rf"^{name}\s*(?::[^=]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)\s*$", text, re.M)
        if m is None:
            return None
        found[name] = m.group(1) if m.group(1) is not None else m.group(2)
    return found


def torch_version() -> str:
    """torch's version, known without importing it ("unknown" where :func:`_torch_build` cannot read it)."""
    build = _torch_build()
    return (build or {}).get("__version__") or "unknown"


def gpu_possible() -> bool:
    """Whether torch could find a CUDA or ROCm GPU here, known without importing it: False only for a torch
    built for neither, or for one whose GPU driver is absent (no libcuda / no /dev/kfd)."""
    build = _torch_build()
    if build is None:
        return True
    if build.get("hip"):
        return os.path.exists("/dev/kfd")
    if build.get("cuda"):
        import ctypes

        try:
            ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
        except OSError:
            return False
        return True
    return False


_THREADS: int | None = None  # set_threads: the CPU threads asked for (mlrn upscale --threads)


def set_threads(threads: int) -> None:
    """Run CPU inference on ``threads`` threads: PyTorch's (now if it is imported, else when a PyTorch path
    sets up) and OpenVINO's networks compiled after this."""
    global _THREADS
    _THREADS = int(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_THREADS)


def threads_asked() -> int | None:
    """The CPU threads :func:`set_threads` asked for, None for torch's default."""
    return _THREADS


def torch_with_threads():
    """torch, imported by the first PyTorch path (or label) that needs it, running :func:`set_threads`'s count."""
    import torch

    if _THREADS and torch.get_num_threads() != _THREADS:
        torch.set_num_threads(_THREADS)
    return torch


def thread_setting() -> str:
    """What decides the CPU threads of inference, known without importing torch: :func:`set_threads`'s count,
    or torch's default, which follows the CPU count and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``."""
    if _THREADS:
        return f"threads={_THREADS}"
    env = ",".join(f"{k}={os.environ.get(k, '')}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    return f"default,cpus={os.cpu_count()},{env}"


def pick_device(preference: str | torch.device | None = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for ``auto``; an explicit choice must be available."""
    import torch

    pref = str(preference or "auto").lower()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available (is a CUDA build of torch installed?)")
    if pref == "mps" and not mps_ok:
        raise DeviceError("Apple MPS was requested but is not available on this machine")
    if not (pref == "cpu" or pref == "mps" or pref.startswith("cuda")):
        raise DeviceError(f"unknown device '{preference}': expected auto, cpu, cuda, cuda:N or mps")
    return torch.device(pref)


def device_label(device: torch.device | HostCPU) -> str:
    """Human name of a device, e.g. 'NVIDIA GeForce RTX 4090 (CUDA)' or 'CPU (8 threads)'."""
    if device.type == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    n = device.threads if isinstance(device, HostCPU) else torch_with_threads().get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"


@dataclass(frozen=True)
class Tile:
    """One LR tile ``[y0, y1) x [x0, x1)`` at grid position (row, col)."""

    index: int
    row: int
    col: int
    y0: int
    y1: int
    x0: int
    x1: int


def _spans(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """(starts, size): the fewest tiles of at most ``tile`` px that cover ``length`` with overlaps of at least
    ``overlap``, each cut down to the smallest size that still does. The network computes no more than it must:
    a 1200 px side in 192 px tiles is 7 tiles of 186 px, not 7 of 192 overlapping by up to 24 px
    (``tests/test_tiling.py``)."""
    if length <= tile:
        return [0], length
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    while True:
        # spread the tiles evenly so that the last one ends at `length`
        starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
        if size >= tile or all(b - a <= size - overlap for a, b in zip(starts, starts[1:])):
            return starts, size
        size += 1  # rounding the starts left an overlap a pixel short


def plan_tiles(height: int, width: int, tile: int, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """The tile grid for an LR image of ``height`` x ``width``."""
    if tile < MIN_TILE:
        raise ValueError(f"tile size must be at least {MIN_TILE} px, got {tile}")
    overlap = max(0, min(overlap, tile // 2))
    (ys, th), (xs, tw) = _spans(height, tile, overlap), _spans(width, tile, overlap)
    tiles = []
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            tiles.append(Tile(len(tiles), r, c, y, y + th, x, x + tw))
    return tiles


def _ramp_weights(starts_ends: list[tuple[int, int]], length: int, scale: int) -> list[np.ndarray]:
    """Per interval, a 1-D HR weight: linear ramps where it overlaps its neighbours, 1 elsewhere."""
    weights = []
    for i, (a, b) in enumerate(starts_ends):
        w = np.ones((b - a) * scale, np.float32)
        if i > 0:
            ov = (starts_ends[i - 1][1] - a) * scale
            if ov > 0:
                w[:ov] = (np.arange(ov, dtype=np.float32) + 0.5) / ov
        if i + 1 < len(starts_ends):
            ov = (b - starts_ends[i + 1][0]) * scale
            if ov > 0:
                w[-ov:] = np.minimum(w[-ov:], ((np.arange(ov, dtype=np.float32) + 0.5) / ov)[::-1])
        weights.append(w)
    return weights


def auto_tile_size(device: torch.device, features: int = 32, blocks: int = 8, scale: int = 2) -> int:
    """A tile size (LR px) that fits the device's free memory with room to spare."""
    if device.type != "cuda":
        return CPU_TILE if device.type == "cpu" else 512
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    # peak activations per LR pixel: the GFF concatenation, a few G-channel maps, the HR tail (fp16)
    bytes_per_px = 2 * (features * (blocks + 8) + 3 * features * scale * scale)
    budget = 0.4 * free
    side = int(math.sqrt(budget / bytes_per_px))
    return int(max(128, min(2048, side // 16 * 16)))


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # not imported: not torch's error
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def cpu_bf16_supported() -> bool:
    """True where oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(device: torch.device, precision: str | None = "auto") -> str:
    """The precision tiles run at on ``device``: "fp32", "bf16" or "fp16".

    "auto" is fp16 on CUDA, bf16 on a CPU with native bf16 kernels (measured 2.5x the fp32 speed at
    Set14 PSNR within 0.01 dB, ``benchmarks/precision.py``), fp32 on other CPUs (emulated bf16 is slower
    than fp32) and on Apple MPS. A forced precision is honoured where the device can run it.
    """
    p = str(precision or "auto").lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': expected {', '.join(PRECISIONS)}")
    if p == "auto":
        if device.type == "cuda":
            return "fp16"
        if device.type == "cpu" and cpu_bf16_supported():
            return "bf16"
        return "fp32"
    if p == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is for GPUs; on a CPU use bf16 (fast where the CPU supports it) or fp32")
    if p in OPENVINO_PRECISIONS:
        from mlrn_core import openvino_backend

        if device.type != "cpu":
            raise ValueError(
                f"precision {p} runs on the CPU device (OpenVINO), not on {device.type}: choose the CPU device"
            )
        if not openvino_backend.available():
            raise ValueError(openvino_backend.INSTALL_ADVICE)
    return p


class TileRunner:
    """Runs single tiles through a model on a device, on one inference path chosen once.

    ``precision`` is one of :data:`PRECISIONS`: "auto" here is the fixed rule of :func:`resolve_precision`;
    Auto's measured choice comes from :func:`mlrn_core.backends.make_runner`, which passes it as ``auto`` (a
    :class:`mlrn_core.backends.Choice`, named by :meth:`describe`); the others force one. ``half`` is the
    older switch: False forces fp32. CUDA and MPS run fp16 (and CUDA bf16) as half-precision weights; CPU bf16
    runs under autocast, so weights stay fp32 and oneDNN picks the bf16 kernels, with channels_last (the layout
    those kernels want).
    The OpenVINO paths run the network compiled by OpenVINO (:mod:`mlrn_core.openvino_backend`). ``ensemble``
    True runs every tile as the geometric self-ensemble (quality "best", see :data:`QUALITIES`).

    When an OpenVINO path cannot start or fails on a tile (a device gone, a driver error) and ``fallback`` is
    True, the runner goes on with PyTorch (Auto's fixed rule) and ``fallback_note`` says so in one line.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        half: bool | None = None,
        precision: str | None = None,
        ensemble: bool = False,
        fallback: bool = True,
        auto=None,
    ) -> None:
        self.device = device
        self.ensemble = bool(ensemble)
        self.scale = int(model.scale)
        self.fallback = fallback
        self.fallback_note: str | None = None
        self.auto = auto  # mlrn_core.backends.Choice: the path Auto chose, and what it measured
        if precision is None:
            precision = "fp32" if half is False else "auto"
        p = str(precision).lower()
        self.precision = p if fallback and p in OPENVINO_PRECISIONS else resolve_precision(device, precision)
        self._weights_dtype = None
        self._autocast = None
        self._openvino = None
        if self.precision in OPENVINO_PRECISIONS:  # converted once (cached) and compiled by OpenVINO
            try:
                resolve_precision(device, self.precision)  # not installed, or not the CPU device: said, then PyTorch
                from mlrn_core.openvino_backend import OpenVinoNetwork

                self._openvino = OpenVinoNetwork(
                    model,
                    "GPU" if self.precision == "openvino-gpu" else "CPU",
                    threads=device.threads if isinstance(device, HostCPU) else torch_with_threads().get_num_threads(),
                    int8=self.precision == "openvino-int8",
                )
            except Exception as exc:  # noqa: BLE001 - OpenVINO failing to start is never the end of the run
                if not fallback:
                    raise
                self._fall_back(exc)
        self.half = self.channels_last = False
        self.model = model
        if self._openvino is None:
            self._set_up_pytorch(model)

    def _fall_back(self, exc: BaseException) -> None:
        failed = path_label(self.precision, self.device)
        self._openvino = None
        self.precision = resolve_precision(self.device, "auto")
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        self.fallback_note = f"{failed} failed ({reason}); running {path_label(self.precision, self.device)} instead"
        log.warning("%s", self.fallback_note)

    def _set_up_pytorch(self, model) -> None:
        """Move the network (a :class:`mlrn_core.known_models.KnownModel`'s file loaded first) to the device at
        this runner's precision and layout: when PyTorch runs the tiles, from the start or after a fall-back."""
        from mlrn_core.registry import network_of

        torch = torch_with_threads()
        device = self._torch_device = torch.device(str(self.device))
        self.half = self.precision == "fp16"
        if device.type == "cpu":
            if self.precision == "bf16":
                self._autocast = torch.bfloat16
        elif self.precision != "fp32":
            self._weights_dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        self.channels_last = device.type == "cuda" or self._autocast is not None
        m = network_of(model).to(device).eval()
        if self._weights_dtype is not None:
            m = m.to(self._weights_dtype)
        if self.channels_last:
            m = m.to(memory_format=torch.channels_last)
        self.model = m

    @property
    def quality(self) -> str:
        """ "best" when every tile runs as the self-ensemble, else "normal"."""
        return "best" if self.ensemble else "normal"

    def describe(self) -> str:
        """The path that runs, for captions, logs and batch records: e.g. 'OpenVINO int8 (Auto, 2.6x)',
        'PyTorch bf16' or 'PyTorch fp32, best quality'."""
        text = (
            path_label(self.precision, self.device).replace(" CPU ", " ").replace(" CUDA ", " ").replace(" MPS ", " ")
        )
        if self.auto is not None and self.auto.precision == self.precision and self.auto.measured and self.auto.seconds:
            text += f" (Auto, {self.auto.speedup:.1f}x)"
        elif self.auto is not None and self.fallback_note is None:
            text += " (Auto)"
        return text + (", best quality" if self.ensemble else "")

    def where(self) -> str:
        """The device the network runs on, e.g. 'CPU (2 threads)' or 'Intel GPU (OpenVINO)'."""
        return (
            "Intel GPU (OpenVINO)"
            if self._openvino is not None and self.precision == "openvino-gpu"
            else device_label(self.device)
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """One PyTorch pass of an NCHW batch at this runner's precision and layout; float32 out, not clamped."""
        import torch

        if self._weights_dtype is not None:
            x = x.to(self._weights_dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast("cpu", dtype=self._autocast) if self._autocast is not None else contextlib.nullcontext()
        with ctx:
            return self.model(x).float()

    def run(self, lr_hwc: np.ndarray) -> np.ndarray:
        """float32 HxWx3 in [0,1] -> float32 (H*s)x(W*s)x3, clamped to [0,1]."""
        if self._openvino is not None:
            try:
                return self._run_openvino(lr_hwc)
            except Exception as exc:  # noqa: BLE001 - a device gone mid-run: PyTorch takes over the tiles
                if not self.fallback:
                    raise
                self._fall_back(exc)
                self._set_up_pytorch(self.model)
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1), dtype=np.float32))[None]
            x = x.to(self._torch_device)
            if not self.ensemble:
                y = self._forward(x)
            else:
                y = None
                for k in range(ENSEMBLE_SIZE):
                    out = undo_transform(self._forward(dihedral_transform(x, k)), k)
                    y = out if y is None else y.add_(out)
                y.div_(ENSEMBLE_SIZE)
            y = y.clamp_(0, 1)[0]
            return y.permute(1, 2, 0).contiguous().cpu().numpy()

    def _run_openvino(self, lr_hwc: np.ndarray) -> np.ndarray:
        """:meth:`run` through the OpenVINO network, in numpy (no torch): the same sums in the same order."""
        x = np.ascontiguousarray(lr_hwc.transpose(2, 0, 1), dtype=np.float32)[None]
        if not self.ensemble:
            y = self._openvino(x)
        else:
            y = None
            for k in range(ENSEMBLE_SIZE):
                out = undo_transform(self._openvino(np.ascontiguousarray(dihedral_transform(x, k))), k)
                y = out.copy() if y is None else np.add(y, out, out=y)
            y /= np.float32(ENSEMBLE_SIZE)
        return np.ascontiguousarray(np.clip(y, 0, 1, out=y)[0].transpose(1, 2, 0))


def _flip(x, axis: int):
    return np.flip(x, axis) if isinstance(x, np.ndarray) else x.flip(axis)


def dihedral_transform(x, k: int):
    """The ``k``-th (0-7) of the 8 flips and rotations of an NCHW tensor or array: bit 2 transposes H and W,
    bit 0 flips W, bit 1 flips H; 0 is the identity. :func:`undo_transform` turns a result back."""
    if k & 4:
        x = x.swapaxes(2, 3)
    if k & 1:
        x = _flip(x, 3)
    if k & 2:
        x = _flip(x, 2)
    return x


def undo_transform(y, k: int):
    """The inverse of :func:`dihedral_transform`: the same steps in reverse order (each is its own inverse)."""
    if k & 2:
        y = _flip(y, 2)
    if k & 1:
        y = _flip(y, 3)
    if k & 4:
        y = y.swapaxes(2, 3)
    return y


def to_output_dtype(f: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """float pixels in [0,1] -> ``dtype``: float32 clipped, or uint8/uint16 rounded as the image writer does."""
    dtype = np.dtype(dtype)
    x = np.asarray(f, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
    if dtype == np.float32:
        return np.clip(x, 0.0, 1.0)
    out = np.clip(x, 0.0, 1.0) * np.float32(np.iinfo(dtype).max)
    np.rint(out, out=out)
    return out.astype(dtype)


OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16))


def upscale_array(
    model: torch.nn.Module,
    lr: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    device: torch.device | str | None = "auto",
    half: bool | None = None,
    precision: str | None = None,
    ensemble: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    priority: Callable[[Tile], float] | None = None,
    on_tile: TileFn | None = None,
    runner: TileRunner | None = None,
    dtype: np.dtype | type = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Upscale float32 HxWx3 RGB in [0,1] by ``model.scale`` into a (sH)x(sW)x3 array and return it.

    The result is float32 in [0,1] by default, or uint8/uint16 (``dtype``), rounded as the writer
    rounds; ``out`` is a preallocated output of that shape and one of those dtypes (e.g. a display
    canvas), written in place. ``ensemble`` runs each tile as the 8-way self-ensemble (quality "best";
    ignored when ``runner`` is given: the runner's own setting holds). ``tile`` (LR px, None = from free
    device memory) is halved and the image restarted when the device runs out of memory.
    ``priority(tile)`` is asked before each tile is picked (lowest first), so the caller can re-prioritise
    while it runs; a ``priority`` with a ``version()`` attribute is asked only when that value changes (the
    pending tiles are sorted once per version, which saves thousands of calls per pick on a big photo).
    ``on_tile(tile, rects)`` gets the LR rectangles ``(x0, y0, x1, y1)`` of the output that became final
    (every covering tile blended in) with that tile (possibly none: a tile whose every cell still waits for
    a neighbour). Raises
    :class:`Cancelled`.
    """
    if lr.ndim != 3 or lr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {lr.shape}")
    runner = runner or TileRunner(model, pick_device(device), half, precision, ensemble)
    s = runner.scale
    shape = (lr.shape[0] * s, lr.shape[1] * s, 3)
    if out is None:
        if np.dtype(dtype) not in OUTPUT_DTYPES:
            raise ValueError(f"output dtype must be float32, uint8 or uint16, got {np.dtype(dtype)}")
        out = np.empty(shape, dtype)
    elif out.shape != shape or out.dtype not in OUTPUT_DTYPES:
        raise ValueError(f"out must be a float32/uint8/uint16 array of shape {shape}, got {out.dtype} {out.shape}")
    if tile is None:
        hp = getattr(model, "hparams", {})
        tile = auto_tile_size(runner.device, hp.get("features", 32), hp.get("blocks", 8), s)
    work_lr, work_out, work_on_tile = lr, out, on_tile
    padded, _, box = edges.pad_thin(lr)
    if box is not None:
        # A picture 1-15 px high or wide is all border, where the network's zero padding pulls colours dark:
        # it runs edge-padded to edges.MIN_SIDE, and each final part is cut back into ``out`` as it is made,
        # so every caller (app, batch, CLI, wizard) gets the same result and the same on_tile rectangles.
        top, left, h, w = box
        work_lr = padded
        work_out = np.empty((padded.shape[0] * s, padded.shape[1] * s, 3), out.dtype)

        def work_on_tile(t: Tile, rects: list[tuple[int, int, int, int]]) -> None:
            mine = []
            for x0, y0, x1, y1 in rects:
                a0, b0, a1, b1 = max(x0 - left, 0), max(y0 - top, 0), min(x1 - left, w), min(y1 - top, h)
                if a1 > a0 and b1 > b0:
                    ys, xs = slice((b0 + top) * s, (b1 + top) * s), slice((a0 + left) * s, (a1 + left) * s)
                    out[b0 * s : b1 * s, a0 * s : a1 * s] = work_out[ys, xs]
                    mine.append((a0, b0, a1, b1))
            if on_tile is not None:
                on_tile(t, mine)

    while True:
        try:
            _upscale_tiles(runner, work_lr, work_out, tile, overlap, progress, cancel, priority, work_on_tile)
            return out
        except Exception as exc:
            if not _is_oom(exc) or tile // 2 < MIN_TILE:
                raise
            if runner.device.type == "cuda":
                sys.modules["torch"].cuda.empty_cache()  # a CUDA runner imported it
            log.warning("out of memory at tile %d px on %s; retrying with %d px", tile, runner.device, tile // 2)
            tile //= 2


@dataclass(frozen=True)
class Segment:
    """An interval ``[start, end)`` between consecutive tile edges and the row/column intervals covering it."""

    start: int
    end: int
    cover: tuple[int, ...]


def segments(intervals: list[tuple[int, int]]) -> list[Segment]:
    """Cut sorted, overlapping ``intervals`` at every edge; each piece names the intervals that cover it."""
    cuts = sorted({v for iv in intervals for v in iv})
    segs = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        cover = tuple(i for i, (s, e) in enumerate(intervals) if s < b and e > a)
        if cover:
            segs.append(Segment(a, b, cover))
    return segs


_UNSORTED = object()


def _upscale_tiles(
    runner: TileRunner,
    lr: np.ndarray,
    out: np.ndarray,
    tile: int,
    overlap: int,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    priority: Callable[[Tile], float] | None,
    on_tile: TileFn | None,
) -> None:
    s = runner.scale
    h, w = lr.shape[:2]
    tiles = plan_tiles(h, w, tile, overlap)
    rows = sorted({(t.y0, t.y1) for t in tiles})
    cols = sorted({(t.x0, t.x1) for t in tiles})
    wy, wx = _ramp_weights(rows, h, s), _ramp_weights(cols, w, s)
    # Σ_tiles wy_r(y) wx_c(x) = (Σ_r wy_r(y)) (Σ_c wx_c(x)): the grid is a product of rows and columns
    sum_y = np.zeros(h * s, np.float32)
    sum_x = np.zeros(w * s, np.float32)
    for (a, b), wt in zip(rows, wy):
        sum_y[a * s : b * s] += wt
    for (a, b), wt in zip(cols, wx):
        sum_x[a * s : b * s] += wt
    norm_y, norm_x = 1.0 / sum_y, 1.0 / sum_x
    ysegs, xsegs = segments(rows), segments(cols)
    row_segs = [[i for i, g in enumerate(ysegs) if r in g.cover] for r in range(len(rows))]
    col_segs = [[i for i, g in enumerate(xsegs) if c in g.cover] for c in range(len(cols))]
    partial: dict[tuple[int, int], list] = {}  # overlap cell -> [float32 sum so far, tiles still to add]
    pending = list(tiles)
    version = getattr(priority, "version", None)
    order_of: object = _UNSORTED
    done = 0
    if progress:
        progress(0, len(tiles))
    while pending:
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        if priority is None:
            t = pending.pop(0)
        elif version is None:
            t = min(pending, key=priority)
            pending.remove(t)
        else:
            # the priorities change only with the version: sort once per version (lowest last, ties by
            # index, the order min() picks in) instead of asking for every pending tile before each pick
            v = version()
            if v != order_of:
                pending.sort(key=lambda t: (priority(t), t.index), reverse=True)
                order_of = v
            t = pending.pop()
        y = runner.run(lr[t.y0 : t.y1, t.x0 : t.x1])
        ty = wy[t.row] * norm_y[t.y0 * s : t.y1 * s]
        tx = wx[t.col] * norm_x[t.x0 * s : t.x1 * s]
        rects: list[tuple[int, int, int, int]] = []
        for iy in row_segs[t.row]:
            gy = ysegs[iy]
            ya, yb = (gy.start - t.y0) * s, (gy.end - t.y0) * s
            run_start = run_end = None
            for ix in col_segs[t.col]:
                gx = xsegs[ix]
                xa, xb = (gx.start - t.x0) * s, (gx.end - t.x0) * s
                n = len(gy.cover) * len(gx.cover)
                if n == 1:  # inside this tile only: its weight is 1
                    final = y[ya:yb, xa:xb]
                else:
                    part = y[ya:yb, xa:xb] * (ty[ya:yb, None, None] * tx[None, xa:xb, None])
                    cell = partial.get((iy, ix))
                    if cell is None:
                        partial[(iy, ix)] = [part, n - 1]
                        final = None
                    else:
                        cell[0] += part
                        cell[1] -= 1
                        final = None
                        if cell[1] == 0:
                            final = partial.pop((iy, ix))[0]
                if final is None:
                    if run_start is not None:
                        rects.append((run_start, gy.start, run_end, gy.end))
                        run_start = None
                    continue
                out[gy.start * s : gy.end * s, gx.start * s : gx.end * s] = to_output_dtype(final, out.dtype)
                if run_start is None:
                    run_start = gx.start
                run_end = gx.end
            if run_start is not None:
                rects.append((run_start, gy.start, run_end, gy.end))
        done += 1
        if on_tile is not None:
            on_tile(t, rects)
        if progress:
            progress(done, len(tiles))
    assert not partial, "every overlap cell is completed by its last tile"


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale of a float32 HxW alpha channel in [0,1] (see the module docstring)."""
    h, w = alpha.shape
    up = cv2.resize(alpha.astype(np.float32), (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return np.clip(up, 0.0, 1.0)


def keep_gray(rgb: np.ndarray, grayscale: bool) -> np.ndarray:
    """The network may tint a gray picture slightly: for a grayscale source, the channel mean in all three."""
    if not grayscale:
        return rgb
    if rgb.dtype.kind == "u":  # an upscaled uint8/uint16 result: band by band, never a float32 image
        out = np.empty_like(rgb)
        rows = max(1, 4_000_000 // max(1, rgb.shape[1]))
        for y in range(0, rgb.shape[0], rows):
            out[y : y + rows] = np.rint(rgb[y : y + rows].mean(axis=2, keepdims=True, dtype=np.float32))
        return out
    gray = rgb.mean(axis=2, keepdims=True, dtype=np.float32)
    return np.repeat(gray, 3, axis=2)


def finish_upscaled(source, rgb: np.ndarray, scale: int):
    """The one way an upscaled :class:`mlrn_core.imageio.Picture` is made from the network's RGB output.

    Used by batch, ``mlrn upscale`` and the app's Save: a grayscale source stays grayscale (see
    :func:`keep_gray`), alpha is upscaled with bicubic (:func:`upscale_alpha`), and the metadata is
    carried over unchanged (the writer updates what depends on the size, such as EXIF pixel dimensions).
    """
    alpha = upscale_alpha(source.alpha, scale) if source.alpha is not None else None
    if alpha is not None and rgb.dtype.kind == "u":  # same dtype as the RGB, as the writer expects
        alpha = to_output_dtype(alpha, rgb.dtype)
    return source.with_pixels(keep_gray(rgb, source.grayscale), alpha)


def upscale_picture(model: torch.nn.Module, picture, **kwargs):
    """Upscale an :class:`mlrn_core.imageio.Picture`: RGB with the network (tiled), then :func:`finish_upscaled`.

    Keyword arguments are those of :func:`upscale_array` (tile, overlap, device, precision, ensemble, progress,
    cancel, priority, on_tile, runner, dtype). The result holds uint8 pixels for an 8-bit source and
    uint16 for a 16-bit one unless ``dtype`` says otherwise, so a big output costs its own bytes (3 or 6
    per pixel) rather than a float32 copy (12).
    """
    kwargs.setdefault("dtype", np.uint16 if picture.bit_depth == 16 else np.uint8)
    rgb = upscale_array(model, picture.rgb, **kwargs)
    return finish_upscaled(picture, rgb, int(model.scale))


def default_threads() -> int:
    """Threads for CPU inference: every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
