"""OpenVINO as the tiles' second backend (issue 31, first part): precision "openvino" gives PyTorch fp32's
pictures through the same TileRunner, for every tile size (dynamic shapes), any model file, and converts a
network once (cached by its weights)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mlrn_core import openvino_backend, registry, tiling
from mlrn_core.cli import main
from tests.helpers import textured_image, tiny_model

# Run in a process of their own (tests/test_openvino_isolated.py starts it): a process that ran OpenVINO inference
# later crashed in the garbage collector (mlrn_core/openvino_backend.py), so it never runs in the main test process.
pytestmark = pytest.mark.skipif(
    not openvino_backend.available() or os.environ.get("MLRN_OPENVINO_TESTS") != "1",
    reason="openvino is not installed, or not in the process of its own",
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ov-cache"
    monkeypatch.setattr(openvino_backend, "cache_folder", lambda: folder)
    return folder


def test_openvino_tiles_are_pytorch_fp32_tiles_at_every_size(cache: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(2, seed=3)
    exact = tiling.TileRunner(model, torch.device("cpu"), precision="fp32")
    fast = tiling.TileRunner(model, torch.device("cpu"), precision="openvino")
    assert fast.precision == "openvino" and fast.describe() == "openvino"
    rng = np.random.default_rng(1)
    for h, w in ((48, 48), (37, 61), (1, 9), (130, 72)):  # edge tiles and thin strips: one converted network
        tile = rng.random((h, w, 3), dtype=np.float32)
        np.testing.assert_allclose(fast.run(tile), exact.run(tile), atol=2e-4)
    assert len(list(cache.glob("*.xml"))) == 1 and len(list(cache.glob("*.bin"))) == 1
    # quality "best" (the self-ensemble) runs through the same backend
    best = tiling.TileRunner(model, torch.device("cpu"), precision="openvino", ensemble=True)
    tile = rng.random((20, 28, 3), dtype=np.float32)
    exact_best = tiling.TileRunner(model, torch.device("cpu"), precision="fp32", ensemble=True)
    np.testing.assert_allclose(best.run(tile), exact_best.run(tile), atol=2e-4)


def test_a_network_is_converted_once_and_another_one_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = openvino_backend.convert
    monkeypatch.setattr(openvino_backend, "convert", lambda *a: calls.append(1) or real(*a))
    first = openvino_backend.OpenVinoNetwork(tiny_model(2, seed=1))
    again = openvino_backend.OpenVinoNetwork(tiny_model(2, seed=1))
    other = openvino_backend.OpenVinoNetwork(tiny_model(2, seed=2))  # other weights: another network
    assert first.converted and not again.converted and other.converted and len(calls) == 2
    assert first.key == again.key != other.key
    assert not [p for p in cache.iterdir() if ".part" in p.name]  # written whole, under its name


def test_the_command_line_upscales_a_photo_with_openvino(tmp_path: Path, cache: Path) -> None:
    from PIL import Image

    model_file = registry.save_model(tmp_path / "tiny.pt", tiny_model(2, seed=4), info={})
    src = tmp_path / "photo.png"
    Image.fromarray(textured_image(70, 90)).save(src)
    args = ["upscale", str(src), "--model", str(model_file), "--device", "cpu", "--tile", "32"]
    assert main([*args, "--precision", "fp32", "-o", str(tmp_path / "exact.png")]) == 0
    assert main([*args, "--precision", "openvino", "-o", str(tmp_path / "fast.png")]) == 0
    exact = np.asarray(Image.open(tmp_path / "exact.png")).astype(int)
    fast = np.asarray(Image.open(tmp_path / "fast.png")).astype(int)
    assert exact.shape == fast.shape == (140, 180, 3) and np.abs(exact - fast).max() <= 1


def test_openvino_is_refused_off_the_cpu_and_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="runs on the CPU"):
        tiling.resolve_precision(torch.device("cuda"), "openvino")
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    with pytest.raises(ValueError, match="pip install openvino"):
        tiling.resolve_precision(torch.device("cpu"), "openvino")
