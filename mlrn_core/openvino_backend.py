"""OpenVINO as a second inference backend for the tiles (issue 31): fast on ordinary x86 CPUs without bf16.

The network (a built-in model or any user model) is converted once to OpenVINO's IR with a dynamic tile
height and width, and cached in the per-user cache folder under a key made of its weights, its
hyper-parameters and the OpenVINO version: a second run only loads it. The compiled network runs in fp32
(``INFERENCE_PRECISION_HINT`` f32), so it gives PyTorch fp32's pictures (``tests/test_openvino.py`` checks
it); :class:`mlrn_core.tiling.TileRunner` uses it for precision "openvino", behind the same interface as
PyTorch, so tiling, blending, cancel, progress, quality "best", batch and the app do not change.

``openvino`` is an optional dependency (``pip install -e ".[fast]"``, about 180 MB installed); without it
the precision is refused with that advice. The process keeps one ``openvino.Core`` (:func:`core`): a Core per
network left the thread with a freed alternate signal stack, and the process crashed after the next signal.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from mlrn_core import paths

log = logging.getLogger(__name__)

INSTALL_ADVICE = 'OpenVINO is not installed: pip install openvino (or: pip install -e ".[fast]")'


def available() -> bool:
    """True when the ``openvino`` package is installed (found, not imported: loading it costs time and threads)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def model_key(model: torch.nn.Module) -> str:
    """A name for the converted network: its weights, its hyper-parameters and the OpenVINO version."""
    import openvino as ov

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    hparams = getattr(model, "hparams", None) or {"class": type(model).__name__, "scale": getattr(model, "scale", 0)}
    digest.update(json.dumps(hparams, sort_keys=True, default=str).encode())
    digest.update(ov.get_version().encode())
    return digest.hexdigest()[:24]


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
    """The network compiled by OpenVINO for ``device`` ("CPU"), called on float32 NCHW arrays."""

    def __init__(self, model: torch.nn.Module, device: str = "CPU", threads: int | None = None) -> None:
        if not available():
            raise ValueError(INSTALL_ADVICE)

        self.key = model_key(model)
        xml = cache_folder() / f"{self.key}.xml"
        self.converted = not xml.exists()
        if self.converted:
            convert(model, xml)
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if device.upper() == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads or torch.get_num_threads())
        self.compiled = core().compile_model(str(xml), device.upper(), config)
        self.request = self.compiled.create_infer_request()
        self.device = device.upper()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW (one tile) -> the network's float32 NCHW output, not clamped."""
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)


_CONVERT = r"""
import sys, torch, openvino as ov
from mlrn_core import registry
net = registry.load_model(sys.argv[1], None).model.float().cpu().eval()
with torch.no_grad():
    ir = ov.convert_model(net, example_input=torch.rand(1, 3, 48, 48), input=[(1, 3, -1, -1)])
ov.save_model(ir, sys.argv[2], compress_to_fp16=False)
"""


def convert(model: torch.nn.Module, xml: Path) -> None:
    """Convert ``model`` to IR at ``xml`` (and its .bin) in a child process (the conversion traces the network
    with TorchScript, whose state left in this process made later training crash), written under temporary
    names and renamed when whole, so a run killed meanwhile or a second converting process never leaves half a
    file under the name."""
    import subprocess
    import sys
    import tempfile

    from mlrn_core import registry

    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.part.xml")
    with tempfile.TemporaryDirectory() as folder:
        weights = registry.save_model(Path(folder) / "model.pt", copy.deepcopy(model).float().cpu(), info={})
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT, str(weights), str(tmp)], capture_output=True, text=True, check=False
        )
    if done.returncode != 0 or not tmp.exists():
        raise ValueError(f"the network could not be converted for OpenVINO: {done.stderr.strip()[-500:]}")
    os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
    os.replace(tmp, xml)
    log.info("converted the network to OpenVINO IR: %s", xml)
