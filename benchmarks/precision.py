"""CPU inference paths side by side (issue 15): speed on a 1200x800 photo and Set14 PSNR, in one run.

Variants (each on the same 1200x800 crop of a Photos15 photo, x2 by default, tiled as the app and
``mlrn upscale`` tile on a CPU, best of ``--repeat`` runs after a warm-up):

- ``fp32``: eager PyTorch in float32 (the reference);
- ``bf16``: eager PyTorch under bf16 autocast with channels_last (what ``precision="auto"`` picks on a
  CPU with native bf16 kernels, :func:`mlrn_core.tiling.resolve_precision`);
- ``compile-fp32`` / ``compile-bf16``: the same after ``torch.compile`` (compile time reported);
- ``openvino-fp32`` / ``openvino-bf16``: the network converted once to OpenVINO IR (cached in the
  per-user cache folder, so the second run only loads it; export and load times reported) and compiled
  for the CPU with that inference precision. Skipped with a note when ``openvino`` is not installed.
- ``openvino-int8``: that IR after NNCF's post-training quantisation (``nncf.quantize``, issue 31),
  calibrated on ``--calib`` LR crops (96 px) of ``train/BSD200`` photographs (bicubic-downscaled, fixed
  seed; never Set14), with the convolutions named by ``--int8-keep`` left in float (the first one, which
  reads the picture, and the last one, which feeds the sub-pixel upsampler, by default), each activation's
  range set as ``--int8-ranges`` says (NNCF's default, or ``histogram``/``minmax``). Needs ``nncf``.

For each: seconds for the image, output megapixels per second, speed-up over fp32, and Set14 PSNR/SSIM
(Y, border = scale, ``docs/EVALUATION.md``'s protocol, as ``mlrn bench``) with its difference to fp32.
The issue's bar: the default path >= 2x fp32 at Set14 PSNR within 0.02 dB.

Usage: ``python benchmarks/precision.py [--scale 2] [--repeat 2] [--variants fp32 bf16 ...]
[--threads N] [--json FILE]``. Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import data as data_mod  # noqa: E402
from mlrn_core import imageio, openvino_backend, paths, registry, tiling  # noqa: E402
from mlrn_core.metrics import mean_score, score  # noqa: E402

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"
ALL_VARIANTS = (
    "fp32",
    "bf16",
    "fp16",
    "compile-fp32",
    "compile-bf16",
    "compile-fp16",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)
CPU_DEFAULT = ("fp32", "bf16", "compile-fp32", "compile-bf16", "openvino-fp32", "openvino-bf16")


class CompiledRunner(tiling.TileRunner):
    """A TileRunner whose network went through ``torch.compile`` (inductor, static tile shapes)."""

    def __init__(self, model: torch.nn.Module, precision: str, device: torch.device) -> None:
        super().__init__(model, device, precision=precision)
        self.model = torch.compile(self.model, dynamic=False)


class OpenVINORunner:
    """Runs tiles through an OpenVINO-compiled copy of the network (the ``TileRunner`` interface)."""

    def __init__(
        self,
        model: torch.nn.Module,
        precision: str,
        cache: Path,
        calib: int = 60,
        keep: str = "first,last",
        ranges: str = "default",
    ) -> None:
        import openvino as ov

        self.scale = int(model.scale)
        self.device = torch.device("cpu")
        self.precision = precision
        digest = hashlib.sha256()
        for k, v in model.state_dict().items():
            digest.update(k.encode())
            digest.update(v.detach().cpu().numpy().tobytes())
        xml = cache / f"mlrn-x{self.scale}-{digest.hexdigest()[:16]}.xml"
        t = time.perf_counter()
        self.exported = not xml.exists()
        if self.exported:  # once per model file and user; later runs only read the IR
            cache.mkdir(parents=True, exist_ok=True)
            ir = ov.convert_model(model.eval(), example_input=torch.rand(1, 3, 64, 64), input=[(1, 3, -1, -1)])
            ov.save_model(ir, str(xml), compress_to_fp16=False)
        self.export_s = time.perf_counter() - t
        self.quantize_s = 0.0
        if precision == "int8":  # quantised once per model, calibration and kept layers; later runs only read it
            q_xml = xml.with_name(f"{xml.stem}-int8-c{calib}-keep-{keep.replace(',', '+') or 'none'}-{ranges}.xml")
            if not q_xml.exists():
                t = time.perf_counter()
                quantize(xml, q_xml, self.scale, calib, keep, ranges)
                self.quantize_s = time.perf_counter() - t
            xml = q_xml
        t = time.perf_counter()
        core = openvino_backend.core()  # one Core per process (a Core per network broke signal handling)
        core.set_property({"CACHE_DIR": str(cache / "blobs")})
        hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[precision]  # int8: the quantised layers, f32 around
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        }
        self.request = core.compile_model(str(xml), "CPU", config).create_infer_request()
        self.load_s = time.perf_counter() - t

    def run(self, lr_hwc: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(lr_hwc.transpose(2, 0, 1)[None], dtype=np.float32)
        y = self.request.infer({0: x})[0][0]
        return np.clip(y, 0, 1).transpose(1, 2, 0).copy()


def calibration_tiles(scale: int, count: int, side: int = 96, seed: int = 31) -> list[np.ndarray]:
    """``count`` LR crops (NCHW float32 in [0, 1]) of BSD200 photographs, MATLAB-bicubic downscaled by ``scale``."""
    pairs, _scan = data_mod.load_pairs([SHARED / "train" / "BSD200"], scale, side * scale, what="calibration")
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(count):
        lr = pairs[int(rng.integers(len(pairs))) if i >= len(pairs) else i].lr
        y, x = int(rng.integers(lr.shape[0] - side + 1)), int(rng.integers(lr.shape[1] - side + 1))
        crop = lr[y : y + side, x : x + side].transpose(2, 0, 1)[None]
        tiles.append(np.ascontiguousarray(crop, dtype=np.float32) / 255)
    return tiles


def quantize(xml: Path, out: Path, scale: int, calib: int, keep: str, ranges: str = "default") -> None:
    """NNCF post-training int8 quantisation of the IR at ``xml``, written to ``out``."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ir = openvino_backend.core().read_model(str(xml))
    convs = [op.get_friendly_name() for op in ir.get_ordered_ops() if op.get_type_name() == "Convolution"]
    names = [convs[0]] * ("first" in keep) + [convs[-1]] * ("last" in keep)
    print(f"int8: {len(convs)} convolutions, kept in float: {names or 'none'}", flush=True)
    quantized = nncf.quantize(
        ir,
        nncf.Dataset(calibration_tiles(scale, calib)),
        subset_size=calib,
        ignored_scope=nncf.IgnoredScope(names=names) if names else None,
        advanced_parameters=None
        if ranges == "default"
        else AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet, ranges.upper())
        ),
    )
    ov.save_model(quantized, str(out), compress_to_fp16=False)


def make_runner(variant: str, model: torch.nn.Module, cache: Path, device: torch.device, args=None):
    kind, _, prec = variant.rpartition("-") if "-" in variant else ("eager", "", variant)
    t = time.perf_counter()
    if kind == "eager":
        runner = tiling.TileRunner(model, device, precision=prec)
    elif kind == "compile":
        runner = CompiledRunner(model, prec, device)
    elif device.type != "cpu":
        raise ImportError("OpenVINO runs on the CPU here")
    else:
        runner = OpenVINORunner(
            model,
            prec,
            cache,
            getattr(args, "calib", 60),
            getattr(args, "int8_keep", "first,last"),
            getattr(args, "int8_ranges", "default"),
        )
    return runner, time.perf_counter() - t


def set14_score(runner, model, scale: int, tile: int, limit: int = 0) -> tuple[float, float]:
    pairs, _scan = data_mod.load_pairs([SHARED / "bench" / "Set14"], scale, 2 * scale + 11, what="benchmark")
    pairs = pairs[:limit] if limit else pairs
    scores = [
        score(tiling.upscale_array(model, p.lr.astype(np.float32) / 255, tile=tile, runner=runner), p.hr, scale)
        for p in pairs
    ]
    m = mean_score(scores)
    return m.psnr, m.ssim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per variant (best is kept)")
    ap.add_argument("--tile", type=int, default=0, help="LR tile (default: 192 on CPU, from free memory on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--variants", nargs="+", default=list(CPU_DEFAULT), choices=ALL_VARIANTS)
    ap.add_argument("--no-psnr", action="store_true", help="speed only (skip Set14)")
    ap.add_argument("--size", default="1200x800", help="WxH of the timed crop (default 1200x800)")
    ap.add_argument("--set14-limit", type=int, default=0, help="score only the first N Set14 images (smoke tests)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--calib", type=int, default=60, help="openvino-int8: calibration crops (default 60)")
    ap.add_argument(
        "--int8-keep",
        default="first,last",
        help="openvino-int8: convolutions left in float: first, last, first,last (default) or none",
    )
    ap.add_argument(
        "--int8-ranges",
        default="default",
        choices=("default", "histogram", "minmax"),
        help="openvino-int8: how each activation's int8 range is set from the calibration crops (NNCF's default)",
    )
    ap.add_argument("--model", help="model name or file (default: the built-in paper model for the scale)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = tiling.pick_device(args.device)
    if not args.tile:
        args.tile = tiling.CPU_TILE if device.type == "cpu" else tiling.auto_tile_size(device, scale=args.scale)
    loaded = registry.load_model(args.model, args.scale)
    model = loaded.model.eval()
    photo = imageio.read_image(SHARED / PHOTO).rgb
    cw, ch = (int(v) for v in args.size.lower().split("x"))
    lr = np.ascontiguousarray(photo[:ch, :cw])
    out_mp = lr.shape[0] * lr.shape[1] * args.scale**2 / 1e6
    cache = paths.cache_dir() / "openvino"
    rows: list[dict] = []
    info = {
        "model": loaded.name,
        "scale": args.scale,
        "image": f"{PHOTO} [0:{ch}, 0:{cw}]",
        "tile": args.tile,
        "device": tiling.device_label(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_native_bf16": tiling.cpu_bf16_supported(),
        "auto_precision": tiling.resolve_precision(device, "auto"),
        "loadavg_start": os.getloadavg(),
    }
    print(json.dumps(info), flush=True)
    for variant in args.variants:
        try:
            runner, setup = make_runner(variant, model, cache, device, args)
        except (ImportError, ValueError) as exc:
            print(f"{variant}: skipped ({exc})", flush=True)
            continue
        row: dict = {"variant": variant, "setup_s": round(setup, 2)}
        if isinstance(runner, OpenVINORunner):
            row.update(export_s=round(runner.export_s, 2), exported_now=runner.exported, load_s=round(runner.load_s, 2))
            if runner.precision == "int8":
                row.update(
                    quantize_s=round(runner.quantize_s, 2),
                    calib=args.calib,
                    int8_keep=args.int8_keep,
                    int8_ranges=args.int8_ranges,
                )

        def once(runner=runner) -> float:
            t = time.perf_counter()
            tiling.upscale_array(model, lr, tile=args.tile, runner=runner, dtype=np.uint8)
            return time.perf_counter() - t

        try:
            row["first_s"] = round(once(), 2)  # includes compilation for compiled variants
        except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a C++ compiler: say so, go on
            print(f"{variant}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", flush=True)
            continue
        row["seconds"] = round(min(once() for _ in range(args.repeat)), 2)
        row["out_mp_per_s"] = round(out_mp / row["seconds"], 3)
        if not args.no_psnr:
            psnr, ssim = set14_score(runner, model, args.scale, args.tile, args.set14_limit)
            row["set14_psnr"], row["set14_ssim"] = round(psnr, 4), round(ssim, 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["variant"] == "fp32"), None)
    print(
        f"\n{loaded.name}, {args.size} x{args.scale}, {info['device']}, {info['threads']} threads, tile {args.tile}, "
        f"native bf16: {info['cpu_native_bf16']}, auto = {info['auto_precision']}\n"
    )
    print("| variant | s / image | output MP/s | vs fp32 | Set14 PSNR | vs fp32 (dB) | setup |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = f"{base['seconds'] / r['seconds']:.2f}x" if base else ""
        psnr = r.get("set14_psnr", "")
        dp = f"{psnr - base['set14_psnr']:+.4f}" if base and psnr != "" and "set14_psnr" in base else ""
        setup = f"{r['setup_s']} s" + (f" (first {r['first_s']} s)" if r["variant"].startswith("compile") else "")
        print(f"| {r['variant']} | {r['seconds']} | {r['out_mp_per_s']} | {speed} | {psnr} | {dp} | {setup} |")
    result = {**info, "loadavg_end": os.getloadavg(), "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
