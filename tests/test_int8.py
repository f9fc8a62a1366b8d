"""The shipped int8 networks (issue 31 item 2): offered only for the installed weights they were made from, and
only when Set14 PSNR stays within 0.05 dB of fp32 — measured again here, through the path the app runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlrn_core import evaluate, openvino_backend, registry, tiling
from mlrn_core.model import weights_key
from tests.helpers import SHARED_DATA, needs_shared_data, textured_image

pytestmark = [
    pytest.mark.builtin_models,
    pytest.mark.skipif(not openvino_backend.available(), reason="openvino is not installed"),
]
INDEX = openvino_backend.int8_index()
# offered, and right on this CPU (without VNNI, only the networks made with the overflow fix)
OFFERED = sorted(
    (e["name"], e["scale"]) for e in INDEX.values() if e.get("offered") and openvino_backend.int8_exact_here(e)
)


def test_each_int8_network_belongs_to_the_installed_weights_and_its_record_holds() -> None:
    assert INDEX, "resources/openvino/int8.json lists no int8 network (python release/int8.py makes them)"
    for key, entry in INDEX.items():
        installed = registry.load_model(entry["name"], None).model
        assert weights_key(installed) == key == entry["weights"], (
            f"{entry['name']}'s int8 network was made from other weights: run python release/int8.py "
            f"--models {entry['name']}"
        )
        assert (openvino_backend.int8_folder() / entry["file"]).is_file()
        assert (openvino_backend.int8_folder() / entry["file"]).with_suffix(".bin").is_file()
        losses = [r["loss_db"] for r in entry["set14"].values()]
        assert entry["offered"] == all(loss <= openvino_backend.INT8_MAX_LOSS_DB for loss in losses)
        here = openvino_backend.int8_exact_here(entry)
        assert openvino_backend.int8_offered(installed) == (entry["offered"] and here)


def test_without_vnni_only_networks_made_with_the_overflow_fix_are_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = {"offered": True, "settings": {"overflow_fix": "enable"}}
    unfixed = {"offered": True, "settings": {"overflow_fix": "first_layer"}}
    monkeypatch.setattr(openvino_backend, "_cpu_vnni", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert openvino_backend.int8_exact_here(fixed) and openvino_backend.int8_exact_here(unfixed)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a VNNI CPU limited to AVX2 saturates as an AVX2 one does
    assert openvino_backend.int8_exact_here(fixed) and not openvino_backend.int8_exact_here(unfixed)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2_VNNI")
    assert openvino_backend.int8_exact_here(unfixed)
    monkeypatch.setattr(openvino_backend, "_cpu_vnni", lambda: False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert openvino_backend.int8_exact_here(fixed) and not openvino_backend.int8_exact_here(unfixed)
    for key, entry in INDEX.items():  # a forced int8 path says why it cannot run here
        installed = registry.load_model(entry["name"], None).model
        fix = entry["settings"].get("overflow_fix")
        assert openvino_backend.int8_offered(installed) == (entry["offered"] and fix == "enable"), key
        if entry["offered"] and fix != "enable":
            assert "without VNNI" in openvino_backend.int8_problem(installed)


@needs_shared_data
@pytest.mark.parametrize(("name", "scale"), OFFERED)
def test_an_offered_int8_network_keeps_set14_within_005_db_of_fp32(name: str, scale: int) -> None:
    model = registry.load_model(name, None).model
    # fp32 through OpenVINO gives PyTorch fp32's pictures (tests/test_openvino.py) in a fraction of the time
    scores = {
        p: evaluate.benchmark([SHARED_DATA / "bench" / "Set14"], scale, model, name, precision=p).model.psnr
        for p in ("openvino", "openvino-int8")
    }
    assert scores["openvino"] - scores["openvino-int8"] <= openvino_backend.INT8_MAX_LOSS_DB, scores


@pytest.mark.parametrize(("name", "scale"), OFFERED[:1])
def test_int8_runs_every_tile_shape_the_app_makes(name: str, scale: int) -> None:
    # edge tiles and thin strips (dynamic shapes); OpenVINO's int8 kernels have crashed on small dynamic inputs
    # on AMX CPUs elsewhere, so the smallest shapes are tried too
    model = registry.load_model(name, None).model
    runner = tiling.TileRunner(model, torch.device("cpu"), precision="openvino-int8", fallback=False)
    exact = tiling.TileRunner(model, torch.device("cpu"), precision="fp32")
    picture = textured_image(192, 192).astype(np.float32) / 255  # photo-like content, as calibrated for
    for h, w in ((192, 192), (37, 61), (1, 9), (8, 8), (130, 72)):
        tile = np.ascontiguousarray(picture[:h, :w])
        out = runner.run(tile)
        assert out.shape == (h * scale, w * scale, 3) and np.isfinite(out).all()
        assert np.abs(out - exact.run(tile)).mean() < 0.01  # int8: close to fp32, not equal
