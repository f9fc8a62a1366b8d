"""Inference paths (issue 31): Auto measures them once per machine and model, any path can be forced, and an
OpenVINO path that cannot run falls back to PyTorch with one clear line, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlrn_core import backends, batch, openvino_backend, registry, tiling
from mlrn_core.cli import main
from tests.helpers import textured_image, tiny_model

needs_openvino = pytest.mark.skipif(not openvino_backend.available(), reason="openvino is not installed")
CPU = torch.device("cpu")


@pytest.fixture
def measuring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Auto's measurement on (tests/conftest.py turns it off), with its own cache folders."""
    monkeypatch.setenv("MLRN_AUTO_MEASURE", "1")
    monkeypatch.setattr(openvino_backend, "cache_folder", lambda: tmp_path / "ov-cache")
    monkeypatch.setattr(backends, "_cache_file", lambda: tmp_path / "auto-paths.json")
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("auto", "auto", "auto"), ("auto", "auto")),
        (("auto", "cpu", "fp32"), ("cpu", "fp32")),
        (("pytorch", "auto", "bf16"), ("auto", "bf16")),
        (("pytorch", "cpu", "auto"), ("cpu", "pytorch-auto")),
        (("openvino", "auto", "auto"), ("cpu", "openvino")),
        (("openvino", "cpu", "int8"), ("cpu", "openvino-int8")),
        (("auto", "auto", "int8"), ("cpu", "openvino-int8")),
        (("auto", "gpu", "auto"), ("cpu", "openvino-gpu")),
        (("openvino", "gpu", "fp16"), ("cpu", "openvino-gpu")),
        (("auto", "auto", "openvino"), ("cpu", "openvino")),  # the older --precision openvino still works
    ],
)
def test_backend_device_and_precision_flags_name_one_path(flags, expected) -> None:
    assert backends.path_from_flags(*flags) == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("pytorch", "auto", "int8"), "int8 runs on OpenVINO"),
        (("pytorch", "gpu", "auto"), "Intel GPU through OpenVINO"),
        (("openvino", "cuda", "auto"), "CPU or an Intel GPU"),
        (("openvino", "cpu", "bf16"), "fp32 or int8"),
        (("pytorch", "auto", "openvino"), "use --backend openvino"),
        (("tensorrt", "auto", "auto"), "unknown backend"),
    ],
)
def test_a_path_that_cannot_run_is_refused_naming_what_can(flags, message) -> None:
    with pytest.raises(ValueError, match=message):
        backends.path_from_flags(*flags)


def test_auto_measures_every_path_once_per_machine_and_model(measuring: Path, monkeypatch) -> None:
    model = tiny_model(2, seed=5)
    measured = []
    real = backends.measure
    monkeypatch.setattr(backends, "measure", lambda *a, **k: measured.append(1) or real(*a, **k))
    heard: list[str] = []
    choice = backends.choose(model, CPU, announce=heard.append)
    assert measured == [1] and choice.measured
    expected = [backends.path_label(p, CPU) for p in backends.candidates(model, CPU)]
    assert sorted(choice.seconds) == sorted(expected) and all(s > 0 for s in choice.seconds.values())
    assert choice.label == min(choice.seconds, key=choice.seconds.get)  # the fastest path measured
    assert choice.speedup == pytest.approx(choice.seconds["PyTorch CPU fp32"] / choice.seconds[choice.label], 0.02)
    assert heard[0].startswith("measuring") and heard[1].startswith(f"Auto: {choice.text()}")
    # a second use, in this or another process, reads the answer: nothing measured again
    again = backends.choose(model, CPU, announce=heard.append)
    assert again == choice and measured == [1] and len(heard) == 2
    kept = json.loads((measuring / "auto-paths.json").read_text())
    assert kept["version"] == backends._VERSION
    # an answer measured the old way (an older version: another tile, other int8 networks) is measured again
    kept["version"] = backends._VERSION - 1
    (measuring / "auto-paths.json").write_text(json.dumps(kept))
    backends.choose(model, CPU)
    assert measured == [1, 1]
    # another model is measured for itself
    backends.choose(tiny_model(2, seed=6), CPU)
    assert measured == [1, 1, 1]


def test_the_runner_takes_autos_path_and_says_so(measuring: Path) -> None:
    model = tiny_model(2, seed=7)
    runner = backends.make_runner(model, CPU, precision="auto")
    assert runner.auto is not None and runner.precision == runner.auto.precision
    assert f"(Auto, {runner.auto.speedup:.1f}x)" in runner.describe()
    exact = tiling.TileRunner(tiny_model(2, seed=7), CPU, precision="fp32")
    tile = np.random.default_rng(0).random((24, 20, 3), dtype=np.float32)
    tol = 2e-2 if runner.precision == "bf16" else 2e-4  # bf16 rounds; the others give fp32's pictures
    np.testing.assert_allclose(runner.run(tile), exact.run(tile), atol=tol)


def test_with_measuring_off_auto_is_the_fixed_rule() -> None:  # conftest sets MLRN_AUTO_MEASURE=0
    runner = backends.make_runner(tiny_model(2, seed=1), CPU, precision="auto")
    assert runner.precision == tiling.resolve_precision(CPU, "auto") and not runner.auto.measured
    assert runner.describe() == backends.path_label(runner.precision, CPU).replace(" CPU ", " ") + " (Auto)"


@needs_openvino
def test_a_path_that_cannot_start_falls_back_to_pytorch_with_one_line(measuring: Path, caplog) -> None:
    model = tiny_model(2, seed=8)  # a user model: no int8 network ships for it
    runner = tiling.TileRunner(model, CPU, precision="openvino-int8")
    fixed = tiling.resolve_precision(CPU, "auto")
    assert runner.precision == fixed and runner._openvino is None
    assert runner.fallback_note.startswith("OpenVINO CPU int8 failed (this model has no int8 network")
    assert runner.fallback_note.endswith(f"running {backends.path_label(fixed, CPU)} instead")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [runner.fallback_note]
    with pytest.raises(ValueError, match="no int8 network"):
        tiling.TileRunner(model, CPU, precision="openvino-int8", fallback=False)


def test_openvino_missing_falls_back_in_the_runner_and_is_refused_on_the_command_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    runner = tiling.TileRunner(tiny_model(2, seed=9), CPU, precision="openvino")
    assert runner._openvino is None and "pip install openvino" in runner.fallback_note
    assert "OpenVINO CPU fp32" not in [backends.path_label(p) for p in backends.candidates(tiny_model(2), CPU)]
    src = tmp_path / "a.png"
    Image.fromarray(textured_image(20, 24)).save(src)
    model_file = registry.save_model(tmp_path / "m.pt", tiny_model(2, seed=9), info={})
    args = ["upscale", str(src), "--model", str(model_file), "--backend", "openvino", "-o", str(tmp_path / "b.png")]
    assert main(args) == 2 and not (tmp_path / "b.png").exists()


@needs_openvino
def test_a_device_lost_mid_run_hands_the_tiles_to_pytorch(measuring: Path) -> None:
    model = tiny_model(2, seed=10)
    runner = tiling.TileRunner(model, CPU, precision="openvino")
    exact = tiling.TileRunner(tiny_model(2, seed=10), CPU, precision=tiling.resolve_precision(CPU, "auto"))
    tile = np.random.default_rng(1).random((16, 16, 3), dtype=np.float32)

    class Lost:
        def __call__(self, _x):
            raise RuntimeError("GPU device was removed")

    runner._openvino = Lost()  # what a device unplugged (or a driver reset) looks like to the runner
    np.testing.assert_allclose(runner.run(tile), exact.run(tile), atol=1e-6)
    assert "failed (GPU device was removed); running PyTorch" in runner.fallback_note
    assert runner._openvino is None


@needs_openvino
def test_batch_records_the_path_each_file_ran_and_a_fall_back_once(measuring: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(textured_image(30, 26)).save(src / name)
    model = tiny_model(2, seed=11)
    for precision, ran in (("openvino", "OpenVINO fp32"), ("openvino-int8", None)):
        out = tmp_path / f"out-{precision}"
        options = batch.BatchOptions(scale=2, device="cpu", precision=precision, tile=32)
        plan = batch.plan_batch([src], out, options)
        results = []
        batch.run_batch(plan, options, model, on_item=results.append)
        assert [r.status for r in results] == [batch.OK, batch.OK]
        ran = ran or backends.path_label(tiling.resolve_precision(CPU, "auto"), CPU).replace(" CPU ", " ")
        assert all(r.backend == f"{tiling.device_label(CPU)}, {ran}" for r in results)
        rows = [json.loads(line) for line in batch.record_path(out).read_text().splitlines()]
        assert [row["backend"] for row in rows] == [r.backend for r in results]
        notes = [w for r in results for w in r.warnings if "failed" in w]
        assert notes == ([] if precision == "openvino" else [results[0].warnings[0]])  # said once, first file


def test_the_command_line_forces_a_path_and_names_it_per_file(tmp_path: Path, capsys) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(textured_image(20, 24)).save(src)
    model_file = registry.save_model(tmp_path / "m.pt", tiny_model(2, seed=12), info={})
    base = ["upscale", str(src), "--model", str(model_file), "--device", "cpu"]
    assert main([*base, "--backend", "pytorch", "--precision", "fp32", "-o", str(tmp_path / "b.png")]) == 0
    err = capsys.readouterr().err
    assert "PyTorch CPU fp32" in err and "PyTorch fp32)" in err  # the header, and the file's line
    assert main([*base, "--backend", "pytorch", "--precision", "int8", "-o", str(tmp_path / "c.png")]) == 2
    assert "int8 runs on OpenVINO" in capsys.readouterr().err


def test_auto_times_the_tile_the_cli_and_the_app_run(measuring: Path, monkeypatch) -> None:
    # the paths rank differently on other tile sizes: on an AMX CPU OpenVINO int8 led PyTorch bf16 on 128 px
    # tiles and trailed it on 192 px, the size that runs (benchmarks/tile_size.py)
    shapes: list[tuple[int, ...]] = []
    real = tiling.TileRunner.run
    monkeypatch.setattr(tiling.TileRunner, "run", lambda self, lr: shapes.append(lr.shape[:2]) or real(self, lr))
    backends.measure(tiny_model(2, seed=7), CPU)
    assert shapes and set(shapes) == {(tiling.CPU_TILE, tiling.CPU_TILE)}
