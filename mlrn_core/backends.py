"""The inference paths a tile can take, and Auto's choice among them by measurement (issue 31).

A path is a backend, a device and a number precision; :class:`mlrn_core.tiling.TileRunner` runs each one
behind the same interface, and a path is named by one *precision* value (:data:`mlrn_core.tiling.PRECISIONS`)
on a torch device:

======================  ===============  =============================================================
precision               device           path
======================  ===============  =============================================================
``fp32``                cpu, cuda, mps   PyTorch float32 (the exact reference)
``bf16``                cpu, cuda        PyTorch bfloat16 (autocast on CPUs with native bf16 kernels)
``fp16``                cuda, mps        PyTorch float16 weights
``openvino``            cpu              OpenVINO on the CPU, float32 (PyTorch fp32's pictures)
``openvino-int8``       cpu              OpenVINO on the CPU, the model's shipped int8 network
``openvino-gpu``        cpu (host)       OpenVINO on an Intel GPU (its default f16 inference)
======================  ===============  =============================================================

Precision "auto" is chosen by measurement (:func:`choose`): on first use of a model on a machine a few timed
tiles of every path available there decide, and the answer is cached per machine and model in the per-user
cache folder, so later runs only read it. ``MLRN_AUTO_MEASURE=0`` turns the measurement off (Auto then
takes the fixed rule of :func:`mlrn_core.tiling.resolve_precision`: bf16 on CPUs with native bf16, fp16 on
CUDA, fp32 elsewhere); the test suite does so except in the tests of this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlrn_core import atomic, paths, tiling
from mlrn_core.known_models import key_of
from mlrn_core.tiling import CPU_TILE, path_label

if TYPE_CHECKING:  # a cached OpenVINO choice is read and run without importing torch (mlrn_core.known_models)
    import torch

log = logging.getLogger(__name__)

#: Tile side (LR pixels) and timed runs per path, after one warm-up run. The tile is the one the CLI and the
#: app run on the CPU: the paths rank differently on other sizes (AMX CPU, ``python benchmarks/tile_size.py
#: --paths openvino-int8 bf16 --sizes 128 192``: OpenVINO int8 ahead of PyTorch bf16 on a 128 px tile, 3.9
#: against 4.2 us per pixel, behind it on 192 px, 3.9 against 2.7; measured on 128 px, Auto chose the slower).
MEASURE_TILE = CPU_TILE
MEASURE_RUNS = 3
#: Bumped when the measurement changes, so older cached answers are measured again (2: the 192 px tile and
#: the int8 networks of release/int8.py's ignored fusions; 3: the threads measured with, a key without torch).
_VERSION = 3


@dataclass(frozen=True)
class Choice:
    """Auto's path for a model on this machine: its precision value, and what the measurement saw."""

    precision: str
    label: str
    speedup: float = 1.0  # seconds of PyTorch fp32 / seconds of this path, on the same tiles
    seconds: dict[str, float] = field(default_factory=dict)  # label -> seconds per tile, every path tried
    measured: bool = True  # False: the fixed rule (measurement off, or nothing else to measure)
    threads: int = 0  # the CPU threads the paths were measured with (PyTorch's count; OpenVINO is given it)

    def text(self) -> str:
        """e.g. "OpenVINO CPU int8, 2.6x" (the speed-up over PyTorch fp32 when it was measured)."""
        return f"{self.label}, {self.speedup:.1f}x" if self.measured and self.seconds else self.label


def measuring_enabled() -> bool:
    return os.environ.get("MLRN_AUTO_MEASURE", "1") != "0"


def machine_key(device: torch.device) -> str:
    """This machine as far as speed goes: CPU model and flags, what sets the threads, the device, torch and
    OpenVINO; all known without importing torch (:func:`mlrn_core.tiling.thread_setting`)."""
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [cpu, flags, tiling.thread_setting(), str(device), tiling.torch_version(), _openvino_version()]
    if device.type == "cuda":
        import torch

        parts.append(torch.cuda.get_device_name(device))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _openvino_version() -> str:
    from mlrn_core import openvino_backend

    if not openvino_backend.available():
        return "no-openvino"
    import openvino as ov

    return ov.get_version()


def candidates(model: torch.nn.Module, device: torch.device) -> list[str]:
    """The precisions worth timing for ``model`` on ``device``: every path that can run here."""
    if device.type == "cuda":
        import torch

        return ["fp16", "bf16", "fp32"] if torch.cuda.is_bf16_supported() else ["fp16", "fp32"]
    if device.type == "mps":
        return ["fp16", "fp32"]
    found = ["fp32"]
    if tiling.cpu_bf16_supported():  # emulated bf16 is slower than fp32: never a candidate
        found.append("bf16")
    return found + _openvino_paths(model)


def _openvino_paths(model: torch.nn.Module) -> list[str]:
    """The OpenVINO paths that can run ``model`` here (none without OpenVINO), known without importing torch."""
    from mlrn_core import openvino_backend

    if not openvino_backend.available():
        return []
    found = ["openvino"]
    if openvino_backend.int8_offered(model):
        found.append("openvino-int8")
    if "GPU" in openvino_backend.devices():
        found.append("openvino-gpu")
    return found


_cache_lock = threading.Lock()


def _cache_file():
    return paths.cache_dir() / "auto-paths.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == _VERSION else {}
    except (OSError, ValueError):
        return {}


def cached(model: torch.nn.Module, device: torch.device) -> Choice | None:
    """Auto's earlier answer for this model on this machine, or None when it was not measured here yet."""
    entry = _read_cache().get(machine_key(device), {}).get(key_of(model))
    if not isinstance(entry, dict):
        return None
    try:
        choice = Choice(**entry)
    except TypeError:
        return None
    return choice if runnable(choice.precision, model, device) else None


def measured_threads(models: list) -> int | None:
    """The CPU threads Auto measured one of ``models`` with on this machine (torch's default count there), read
    without importing torch; None when none was measured here."""
    paths_here = _read_cache().get(machine_key(tiling.HostCPU(0)), {})
    for model in models:
        entry = paths_here.get(key_of(model))
        threads = entry.get("threads") if isinstance(entry, dict) else None
        if isinstance(threads, int) and threads > 0:
            return threads
    return None


def runnable(precision: str, model: torch.nn.Module, device: torch.device) -> bool:
    """Whether the path ``precision`` can still run ``model`` here (one of :func:`candidates`); an OpenVINO
    path is checked without importing torch."""
    if device.type == "cpu" and precision in tiling.OPENVINO_PRECISIONS:
        return precision in _openvino_paths(model)
    return precision in candidates(model, device)


def _store(model: torch.nn.Module, device: torch.device, choice: Choice) -> None:
    with _cache_lock:
        data = _read_cache() or {"version": _VERSION}
        data.setdefault(machine_key(device), {})[key_of(model)] = asdict(choice)
        try:
            with atomic.atomic_open(_cache_file(), "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
        except OSError as exc:  # a read-only cache folder: measured again next time, never a failure
            log.warning("could not keep Auto's measurement in %s: %s", _cache_file(), exc)


def measure(model: torch.nn.Module, device: torch.device, tile: int = MEASURE_TILE, runs: int = MEASURE_RUNS) -> Choice:
    """Time every candidate path on the same tile and return the fastest (a path that fails is skipped).

    One path after the other, each set up and warmed up (conversion, compilation, first-use allocations) right
    before its timed runs: interleaving the paths was tried and is unfair on a small CPU, because one library's
    worker threads still spin for a moment after their work (OpenMP in PyTorch, TBB in OpenVINO) and take the
    cores from the other. Each path's time is the median of its runs."""
    import copy

    import torch

    x = np.random.default_rng(0).random((tile, tile, 3), dtype=np.float32)
    seconds: dict[str, float] = {}
    by_label: dict[str, str] = {}
    for precision in candidates(model, device):
        label = path_label(precision, device)
        try:  # each path on its own copy: a runner moves and converts the weights it is given
            runner = tiling.TileRunner(copy.deepcopy(model), device, precision=precision, fallback=False)
            runner.run(x)  # warm-up
            runner.run(x)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                runner.run(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - a path that cannot run here is not a candidate
            log.warning("Auto: %s could not run here, not a candidate: %s", label, exc)
            continue
        seconds[label], by_label[label] = round(float(np.median(times)), 4), precision
        del runner
    if not seconds:
        fixed = tiling.resolve_precision(device, "auto")
        return Choice(fixed, path_label(fixed, device), measured=False)
    best = min(seconds, key=seconds.get)
    reference = seconds.get(path_label("fp32", device), seconds[best])
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    return Choice(by_label[best], best, round(reference / seconds[best], 2), seconds, threads=threads)


def make_runner(
    model: torch.nn.Module,
    device: torch.device,
    precision: str = "auto",
    ensemble: bool = False,
    announce=None,
    fallback: bool = True,
):
    """A :class:`mlrn_core.tiling.TileRunner` on the path ``precision`` names; "auto" takes Auto's measured
    choice (:func:`choose`), which the runner then names in its :meth:`~mlrn_core.tiling.TileRunner.describe`.
    The app, Batch Export and ``mlrn upscale`` make their runners here."""
    if str(precision or "auto").lower() != "auto":
        return tiling.TileRunner(model, device, precision=precision, ensemble=ensemble, fallback=fallback)
    choice = choose(model, device, announce)
    return tiling.TileRunner(
        model, device, precision=choice.precision, ensemble=ensemble, fallback=fallback, auto=choice
    )


def choose(model: torch.nn.Module, device: torch.device, announce=None) -> Choice:
    """Auto's path for ``model`` on ``device``: cached when measured before on this machine, else measured
    now (``announce(text)`` is told first, as this takes some seconds) and cached."""
    if not measuring_enabled():
        fixed = tiling.resolve_precision(device, "auto")
        return Choice(fixed, path_label(fixed, device), measured=False)
    found = cached(model, device)
    if found is not None:
        return found
    if announce is not None:
        announce("measuring the fastest way to run this model on this machine (once)")
    choice = measure(model, device)
    if choice.measured:
        _store(model, device, choice)
        times = ", ".join(f"{k} {v:.3f} s" for k, v in choice.seconds.items())
        log.info("Auto measured (seconds per %d px tile) %s: %s", MEASURE_TILE, times, choice.text())
        if announce is not None:
            announce(f"Auto: {choice.text()} over PyTorch fp32 (measured once on this machine)")
    return choice


BACKENDS = ("auto", "pytorch", "openvino")


def path_from_flags(backend: str = "auto", device: str = "auto", precision: str = "auto") -> tuple[str, str]:
    """``mlrn upscale --backend/--device/--precision`` -> (device preference, precision value).

    ``--device gpu`` is an Intel GPU through OpenVINO; ``--precision int8`` is OpenVINO's int8 network; the
    older ``--precision openvino`` (-int8, -gpu) values still work. Raises ValueError for a combination that
    cannot run, naming what can."""
    b, d, p = (str(v or "auto").lower() for v in (backend, device, precision))
    if b not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}': expected {', '.join(BACKENDS)}")
    if p.startswith("openvino"):
        b = "openvino" if b == "auto" else b
        if b != "openvino":
            raise ValueError(f"precision {p} runs on OpenVINO, not {b}: use --backend openvino")
        if p == "openvino-gpu" or d == "gpu":
            return "cpu", "openvino-gpu"
        return "cpu", p
    if d == "gpu" or (b == "openvino" and d not in ("auto", "cpu")):
        if d != "gpu":
            raise ValueError(f"OpenVINO runs on the CPU or an Intel GPU (--device cpu or gpu), not on {d}")
        if b == "pytorch":
            raise ValueError("--device gpu is an Intel GPU through OpenVINO: use --backend openvino or auto")
        if p not in ("auto", "fp16", "fp32"):
            raise ValueError(f"OpenVINO on an Intel GPU runs its own precision (fp16); {p} is not offered there")
        return "cpu", "openvino-gpu"
    if p == "int8":
        if b == "pytorch":
            raise ValueError("int8 runs on OpenVINO: use --backend openvino or auto")
        return "cpu", "openvino-int8"
    if b == "openvino":
        if p not in ("auto", "fp32"):
            raise ValueError(f"OpenVINO on the CPU runs fp32 or int8, not {p}")
        return "cpu", "openvino"
    if b == "pytorch" and p == "auto":
        return d, "pytorch-auto"
    return d, p
