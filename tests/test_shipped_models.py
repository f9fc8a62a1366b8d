"""The shipped weights keep the quality their model cards state (Set5 PSNR within 0.05 dB)."""

import re

import pytest

from mlrn_core import paths, registry
from mlrn_core.evaluate import benchmark
from tests.helpers import SHARED_DATA, needs_shared_data

SHIPPED = sorted(paths.builtin_models_dir().glob("mlrn-x*.pt"))
pytestmark = pytest.mark.builtin_models


def card_set5_psnr(card: str) -> float:
    row = next(line for line in card.splitlines() if line.startswith("| Set5 |"))
    # | Set5 | bicubic psnr / ssim | model psnr / ssim | gain | paper |
    return float(re.findall(r"\|\s*([\d.]+) / [\d.]+", row)[1])


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_is_described_and_loads(path):
    loaded = registry.load_model(path.stem, int(path.stem[-1]))
    assert loaded.model.hparams["features"] == 32 and loaded.model.hparams["blocks"] == 8
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert card_set5_psnr(card) == pytest.approx(loaded.info["metrics"]["set5_psnr"], abs=0.005)
    assert path.stat().st_size < 8 * 2**20  # small: a few MB


@needs_shared_data
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_set5_psnr_matches_its_card(path):
    scale = int(path.stem[-1])
    loaded = registry.load_model(path.stem, scale)
    card = card_set5_psnr(path.with_suffix(".md").read_text(encoding="utf-8"))
    result = benchmark([SHARED_DATA / "bench" / "Set5"], scale, loaded.model)
    assert result.model.psnr == pytest.approx(card, abs=0.05)
    assert result.bicubic.psnr == pytest.approx({2: 33.68, 3: 30.40, 4: 28.43}[scale], abs=0.01)


def test_there_is_a_reason_when_no_weights_are_shipped():
    if SHIPPED:
        pytest.skip("weights are shipped; the tests above check them")
    with pytest.raises(registry.ModelError, match="no built-in weights"):
        registry.load_model(None, 2)
