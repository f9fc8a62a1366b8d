"""Make and measure the int8 OpenVINO networks of the built-in models (issue 31): ``resources/openvino/``.

For each model: its float IR (:func:`mlrn_core.openvino_backend.convert`, the concat-free form of
:func:`mlrn_core.model.concat_free`), then NNCF's post-training quantisation *with accuracy control*
(``nncf.quantize_with_accuracy_control``): every convolution and addition is quantised, calibrated on LR crops
of ``train/BSD200`` photographs (each
activation's int8 range from its histogram, ``--ranges``: with every layer in int8, mlrn-x2 lost 0.077 dB on
Set14 x2 with histogram ranges and 0.303 dB with NNCF's default, ``python benchmarks/precision.py --variants
fp32 openvino-int8 --int8-keep none [--int8-ranges histogram]``), and NNCF puts back into float, one
by one, the layers whose quantisation costs most, until the PSNR of held-out BSD200 crops (another seed, never
Set14) is within ``--max-drop`` dB (absolute) of float. Photo models are calibrated and validated on the
camera degradations they are trained on (``mlrn_core.data.CAMERA``).

Then Set14 (``docs/EVALUATION.md``'s protocol through :func:`mlrn_core.evaluate.benchmark`, the same as
``mlrn bench ../shared/data/bench/Set14 -s S --model M --precision openvino-int8``) is scored at fp32
(PyTorch) and int8, clean and, for photo models, with JPEG q85 inputs; the network is *offered*
(``int8.json``'s ``offered``) only when every loss is within :data:`mlrn_core.openvino_backend.INT8_MAX_LOSS_DB`.
The app and ``mlrn upscale`` use a network only when it is offered and its weights key matches the installed
model (re-run this after installing new weights). ``tests/test_int8.py`` measures the shipped networks again.

Why shipped, not made at first use: NNCF (with SciPy and scikit-learn) would add about 150 MB to the bundle and
several minutes per model on the user's machine; the five int8 networks take 8.6 MB.

Usage: ``python release/int8.py [--models mlrn-x2 ...] [--max-drop 0.03] [--calib 100] [--val 30]
[--ranges histogram]``.

The shipped networks (2026-12-08): ``python release/int8.py``, then ``python release/int8.py --models
mlrn-x4-photo --max-drop 0.015``: with 0.03, mlrn-x4-photo lost 0.055 dB on clean Set14 and was not offered;
with 0.015 it loses 0.043 (each entry of ``int8.json`` records its settings). These were made without the
overflow fix (NNCF's default then: the first layer only), so they are offered only on CPUs with VNNI
(:func:`mlrn_core.openvino_backend.int8_exact_here`). ``python release/int8.py --models mlrn-x2-photo`` (the
overflow fix on every layer, the default since) remade mlrn-x2-photo on a 2-core AMD EPYC with AVX2 only:
567 s, 2 of 159 operations put back into float, Set14 loss 0.037 dB (JPEG q85 inputs 0.011); it is offered on
every CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import data as data_mod  # noqa: E402
from mlrn_core import evaluate, openvino_backend, registry  # noqa: E402
from mlrn_core.metrics import score  # noqa: E402
from mlrn_core.model import weights_key  # noqa: E402

SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
MODELS = ("mlrn-x2", "mlrn-x3", "mlrn-x4", "mlrn-x2-photo", "mlrn-x4-photo")
CROP = 96  # LR pixels (x4: 80, so that BSD200's 481x321 photographs hold a crop)
# Why no layer is kept in float from the start: in the concatenating form, a concatenation shared one int8 range
# among all its inputs, which tied 36 operations into one group that accuracy control could only put back into
# float together (41 of 97 went back); the 1x1 fusions were then kept in float (an ignored scope). The
# concat-free form (openvino_backend.FORM) has no concatenation: each input of a fusion has its own range, and
# the fusions run in int8 too (``python benchmarks/ov_networks.py``, figures in docs/results.md).


def crops(scale: int, count: int, seed: int, photo: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (LR NCHW float32 in [0, 1], HR uint8 HWC) crop pairs of BSD200 photographs."""
    side = min(CROP, 320 // scale)
    pairs, _scan = data_mod.load_pairs([SHARED / "train" / "BSD200"], scale, side * scale, what="calibration")
    images = evaluate.eval_images(pairs, data_mod.CAMERA if photo else None, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        img = images[int(rng.integers(len(images)))]
        y, x = int(rng.integers(img.lr.shape[0] - side + 1)), int(rng.integers(img.lr.shape[1] - side + 1))
        lr = img.lr[y : y + side, x : x + side].transpose(2, 0, 1)[None]
        hr = img.hr[y * scale : (y + side) * scale, x * scale : (x + side) * scale]
        out.append((np.ascontiguousarray(lr, dtype=np.float32) / 255, hr))
    return out


def quantize(name: str, out: Path, max_drop: float, calib: int, val: int, ranges: str, overflow_fix: str) -> dict:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    loaded = registry.load_model(name, None)
    scale, photo = int(loaded.model.scale), name.endswith("-photo")
    calibration = [lr for lr, _hr in crops(scale, calib, seed=31, photo=photo)]
    validation = crops(scale, val, seed=77, photo=photo)

    def psnr(compiled, items) -> float:
        values = []
        for lr, hr in items:
            sr = np.clip(compiled(lr)[0][0], 0, 1).transpose(1, 2, 0)
            values.append(score((sr * 255 + 0.5).astype(np.uint8), hr, scale).psnr)
        return float(np.mean(values))

    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "float.xml"
        openvino_backend.convert(loaded.model, xml)
        ir = openvino_backend.core().read_model(str(xml))
        t = time.perf_counter()
        quantized = nncf.quantize_with_accuracy_control(  # the reverted operations are in NNCF's log
            ir,
            nncf.Dataset(calibration),
            nncf.Dataset(validation),
            psnr,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=calib,
            advanced_quantization_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=getattr(RangeEstimatorParametersSet, ranges.upper()),
                overflow_fix=getattr(nncf.OverflowFix, overflow_fix.upper()),
            ),
        )
        seconds = time.perf_counter() - t
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    fq = sum(1 for op in quantized.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return {
        "name": name,
        "file": out.name,
        "scale": scale,
        "weights": weights_key(loaded.model),
        "fake_quantize_ops": fq,
        "quantize_s": round(seconds, 1),
        "settings": {
            "max_drop_db": max_drop,
            "calib": calib,
            "val": val,
            "activation_ranges": ranges,
            "overflow_fix": overflow_fix,
            "form": openvino_backend.FORM,
            "crop": min(CROP, 320 // scale),
            "photo": photo,
        },
        "openvino": ov.get_version(),
        "nncf": nncf.__version__,
    }


def measure(name: str) -> dict[str, dict[str, float]]:
    """Set14 PSNR at fp32 (PyTorch) and int8, clean and (photo models) with JPEG q85 inputs."""
    loaded = registry.load_model(name, None)
    scale = int(loaded.model.scale)
    results = {}
    for degrade in ("none", "jpeg:85") if name.endswith("-photo") else ("none",):
        row = {}
        for precision in ("fp32", "openvino-int8"):
            res = evaluate.benchmark(
                [SHARED / "bench" / "Set14"],
                scale,
                loaded.model,
                name,
                degradation=evaluate.parse_degradation(degrade),
                precision=precision,
            )
            row[precision] = round(res.model.psnr, 4)
        row["loss_db"] = round(row["fp32"] - row["openvino-int8"], 4)
        results[f"Set14 {degrade}"] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--max-drop", type=float, default=0.03, help="NNCF's allowed PSNR drop on the held-out crops")
    ap.add_argument("--calib", type=int, default=100, help="calibration crops")
    ap.add_argument(
        "--ranges",
        default="histogram",
        choices=("histogram", "minmax", "mean_minmax"),
        help="how NNCF sets each activation's int8 range from the calibration crops",
    )
    ap.add_argument("--val", type=int, default=30, help="validation crops")
    ap.add_argument(
        "--overflow-fix",
        default="enable",
        choices=("enable", "first_layer", "disable"),
        help="NNCF's fix of the int8 saturation of CPUs without VNNI (7-bit weights): every layer (enable, so the "
        "network is right on every CPU), the first only (NNCF's default) or none",
    )
    args = ap.parse_args()
    folder = openvino_backend.int8_folder()
    index_file = folder / "int8.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    index.setdefault("models", {})
    index["command"] = "python release/int8.py"
    index["max_loss_db"] = openvino_backend.INT8_MAX_LOSS_DB
    for name in args.models:
        print(f"{name}: quantising", flush=True)
        out = folder / f"{name}.int8.xml"
        entry = quantize(name, out, args.max_drop, args.calib, args.val, args.ranges, args.overflow_fix)
        # drop an older entry of this model (other weights)
        index["models"] = {k: v for k, v in index["models"].items() if v.get("name") != name}
        index["models"][entry["weights"]] = entry
        index_file.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")  # so measure() finds it
        entry["offered"] = True  # measured next; offered only if every loss is small enough
        index_file.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        entry["set14"] = measure(name)
        entry["offered"] = all(r["loss_db"] <= openvino_backend.INT8_MAX_LOSS_DB for r in entry["set14"].values())
        index_file.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(entry), flush=True)


if __name__ == "__main__":
    main()
