"""OpenVINO as a second inference backend for the tiles (issue 31): fast on ordinary x86 CPUs without bf16.

The network (a built-in model or any user model) is converted once to OpenVINO's IR with a dynamic tile
height and width, and cached in the per-user cache folder under a key made of its weights, its
hyper-parameters and the OpenVINO version: a second run only loads it. The compiled network runs in fp32
(``INFERENCE_PRECISION_HINT`` f32), so it gives PyTorch fp32's pictures (``tests/test_openvino.py`` checks
it); :class:`mlrn_core.tiling.TileRunner` uses it for precision "openvino", behind the same interface as
PyTorch, so tiling, blending, cancel, progress, quality "best", batch and the app do not change.

``openvino`` is a dependency (about 180 MB installed); where it is missing (a platform without its wheels,
or removed) the OpenVINO paths are not offered, and a forced one says how to install it (the app and batches
fall back to PyTorch). The process keeps one ``openvino.Core`` (:func:`core`): a Core per network left the
thread with a freed alternate signal stack, and the process crashed after the next signal.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlrn_core import paths
from mlrn_core.known_models import KnownModel, key_of

if TYPE_CHECKING:  # a model's network is converted with torch; a cached one runs without it
    import torch

log = logging.getLogger(__name__)

INSTALL_ADVICE = "OpenVINO is not installed: pip install openvino"

#: The form :func:`convert` gives the network, part of its cache key (a change converts every model again) and
#: of ``release/int8.py``'s record: "concat-free", :func:`mlrn_core.model.concat_free`.
FORM = "concat-free"


def available() -> bool:
    """True when the ``openvino`` package is installed (found, not imported: loading it costs time and threads)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def model_key(model: torch.nn.Module | KnownModel) -> str:
    """A name for the converted network: its weights, its hyper-parameters and the OpenVINO version."""
    import openvino as ov

    return hashlib.sha256(f"{key_of(model)}|{ov.get_version()}|{FORM}".encode()).hexdigest()[:24]


def converted_file(model: torch.nn.Module | KnownModel) -> Path:
    """Where :class:`OpenVinoNetwork` keeps ``model``'s converted float network (made on its first use)."""
    return cache_folder() / f"{model_key(model)}.xml"


def int8_folder() -> Path:
    """The shipped int8 networks of the built-in models (``release/int8.py`` makes them)."""
    return paths.resources_dir() / "openvino"


def int8_index() -> dict[str, dict]:
    """weights key -> what ``release/int8.py`` measured for that model's int8 network (Set14 PSNR, fp32 and int8)."""
    try:
        data = json.loads((int8_folder() / "int8.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.get("models", {}).items() if isinstance(v, dict)}


def int8_file(model: torch.nn.Module | KnownModel) -> Path | None:
    """The shipped int8 network (.xml) of ``model``'s very weights when it is offered (measured within
    :data:`INT8_MAX_LOSS_DB` of fp32 on Set14) and computes on this CPU what was measured
    (:func:`int8_exact_here`), else None (:func:`int8_problem` says why)."""
    entry = int8_index().get(key_of(model))
    if not entry or not entry.get("offered") or not int8_exact_here(entry):
        return None
    xml = int8_folder() / entry["file"]
    return xml if xml.is_file() else None


def int8_problem(model: torch.nn.Module | KnownModel) -> str:
    """Why ``model`` has no int8 network here (for a forced int8 path's message)."""
    entry = int8_index().get(key_of(model))
    if not entry:
        return "this model has no int8 network (only the built-in models ship one)"
    if not entry.get("offered"):
        return f"{entry.get('name', 'this model')}'s int8 network loses more than {INT8_MAX_LOSS_DB} dB on Set14"
    if not int8_exact_here(entry):
        return (
            f"{entry.get('name', 'this model')}'s int8 network is not offered on this CPU: without VNNI its int8 "
            "sums saturate (it lost up to 0.2 dB on Set14 on an AVX2 CPU); OpenVINO fp32 runs right here"
        )
    return f"{entry.get('name', 'this model')}'s int8 network is missing from this installation"


def int8_exact_here(entry: dict) -> bool:
    """Whether an int8 network computes on this CPU what ``release/int8.py`` measured.

    x86 CPUs without VNNI (AVX2 laptops, AVX-512 without VNNI) add u8 x s8 products in pairs into 16 bits, which
    saturate: OpenVINO's "saturation issue". A network whose weights all use 7 bits (NNCF's overflow fix on every
    layer, ``int8.json``'s ``overflow_fix`` "enable") cannot overflow and is right everywhere; one without it only
    on CPUs with VNNI (or AMX). Measured on a 2-core AMD EPYC (Zen 3, AVX2 only): networks without the fix lost
    0.06-0.21 dB on Set14 there (``pytest tests/test_int8.py``), 0.02-0.04 on a CPU with VNNI."""
    settings = entry.get("settings") if isinstance(entry.get("settings"), dict) else {}
    return settings.get("overflow_fix") == "enable" or cpu_has_vnni()


#: ``ONEDNN_MAX_CPU_ISA`` values that keep VNNI (OpenVINO's CPU plugin honours the limit, as oneDNN does)
_VNNI_ISAS = ("VNNI", "BF16", "AMX", "FP16", "AVX10")


def cpu_has_vnni() -> bool:
    """True when the CPU has VNNI int8 dot products (AVX512_VNNI, AVX_VNNI or AMX) and no ``ONEDNN_MAX_CPU_ISA``
    limit hides them. Read from ``/proc/cpuinfo``'s flags (Linux), else numpy's CPU features (AVX-512 VNNI only):
    a CPU it cannot tell counts as without (its int8 networks without the overflow fix are then not offered)."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if limit and limit not in ("ALL", "DEFAULT") and not any(isa in limit for isa in _VNNI_ISAS):
        return False
    return _cpu_vnni()


_VNNI: bool | None = None


def _cpu_vnni() -> bool:
    global _VNNI
    if _VNNI is None:
        _VNNI = False
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                flags = next((line for line in fh if line.startswith("flags")), "")
            _VNNI = bool(set(flags.partition(":")[2].split()) & {"avx512_vnni", "avx_vnni", "amx_int8"})
        except OSError:
            try:
                from numpy._core._multiarray_umath import __cpu_features__
            except ImportError:
                __cpu_features__ = {}
            _VNNI = bool(__cpu_features__.get("AVX512VNNI"))
    return _VNNI


def int8_offered(model: torch.nn.Module) -> bool:
    """True for a model whose shipped int8 network is offered (:func:`int8_file`)."""
    return int8_file(model) is not None


#: An int8 network is offered only when its Set14 PSNR is within this of fp32 (issue 31)
INT8_MAX_LOSS_DB = 0.05


def devices() -> list[str]:
    """OpenVINO's devices here ("CPU", "GPU", "NPU"...), [] without OpenVINO."""
    if not available():
        return []
    try:
        return [d.split(".")[0] for d in core().available_devices]
    except RuntimeError as exc:  # a broken driver: no devices beyond what works
        log.warning("OpenVINO could not list its devices: %s", exc)
        return []


def cache_folder() -> Path:
    return paths.cache_dir() / "openvino"


_CORE = None


def core():
    """The process's one ``openvino.Core``, kept until the process ends.

    OpenVINO's CPU plugin (one per Core) installs its own alternate signal stack on the thread that creates it
    (for AMX's larger signal frames) and puts back the stack it found when it is destroyed. With a Core per
    network, destroyed in another order than created, the thread was left with a freed stack: the next signal
    (Ctrl-C, the trainer's SIGUSR1 pause) wrote its frame into freed memory, and the process later died in
    Python's garbage collector or in ``kill``. One Core that lives as long as the process sets one stack that
    stays valid (``tests/test_openvino.py`` checks the thread's stack after networks come and go).
    """
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


class OpenVinoNetwork:
    """The network compiled by OpenVINO for ``device`` ("CPU" or "GPU"), called on float32 NCHW arrays.

    ``int8``: the model's shipped int8 network (:func:`int8_offered`) instead of its float one. ``threads``:
    the CPU threads it runs on (PyTorch's count by default). A :class:`~mlrn_core.known_models.KnownModel` runs
    its cached or shipped network without torch; it cannot be converted (its file is loaded for that)."""

    def __init__(
        self,
        model: torch.nn.Module | KnownModel,
        device: str = "CPU",
        threads: int | None = None,
        int8: bool = False,
    ) -> None:
        if not available():
            raise ValueError(INSTALL_ADVICE)
        self.device = device.upper()
        self.converted = False
        if int8:
            xml = int8_file(model)
            if xml is None:
                raise ValueError(int8_problem(model))
            self.key = xml.stem
        else:
            xml = converted_file(model)
            self.key = xml.stem
            self.converted = not xml.exists()
            if self.converted:
                from mlrn_core.registry import network_of

                convert(network_of(model), xml)
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"  # int8 networks: their quantised layers, f32 around them
            if threads is None:
                import torch

                threads = torch.get_num_threads()
            config["INFERENCE_NUM_THREADS"] = int(threads)
        # the compiled network is kept in the cache folder: the next run loads it instead of compiling again
        # (about 0.35 -> 0.15 s a run on the CPU, benchmarks/startup.py; GPU kernels take much longer to build)
        config["CACHE_DIR"] = str(cache_folder() / "blobs")
        self.compiled = core().compile_model(str(xml), self.device, config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW (one tile) -> the network's float32 NCHW output, not clamped."""
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def convert(model: torch.nn.Module, xml: Path) -> None:
    """Convert ``model`` to IR at ``xml`` (and its .bin), in this process (so the frozen app can too), written
    under temporary names and renamed when whole, so a run killed meanwhile or a second converting process
    never leaves half a file under the name. (An earlier version converted in a child process because later
    training crashed; the crash was the signal stack of :func:`core`, not the conversion.)"""
    import openvino as ov
    import torch

    from mlrn_core.model import MLRN, concat_free

    net = (concat_free(model) if isinstance(model, MLRN) else copy.deepcopy(model)).float().cpu().eval()
    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.part.xml")
    try:
        with torch.no_grad():
            ir = ov.convert_model(net, example_input=torch.rand(1, 3, 48, 48), input=[(1, 3, -1, -1)])
        ov.save_model(ir, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    except Exception as exc:  # noqa: BLE001 - any failure of the converter is one clear message
        raise ValueError(f"the network could not be converted for OpenVINO: {exc}") from exc
    finally:
        for part in (tmp, tmp.with_suffix(".bin")):
            part.unlink(missing_ok=True)
    log.info("converted the network to OpenVINO IR: %s", xml)
