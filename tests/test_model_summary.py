"""Model figures in words: only gains measured on the same images, each labelled with those images."""

from __future__ import annotations

from mlrn_core import model_summary
from mlrn_core.model_summary import card_lead, quality

BUILTIN = {"metrics": {"set5_psnr": 37.1804, "set5_bicubic_psnr": 33.6818}}
# the pair: a fine-tune whose hold-out (smooth photos) scores 51.83 dB, its base 51.98 dB there
TUNED = {
    "metrics": {"val_psnr": 51.83, "val_base_psnr": 51.98, "val_bicubic_psnr": 49.0},
    "provenance": {"base": {"name": "mlrn-x2"}, "config": {"init": "mlrn-x2"}},
}


def test_builtin_and_fine_tuned_figures_say_on_which_images_and_compare_gains_not_psnrs():
    b, t = quality(BUILTIN), quality(TUNED)
    assert b.short == "+3.50 dB over bicubic on Set5"
    assert t.short == "-0.15 dB over mlrn-x2 on your hold-out photos"
    assert "51.83" not in t.short and "37.18" not in b.short  # raw PSNRs of different images stay apart
    assert "51.83 dB PSNR on your hold-out photos against 51.98 dB for mlrn-x2" in t.long


def test_from_scratch_compares_with_bicubic_and_a_lone_psnr_is_not_shown():
    scratch = {"metrics": {"val_psnr": 30.5, "val_bicubic_psnr": 29.0, "val_base_psnr": None}}
    assert quality(scratch).short == "+1.50 dB over bicubic on your hold-out photos"
    assert quality({"metrics": {"val_psnr": 31.25}}) is None  # nothing measured on the same images
    assert quality({"metrics": {"set5_psnr": 37.5}}) is None
    assert quality({}) is None


def test_card_lead_speaks_of_photos_and_says_plainly_when_not_better():
    better = card_lead(
        name="Weddings",
        scale=2,
        base="mlrn-x2",
        gain_db=0.75,
        reference="mlrn-x2",
        photos=40,
        degraded=True,
        held_out=4,
    )
    assert better.startswith("**Weddings** enlarges photos 2x")
    assert "camera JPEGs" in better and "slightly sharper than mlrn-x2" in better and "(+0.75 dB)" in better
    worse = card_lead(
        name="W", scale=2, base="mlrn-x2", gain_db=-0.3, reference="mlrn-x2", photos=40, degraded=False, held_out=4
    )
    assert "less sharp than mlrn-x2" in worse and "keep using mlrn-x2" in worse
    same = card_lead(
        name="W", scale=2, base="mlrn-x2", gain_db=0.02, reference="mlrn-x2", photos=9, degraded=False, held_out=1
    )
    assert "no visible difference" in same
    assert model_summary.describe_gain(1.2) == "visibly sharper"
    from_file = card_lead(
        name="W",
        scale=3,
        base="/home/me/models/portraits.pt",
        gain_db=None,
        reference="/home/me/models/portraits.pt",
        photos=9,
        degraded=False,
        held_out=1,
    )
    assert "a fine-tune of portraits on 9" in from_file and "not known whether it beats portraits" in from_file


def test_a_photo_model_is_shown_by_its_gain_on_jpeg_inputs():
    photo = {
        "metrics": {
            "set5_psnr": 36.06,
            "set5_bicubic_psnr": 33.68,
            "set14_jpeg85_psnr": 31.01,
            "set14_jpeg85_bicubic_psnr": 29.69,
        }
    }
    q = quality(photo)
    assert q is not None and q.images == "Set14 as JPEG q85"
    assert q.short == "+1.32 dB over bicubic on Set14 as JPEG q85"


def test_a_shipped_model_has_one_figure_in_the_list_and_on_its_card():
    """The Models list and the card's first paragraph give the same gain, measured on the same photos."""
    from mlrn_core import registry
    from tests.helpers import REPO

    models = REPO / "resources" / "models"
    for pt in sorted(models.glob("mlrn-x*.pt")):
        q = quality(registry.read_model_file(pt).info)
        lead = (models / f"{pt.stem}.md").read_text(encoding="utf-8").split("\n\n")[1]
        assert q is not None and f"{q.gain_db:+.2f} dB" in lead, (pt.name, q, lead)
        assert q.images.split()[0] in lead  # Set14 (as JPEG q85 for a photo model), named in both
    both = {
        "metrics": {"set14_psnr": 33.11, "set14_bicubic_psnr": 30.33, "set5_psnr": 37.63, "set5_bicubic_psnr": 33.68}
    }
    assert quality(both).short == "+2.78 dB over bicubic on Set14"
