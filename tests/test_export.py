"""``mlrn export``: a model as ONNX or OpenVINO IR that other runtimes run to PyTorch's pictures (issue 31 item 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlrn_core import registry
from mlrn_core.cli import main
from mlrn_core.model import MLRN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = MLRN(scale=3, features=8, blocks=1)
    with torch.no_grad():  # weights away from their initialisation, so every layer shapes the output
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return registry.save_model(tmp_path_factory.mktemp("m") / "portraits.pt", net, info={})


def _torch_output(model_file: Path, x: np.ndarray) -> np.ndarray:
    net = registry.load_model(str(model_file), None).model.float().eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_onnx_export_runs_in_onnx_runtime_at_any_size(tmp_path: Path, model_file: Path, capsys) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    assert main(["export", str(model_file), "--format", "onnx", "-o", str(tmp_path)]) == 0
    out = tmp_path / "portraits.onnx"
    assert f"wrote {out}" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p != out]  # one file, no temporary left beside it
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["mlrn.scale"] == "3" and meta["mlrn.name"] == "portraits"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["lr"] and [o.name for o in session.get_outputs()] == ["sr"]
    rng = np.random.default_rng(1)
    for h, w in ((48, 40), (17, 29), (64, 64)):  # the traced size, odd edge-tile sizes, another square
        x = rng.random((1, 3, h, w), dtype=np.float32)
        got = session.run(None, {"lr": x})[0]
        assert got.shape == (1, 3, 3 * h, 3 * w)
        assert np.abs(got - _torch_output(model_file, x)).max() < 1e-4


def test_openvino_export_runs_in_openvino(tmp_path: Path, model_file: Path) -> None:
    pytest.importorskip("openvino")
    assert main(["export", str(model_file), "--format", "openvino", "-o", str(tmp_path / "p.xml")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.bin", "p.xml"]
    x = np.random.default_rng(2).random((1, 3, 21, 34), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    # OpenVINO inference runs in a child process: in this one, PyTorch training crashed after it (issue 31)
    script = (
        "import sys, json, numpy as np, openvino as ov\n"
        "c = ov.Core().compile_model(sys.argv[1], 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})\n"
        "y = c(np.load(sys.argv[2]))[0]\n"
        "np.save(sys.argv[3], y)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "p.xml"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        timeout=300,
    )
    got = np.load(tmp_path / "y.npy")
    assert got.shape == (1, 3, 63, 102)
    assert np.abs(got - _torch_output(model_file, x)).max() < 1e-4


def test_export_keeps_an_existing_output_and_names_it(tmp_path: Path, model_file: Path, capsys) -> None:
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"the user's own file")
    assert main(["export", str(model_file), "--format", "onnx", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "output" in err and str(out) in err and "--force" in err
    assert out.read_bytes() == b"the user's own file"


def test_export_refuses_a_wrong_extension_and_a_missing_folder(tmp_path: Path, model_file: Path, capsys) -> None:
    assert main(["export", str(model_file), "--format", "openvino", "-o", str(tmp_path / "m.onnx")]) == 2
    assert ".xml" in capsys.readouterr().err
    assert main(["export", str(model_file), "--format", "onnx", "-o", str(tmp_path / "nowhere" / "m.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_of_an_unknown_model_names_it(tmp_path: Path, capsys) -> None:
    assert main(["export", "no such model", "--format", "onnx", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "input model no such model" in err
    assert list(tmp_path.iterdir()) == []
