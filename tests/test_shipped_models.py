"""The shipped weights keep the quality their model cards state: Set5 and Set14 (and, for the photo models,
Set14 with JPEG q85 inputs) measured again here and compared with the card's table within 0.05 dB."""

import re

import pytest

from mlrn_core import paths, registry
from mlrn_core.evaluate import benchmark, parse_degradation
from tests.helpers import SHARED_DATA, needs_shared_data


def _shipped():
    # the real built-in folder (read at collection time, before the per-test empty-folder fixture)
    return sorted(paths.builtin_models_dir().glob("mlrn-x*.pt"))


SHIPPED = _shipped()
IDS = [p.stem for p in SHIPPED]
BICUBIC = {"Set5": {2: 33.68, 3: 30.40, 4: 28.43}, "Set14": {2: 30.33, 3: 27.63, 4: 26.09}}


def scale_of(path) -> int:
    return int(re.match(r"mlrn-x(\d)", path.stem).group(1))


def card_psnr(card: str, row_label: str, column: int) -> float:
    """The PSNR in column ``column`` (0 = bicubic) of the card's table row starting with ``| row_label |``."""
    row = next((line for line in card.splitlines() if line.startswith(f"| {row_label} |")), None)
    assert row is not None, f"the card has no '{row_label}' row"
    return float(re.findall(r"\|\s*([\d.]+) / [\d.]+", row)[column])


def test_the_three_paper_models_ship():
    assert {p.stem for p in SHIPPED} >= {"mlrn-x2", "mlrn-x3", "mlrn-x4"}


@pytest.mark.builtin_models
@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_loads_and_has_a_card(path):
    loaded = registry.load_model(path.stem, scale_of(path))
    assert loaded.model.hparams["features"] == 32 and loaded.model.hparams["blocks"] == 8
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert card.startswith(f"# {path.stem}")
    assert path.stat().st_size < 8 * 2**20  # small: a few MB


@pytest.mark.builtin_models
@needs_shared_data
@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_psnr_matches_its_card_on_set5_and_set14(path):
    scale = scale_of(path)
    loaded = registry.load_model(path.stem, scale)
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    for name in ("Set5", "Set14"):
        result = benchmark([SHARED_DATA / "bench" / name], scale, loaded.model)
        assert result.bicubic.psnr == pytest.approx(BICUBIC[name][scale], abs=0.01)
        assert result.model.psnr == pytest.approx(card_psnr(card, name, 1), abs=0.05), name
        assert result.model.psnr > result.bicubic.psnr + 1.0, name
    if path.stem.endswith("-photo"):
        result = benchmark(
            [SHARED_DATA / "bench" / "Set14"], scale, loaded.model, degradation=parse_degradation("jpeg:85")
        )
        assert result.bicubic.psnr == pytest.approx(card_psnr(card, "JPEG q85", 0), abs=0.01)
        assert result.model.psnr == pytest.approx(card_psnr(card, "JPEG q85", -1), abs=0.05)


def test_without_weights_the_message_says_they_are_missing():
    # this test is not marked builtin_models: it sees an empty built-in folder (tests/conftest.py)
    assert not list(paths.builtin_models_dir().glob("*.pt"))
    with pytest.raises(registry.ModelError, match="built-in"):
        registry.load_model(None, 2)


# the measured quality below Auto's threshold for each scale (the next lower one of 88, 90, 93, 95)
BELOW_THRESHOLD = {2: 93, 4: 95}


@pytest.mark.builtin_models
@needs_shared_data
@pytest.mark.parametrize("scale", sorted(BELOW_THRESHOLD))
def test_auto_jpeg_threshold_is_where_the_paper_model_catches_up(scale):
    """Auto's near-lossless rule (mlrn_core.auto.PAPER_FROM_JPEG_QUALITY) rests on Set14: at the threshold
    the paper model scores at least as well as the photo model, just below it the photo model is better."""
    from mlrn_core.auto import PAPER_FROM_JPEG_QUALITY

    limit = PAPER_FROM_JPEG_QUALITY[scale]
    paper = registry.load_model(f"mlrn-x{scale}", scale).model
    photo = registry.load_model(f"mlrn-x{scale}-photo", scale).model
    set14 = [SHARED_DATA / "bench" / "Set14"]

    def gap(quality: int) -> float:  # photo minus paper, dB
        deg = parse_degradation(f"jpeg:{quality}")
        return benchmark(set14, scale, photo, degradation=deg).model.psnr - (
            benchmark(set14, scale, paper, degradation=deg).model.psnr
        )

    assert gap(limit) <= 0.0
    assert gap(BELOW_THRESHOLD[scale]) > 0.0


@pytest.mark.builtin_models
@needs_shared_data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_best_quality_gain_shown_to_users_is_what_set14_measures(scale):
    """The gain of quality "best" that the app, Batch Export and the docs show (tiling.BEST_QUALITY_GAIN_DB) is
    the Set14 gain of the shipped paper model measured again here (``mlrn bench ... --quality best``)."""
    from mlrn_core import tiling

    loaded = registry.load_model(f"mlrn-x{scale}", scale)
    normal = benchmark([SHARED_DATA / "bench" / "Set14"], scale, loaded.model, loaded.name)
    best = benchmark([SHARED_DATA / "bench" / "Set14"], scale, loaded.model, loaded.name, ensemble=True)
    assert best.quality == "best" and best.as_json()["model"]["quality"] == "best"
    gain = best.model.psnr - normal.model.psnr
    assert gain > 0
    assert gain == pytest.approx(tiling.BEST_QUALITY_GAIN_DB[scale], abs=0.02)
    shown = f"+{tiling.BEST_QUALITY_GAIN_DB[scale]:.2f} dB"
    assert shown in tiling.quality_label("best", scale)
    assert f"{shown} PSNR over Normal on Set14 at x{scale}" in tiling.quality_note(scale)
