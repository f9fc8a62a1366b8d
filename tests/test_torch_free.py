"""A run on OpenVINO with everything cached never imports torch (issue 31, item 4): the model file is known by
its bytes (mlrn_core.known_models), the CPU and its threads without torch (mlrn_core.tiling.host_cpu), and the
tiles run in numpy. Whatever is not known goes the way it went before, with torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlrn_core import backends, imageio, known_models, openvino_backend, registry, tiling
from mlrn_core.model import weights_key
from tests.helpers import textured_image, tiny_model

needs_openvino = pytest.mark.skipif(not openvino_backend.available(), reason="openvino is not installed")
REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A per-user home of its own (cache, Auto's answers), which the child processes share."""
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_model_file_is_known_by_its_bytes_once_loaded(home: Path, tmp_path: Path) -> None:
    path = registry.save_model(tmp_path / "m.pt", tiny_model(2, seed=3), info={"data": "T91"})
    assert registry.known_model(path) is None  # never loaded here
    loaded = registry.load_model(path)
    known = registry.known_model(path)
    assert isinstance(known.model, known_models.KnownModel)
    assert known.model.key == weights_key(loaded.model) == known_models.key_of(known.model)
    assert (known.name, known.scale, known.info["data"]) == ("m", 2, "T91")
    assert known.model.hparams == loaded.model.hparams
    assert registry.known_model(path, scale=3) is None  # not an x3 model: load_model says so
    registry.save_model(path, tiny_model(2, seed=4), info={})  # the same name, other weights
    assert registry.known_model(path) is None
    with pytest.raises(registry.ModelError, match="changed while it was in use"):  # nor run under the old key
        registry.network_of(known.model)


def test_a_user_model_is_known_by_name(home: Path, tmp_path: Path) -> None:
    source = registry.save_model(tmp_path / "src.pt", tiny_model(2, seed=5), info={})
    entry = registry.register_user_model(source, "Mine", "# Mine\n")
    registry.load_model("Mine")
    known = registry.known_model("Mine", 2)
    assert known is not None and known.name == "Mine" and known.path == entry.path
    assert registry.known_model("Nobody", 2) is None


def test_the_flips_and_turns_of_the_ensemble_are_the_same_in_numpy_and_torch() -> None:
    x = np.random.default_rng(0).random((1, 3, 5, 7), dtype=np.float32)
    for k in range(tiling.ENSEMBLE_SIZE):
        turned = tiling.dihedral_transform(x, k)
        np.testing.assert_array_equal(turned, tiling.dihedral_transform(torch.from_numpy(x), k).numpy())
        np.testing.assert_array_equal(tiling.undo_transform(turned, k), x)


def test_the_cpu_is_known_without_torch_only_where_no_gpu_can_be_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tiling.host_cpu("cpu", 3) == tiling.HostCPU(3)
    assert str(tiling.HostCPU(3)) == "cpu" and tiling.device_label(tiling.HostCPU(3)) == "CPU (3 threads)"
    assert tiling.host_cpu("cuda", 3) is None and tiling.host_cpu("cpu", 0) is None
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(tiling, "_torch_build", lambda: {"__version__": "2.13.0+cpu", "cuda": None, "hip": None})
    assert tiling.host_cpu("auto", 2) == tiling.HostCPU(2)
    monkeypatch.setattr(tiling, "_torch_build", lambda: None)  # torch's version.py unreadable: ask torch
    assert tiling.host_cpu("auto", 2) is None
    monkeypatch.setattr(tiling, "_torch_build", lambda: {"__version__": "2.13.0", "cuda": "12.8", "hip": None})
    import ctypes

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    assert tiling.host_cpu("auto", 2) == tiling.HostCPU(2)  # a CUDA build without the NVIDIA driver
    monkeypatch.setattr(ctypes, "CDLL", lambda name: name)
    assert tiling.host_cpu("auto", 2) is None  # the driver is there: torch decides
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(tiling, "_torch_build", lambda: {"__version__": "2.13.0", "cuda": None, "hip": None})
    assert tiling.host_cpu("auto", 2) is None  # Apple MPS


def test_torchs_build_is_read_from_its_version_file() -> None:
    build = tiling._torch_build()
    assert build is not None and build["__version__"] == torch.__version__
    assert build["cuda"] == torch.version.cuda and build["hip"] == torch.version.hip
    assert tiling.torch_version() == torch.__version__


@needs_openvino
def test_a_known_model_runs_its_openvino_network_and_falls_back_by_loading_its_file(home: Path, tmp_path: Path) -> None:
    path = registry.save_model(tmp_path / "m.pt", tiny_model(2, seed=6), info={})
    net = registry.load_model(path).model
    known = registry.known_model(path).model
    tile = np.random.default_rng(2).random((20, 24, 3), dtype=np.float32)
    for ensemble in (False, True):
        real = tiling.TileRunner(net, CPU, precision="openvino", ensemble=ensemble)  # converts into the cache
        light = tiling.TileRunner(
            known, tiling.HostCPU(torch.get_num_threads()), precision="openvino", ensemble=ensemble
        )
        assert light._openvino is not None and not light._openvino.converted  # the cached network
        np.testing.assert_array_equal(light.run(tile), real.run(tile))
    exact = tiling.TileRunner(net, CPU, precision=tiling.resolve_precision(CPU, "auto"))

    class Lost:
        def __call__(self, _x):
            raise RuntimeError("GPU device was removed")

    light._openvino = Lost()
    light.ensemble = exact.ensemble = False
    np.testing.assert_allclose(light.run(tile), exact.run(tile), atol=1e-6)  # the weights, loaded from the file
    assert "running PyTorch" in light.fallback_note and isinstance(light.model, torch.nn.Module)


def _upscale(args: list[str], env: dict[str, str]) -> tuple[str, bool]:
    """``mlrn upscale ARGS`` in a child process: (its stderr without the import lines, whether torch was imported)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlrn_core.cli", "upscale", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.splitlines()
    text = "\n".join(ln for ln in lines if not ln.startswith("import time:"))
    assert done.returncode == 0, text
    return text, any(re.search(r"\|\s+torch$", ln) for ln in lines)


@needs_openvino
def test_a_run_on_a_cached_openvino_path_never_imports_torch(home: Path, tmp_path: Path) -> None:
    model_file = registry.save_model(tmp_path / "m.pt", tiny_model(2, seed=7), info={})
    src = tmp_path / "photo.png"
    Image.fromarray(textured_image(40, 52)).save(src)
    # what earlier runs left: the model read once, its network converted, Auto's measured choice
    net = registry.load_model(model_file).model
    runner = tiling.TileRunner(net, CPU, precision="openvino")
    want = tiling.upscale_array(net, imageio.read_image(src).rgb, runner=runner, dtype=np.uint8)
    threads = torch.get_num_threads()
    choice = backends.Choice("openvino", "OpenVINO CPU fp32", 1.6, {"OpenVINO CPU fp32": 0.1}, threads=threads)
    backends._store(net, CPU, choice)
    assert backends.measured_threads([registry.known_model(model_file).model]) == threads

    env = {**os.environ, "MLRN_AUTO_MEASURE": "1"}
    text, imported = _upscale([str(src), "--model", str(model_file), "-o", str(tmp_path / "a.png")], env)
    assert not imported, text
    assert f"CPU ({threads} threads), OpenVINO fp32 (Auto, 1.6x)" in text
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png").convert("RGB")), want)

    # the model file replaced by another: read (with torch) again, never run under the old key
    registry.save_model(model_file, tiny_model(2, seed=8), info={})
    text, imported = _upscale([str(src), "--model", str(model_file), "-o", str(tmp_path / "b.png")], env)
    assert imported
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "b.png").convert("RGB")), want)
