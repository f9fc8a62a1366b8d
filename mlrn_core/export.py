"""A built-in or user model as ONNX or OpenVINO IR, so other tools can run it (issue 31, ``mlrn export``).

Both formats take the network exactly as MLRN Studio runs it, image-level skip included: input ``lr``, float32
RGB in [0, 1], NCHW, any height and width (dynamic); output ``sr``, float32 RGB NCHW at ``scale`` times the
height and width, not clamped (clamp to [0, 1] before converting to 8 or 16 bits, as the app does).

- ONNX (opset 17) is written by PyTorch's exporter (``torch.onnx.export``, the torch.export-based one), which
  needs the ``onnx`` and ``onnxscript`` packages (``pip install -e ".[export]"``, about 43 MB installed; not
  in the bundle). The file is one ``.onnx`` (weights inside) with the model's name and scale in its metadata.
  ONNX Runtime (CPU, CUDA, DirectML), chaiNNer and OpenCV's dnn module read it.
- OpenVINO IR (``.xml`` and ``.bin``) is the conversion the app's OpenVINO backend caches
  (:func:`mlrn_core.openvino_backend.convert`), run in a child process; ``openvino`` is optional too.

Outputs appear complete or not at all (written under a temporary name, then renamed) and never replace an
existing file unless asked to.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import warnings
from pathlib import Path

import torch

from mlrn_core.atomic import atomic_open

FORMATS = ("onnx", "openvino")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}
ONNX_OPSET = 17
ONNX_ADVICE = (
    'ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript (or: pip install -e ".[export]")'
)


class ExportError(ValueError):
    """Why a model could not be exported, in words for the user (a wrong output, a missing package)."""


class ExportFailed(ExportError):
    """The exporter itself failed on this network."""


def default_output(name: str, fmt: str, folder: Path = Path(".")) -> Path:
    """``NAME.onnx`` / ``NAME.xml`` in ``folder`` (path separators in a file-based model's name replaced)."""
    stem = name.replace("/", "_").replace("\\", "_").replace(":", "_").strip() or "model"
    return folder / f"{stem}{SUFFIX[fmt]}"


def outputs_of(out: Path, fmt: str) -> list[Path]:
    """The files an export to ``out`` writes: the .onnx, or the IR's .xml and .bin."""
    return [out] if fmt == "onnx" else [out, out.with_suffix(".bin")]


def check_output(out: Path, fmt: str, overwrite: bool) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
    if out.suffix.lower() != SUFFIX[fmt]:
        raise ExportError(f"output {out}: a {fmt} export is a {SUFFIX[fmt]} file; name it so")
    if not out.parent.is_dir():
        raise ExportError(f"output {out}: the folder {out.parent} does not exist; create it or choose another")
    for path in outputs_of(out, fmt):
        if path.is_dir():
            raise ExportError(f"output {path} is a folder; choose a file name")
        if path.exists() and not overwrite:
            raise ExportError(f"output {path} exists and is kept; choose another name or pass --force to replace it")


def export_model(model: torch.nn.Module, name: str, fmt: str, out: Path, overwrite: bool = False) -> list[Path]:
    """Write ``model`` (an MLRN network) as ``fmt`` to ``out``; returns the files written."""
    out = Path(out)
    check_output(out, fmt, overwrite)
    net = model.float().cpu().eval()
    if fmt == "onnx":
        _export_onnx(net, name, out)
    else:
        from mlrn_core import openvino_backend

        if not openvino_backend.available():
            raise ExportError(openvino_backend.INSTALL_ADVICE)
        try:
            openvino_backend.convert(net, out)
        except ValueError as exc:
            raise ExportFailed(str(exc)) from None
    return outputs_of(out, fmt)


@contextlib.contextmanager
def _quiet():
    """The exporter's notes (torchvision missing, opset conversion fallback, deprecations) are not the user's."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_onnx(net: torch.nn.Module, name: str, out: Path) -> None:
    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript")):
        if getattr(sys, "frozen", False):  # the bundle leaves the exporter out (about 43 MB)
            raise ExportError(
                "this installation of MLRN Studio has no ONNX exporter: export --format openvino instead, or "
                'install MLRN Studio with pip (pip install "mlrn-studio[export]") to export ONNX'
            )
        raise ExportError(ONNX_ADVICE)
    import onnx

    height, width = torch.export.Dim("height", min=2), torch.export.Dim("width", min=2)
    try:
        with torch.no_grad(), _quiet():
            program = torch.onnx.export(
                net,
                (torch.rand(1, 3, 48, 40),),
                input_names=["lr"],
                output_names=["sr"],
                opset_version=ONNX_OPSET,
                dynamic_shapes=({2: height, 3: width},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        proto = program.model_proto
        scale = int(getattr(net, "scale", 0))
        for key, value in {
            "mlrn.name": name,
            "mlrn.scale": str(scale),
            "mlrn.input": "lr: float32 RGB in [0, 1], NCHW, any height and width",
            "mlrn.output": f"sr: float32 RGB, NCHW, {scale}x the height and width; clamp to [0, 1]",
        }.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        with atomic_open(out, "wb") as f:  # the project's one whole-or-nothing writer
            f.write(proto.SerializeToString())
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter's many failure types become one message
        raise ExportFailed(f"the network could not be exported to ONNX: {type(exc).__name__}: {exc}") from None
