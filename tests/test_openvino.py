"""OpenVINO as the tiles' second backend (issue 31, first part): precision "openvino" gives PyTorch fp32's
pictures through the same TileRunner, for every tile size (dynamic shapes), any model file, and converts a
network once (cached by its weights)."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlrn_core import openvino_backend, registry, tiling
from mlrn_core.cli import main
from tests.helpers import textured_image, tiny_model

pytestmark = pytest.mark.skipif(not openvino_backend.available(), reason="openvino is not installed")


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
    assert fast.precision == "openvino" and fast.describe() == "OpenVINO fp32"
    rng = np.random.default_rng(1)
    for h, w in ((48, 48), (37, 61), (1, 9), (130, 72)):  # edge tiles and thin strips: one converted network
        tile = rng.random((h, w, 3), dtype=np.float32)
        np.testing.assert_allclose(fast.run(tile), exact.run(tile), atol=2e-4)
    assert len(list(cache.glob("*.xml"))) == 1 and len(list(cache.glob("*.bin"))) == 1
    ir = openvino_backend.core().read_model(str(next(cache.glob("*.xml"))))
    maps = [op.get_type_name() for op in ir.get_ordered_ops() if op.get_output_partial_shape(0).rank.get_length() == 4]
    assert "Convolution" in maps and "Concat" not in maps  # the concat-free form (shape arithmetic may concatenate)
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


class _SignalStack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _signal_stack() -> tuple[int, int, int]:
    """This thread's alternate signal stack: (address, flags, size)."""
    now = _SignalStack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(now)) == 0
    return now.ss_sp or 0, now.ss_flags, now.ss_size


def _mapped(address: int, size: int) -> bool:
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = (int(v, 16) for v in line.split()[0].split("-"))
        if start <= address and address + size <= end:
            return True
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc/self/maps: Linux")
def test_networks_that_come_and_go_leave_a_valid_signal_stack(cache: Path) -> None:
    # OpenVINO's CPU plugin sets an alternate signal stack per Core and puts back the one it found when the Core
    # goes; with a Core per network, dropped out of order, the thread kept a freed stack and the next signal
    # (Ctrl-C, the trainer's SIGUSR1 pause) wrote into freed memory: a later crash in the garbage collector.
    tile = np.random.default_rng(0).random((1, 3, 20, 20), dtype=np.float32)
    first = openvino_backend.OpenVinoNetwork(tiny_model(2, seed=1))
    second = openvino_backend.OpenVinoNetwork(tiny_model(2, seed=2))
    first(tile), second(tile)
    del first
    gc.collect()
    del second
    gc.collect()
    address, flags, size = _signal_stack()
    if not flags & 2:  # SS_DISABLE: no alternate stack, signals use the thread's own stack
        assert address and _mapped(address, size), "the thread's alternate signal stack is not mapped memory"
    seen = []
    old = signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        gc.collect()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen == [1]
