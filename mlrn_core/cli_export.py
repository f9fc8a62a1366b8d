"""``mlrn export MODEL --format onnx|openvino [-o FILE]``: a built-in or user model for other tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlrn_core.terminal import EXIT_FAILED, EXIT_OK, EXIT_USAGE

_DESCRIPTION = (
    "Write a built-in or user model (or a model file) as ONNX (opset 17) or OpenVINO IR, with a dynamic height "
    "and width, so other tools can run it: ONNX Runtime (CPU, CUDA, DirectML), chaiNNer, OpenCV's dnn module, "
    "OpenVINO. Input 'lr': float32 RGB in [0, 1], NCHW; output 'sr': float32 RGB, NCHW, SCALE times larger, "
    "to be clamped to [0, 1]. ONNX needs the onnx and onnxscript packages, OpenVINO IR the openvino package."
)


def add_export_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="write a model as ONNX or OpenVINO IR for other tools", description=_DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="a built-in or user model name (see 'mlrn models'), or a .pt file")
    p.add_argument(
        "--format", required=True, choices=("onnx", "openvino"), help="onnx (.onnx) or openvino (.xml + .bin)"
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="output file (.onnx, or the IR's .xml; its .bin goes beside it), or a folder for the default name "
        "(default: MODEL.onnx or MODEL.xml in the current folder)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    from mlrn_core import registry
    from mlrn_core.export import ExportError, ExportFailed, default_output, export_model

    try:
        loaded = registry.load_model(args.model, None)
    except registry.ModelError as exc:
        print(f"mlrn export: input model {args.model}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.output
    if out is None:
        out = default_output(loaded.name, args.format)
    elif out.is_dir():
        out = default_output(loaded.name, args.format, out)
    try:
        written = export_model(loaded.model, loaded.name, args.format, out, overwrite=args.force)
    except ExportError as exc:
        print(f"mlrn export: {exc}", file=sys.stderr)
        return EXIT_FAILED if isinstance(exc, ExportFailed) else EXIT_USAGE
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return EXIT_OK
