"""scripts/train_weights.py without training or benchmarking: which round it ships (``should_install``, and
``install`` acting on it), the shipped models' cards (:mod:`release.cards`) and ``metrics_of``.

The result dicts below have the shape ``measure`` returns; the functions under test format and decide, they
do not measure, so the figures are written out (realistic x2 values)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mlrn_core import registry
from mlrn_core.auto import PAPER_FROM_JPEG_QUALITY
from mlrn_core.cards import markdown_table
from release.cards import credits, shipped_card

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("train_weights", REPO / "scripts" / "train_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tw = _load_script()


def score(psnr: float, ssim: float) -> dict:
    return {"psnr": psnr, "ssim": ssim}


def results(val: float, set14: float, q85: float | None = None, set5: float = 37.21) -> dict:
    """A ``measure`` result: the model's validation, Set5 and Set14 PSNR (and, for a photo model, the Set14
    JPEG rows with q85 as given), bicubic as measured for x2."""
    out = {
        "val": {"bicubic": score(31.02, 0.8881), "model": score(val, 0.9264)},
        "Set5": {"bicubic": score(33.68, 0.9305), "model": score(set5, 0.9573)},
        "Set14": {"bicubic": score(30.33, 0.8700), "model": score(set14, 0.9106)},
    }
    if q85 is not None:
        out["Set14 jpeg:95"] = {"bicubic": score(30.20, 0.8630), "model": score(q85 + 0.88, 0.8872)}
        out["Set14 jpeg:85"] = {"bicubic": score(29.69, 0.8400), "model": score(q85, 0.8637)}
        out["Set14 jpeg:75"] = {"bicubic": score(29.21, 0.8196), "model": score(q85 - 0.81, 0.8403)}
    return out


# --- the install decision ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_set14", "installed"),
    [(32.76, False), (32.78, True), (32.85, True)],  # old Set14 32.79: 0.03 worse, 0.01 worse, better
)
def test_better_validation_installs_only_within_the_set14_tolerance(new_set14, installed):
    old = results(val=33.30, set14=32.79)
    ok, reason = tw.should_install(results(val=33.34, set14=new_set14), old, photo=False)
    assert ok is installed
    if not installed:
        assert "Set14 more than 0.02 dB worse" in reason


@pytest.mark.parametrize("new_val", [33.29, 33.30])  # worse, and equal (not better)
def test_a_round_not_better_on_the_validation_split_is_refused_even_if_better_on_set14(new_val):
    ok, reason = tw.should_install(results(val=new_val, set14=33.10), results(val=33.30, set14=32.79), photo=False)
    assert not ok
    assert "not better on the validation split" in reason


def test_without_a_model_to_beat_the_round_is_installed():
    assert tw.should_install(results(val=30.0, set14=29.0), None, photo=False) == (True, "no model to beat")
    assert tw.should_install(results(val=30.0, set14=29.0, q85=28.0), None, photo=True)[0]


def test_photo_models_are_held_to_set14_as_jpeg_q85_not_lossless_set14():
    old = results(val=33.34, set14=32.79, q85=31.01)
    # lossless Set14 much worse, JPEG q85 0.01 worse: installed
    ok, reason = tw.should_install(results(val=33.39, set14=32.09, q85=31.00), old, photo=True)
    assert ok
    assert "Set14 jpeg:85" in reason
    # lossless Set14 better, JPEG q85 0.03 worse: refused
    ok, reason = tw.should_install(results(val=33.39, set14=32.90, q85=30.98), old, photo=True)
    assert not ok
    assert "Set14 jpeg:85 more than 0.02 dB worse" in reason


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """train_weights with its repository (resources/models) and shared data in tmp_path."""
    monkeypatch.setattr(tw, "REPO", tmp_path / "repo")
    monkeypatch.setattr(tw, "SHARED", tmp_path / "shared")
    (tmp_path / "repo" / "resources" / "models").mkdir(parents=True)
    return tmp_path / "repo" / "resources" / "models"


def _records(repo: Path) -> Path:
    """The training records folder beside ``repo`` (resources/models) in the test repository."""
    return repo.parent.parent / "training" / "records"


def _run_with_model(folder: Path) -> Path:
    from tests.helpers import tiny_model

    registry.save_model(folder / "model.pt", tiny_model(2))
    return folder


def test_install_ships_a_round_only_when_should_install_says_so(repo, tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: measured.pop(0))

    def install(run, command):
        return tw.install(run, 2, False, command, "cpu", 12.0, 150, "mlrn-x2.pt", tmp_path, hardware="test CPU")

    measured[:] = [results(val=33.30, set14=32.79)]  # nothing shipped yet: only the new model is measured
    report = install(_run_with_model(tmp_path / "run1"), "python scripts/train_weights.py --minutes 12")
    assert report["installed"] and report["reason"] == "no model to beat"
    shipped = repo / "mlrn-x2.pt"
    assert registry.read_model_file(shipped).info["metrics"]["val_psnr"] == 33.30
    card = (repo / "mlrn-x2.md").read_text(encoding="utf-8")
    assert "- Command: `python scripts/train_weights.py --minutes 12`" in card
    assert len(json.loads((_records(repo) / "mlrn-x2.history.json").read_text())) == 1

    # better on the validation split but 0.03 dB worse on Set14: nothing changes
    measured[:] = [results(val=33.40, set14=32.76), results(val=33.30, set14=32.79)]
    report = install(_run_with_model(tmp_path / "run2"), "second round")
    assert not report["installed"] and "Set14 more than 0.02 dB worse" in report["reason"]
    assert (repo / "mlrn-x2.md").read_text(encoding="utf-8") == card
    assert registry.read_model_file(shipped).info["metrics"]["val_psnr"] == 33.30

    # better, and 0.01 dB worse on Set14: shipped, the card lists both rounds
    measured[:] = [results(val=33.40, set14=32.78), results(val=33.30, set14=32.79)]
    assert install(_run_with_model(tmp_path / "run3"), "third round")["installed"]
    assert registry.read_model_file(shipped).info["metrics"]["val_psnr"] == 33.40
    card = (repo / "mlrn-x2.md").read_text(encoding="utf-8")
    assert "### Round 2:" in card and "- Command: `third round`" in card
    assert "second round" not in card


# --- the shipped models' cards ----------------------------------------------------------------------------

HPARAMS = {"scale": 2, "features": 32, "blocks": 8, "kernels": [[3, 3], [3, 5], [5, 5]], "gff": True, "rsc": True}
HPARAMS["image_skip"] = True
CREDITS = ["pop-wallpapers__jumpington.jpg (CC-BY-4.0): Clayton Diggs (Schykle), 2020"]
PAPER_HISTORY = [
    {
        "date": "2026-11-20",
        "command": "python scripts/train_weights.py --minutes 40 --scales 2",
        "device": "CPU, x86_64, torch 2.13",
        "steps": 1200,
        "minutes": 40.0,
        "init": "scratch",
        "set5_psnr": 36.9,
        "set14_psnr": 32.5,
    },
    {
        "date": "2026-11-27",
        "command": "python scripts/train_weights.py --minutes 35 --scales 2 --device cpu",
        "device": "CPU, x86_64, torch 2.13",
        "steps": 909,
        "minutes": 35.2,
        "init": "mlrn-x2.pt",
        "val_psnr": 33.3449,
        "set5_psnr": 37.21,
        "set14_psnr": 32.79,
    },
]
PHOTO_HISTORY = [
    dict(
        PAPER_HISTORY[1],
        command="python scripts/train_weights.py --minutes 35 --scales 2 --photo --clean-share 0.3",
        val_psnr=33.392,
    )
]


def test_paper_model_card():
    card = shipped_card(
        2,
        False,
        results(val=33.34, set14=32.79),
        PAPER_HISTORY,
        HPARAMS,
        photo_model_shipped=True,
        credit_lines=CREDITS,
    )
    assert card.startswith("# mlrn-x2\n")
    assert "| Set14 | 30.33 / 0.8700 | 32.79 / 0.9106 | +2.46 dB | 33.49 / 0.9140 | 33.64 |" in card
    assert "| Set5 | 33.68 / 0.9305 | 37.21 / 0.9573 | +3.53 dB | 37.90 / 0.9601 |  |" in card
    assert "Where it stands: Set14 32.79 dB against the project's floor of 33.20" in card
    assert "Below the floor" in card
    assert f"For camera JPEGs below quality {PAPER_FROM_JPEG_QUALITY[2]}, mlrn-x2-photo is better" in card
    assert "Set5 chose the checkpoints of round 1, before the validation split existed" in card
    # written for photographers first (issue 34): none of the developer wording of the old cards
    for old in ("paper (Table 2)", "when it installed (or, with `--recard`", "../shared/data/bench/SetN"):
        assert old not in card
    assert "## How sharp it is" in card and "| test photos | bicubic (plain enlargement) |" in card
    assert "- pop-wallpapers__jumpington.jpg (CC-BY-4.0): Clayton Diggs (Schykle), 2020" in card
    assert "### Round 1: 2026-11-20" in card and "### Round 2: 2026-11-27" in card
    assert "- Command: `python scripts/train_weights.py --minutes 35 --scales 2 --device cpu`" in card
    assert "- Validation split after this round: 33.345 dB" in card
    assert "2,109 training steps in 1.25 hours over 2 rounds" in card
    assert "JPEG q85" not in card and "--clean-share" not in card
    reached = shipped_card(
        2, False, results(val=33.5, set14=33.21), PAPER_HISTORY[1:], HPARAMS, photo_model_shipped=False, credit_lines=()
    )
    assert "The floor is reached." in reached
    assert "standard Set5 and Set14 sets, which no model here trained on. The last" in reached
    assert "(there is no mlrn-x2-photo yet)" in reached


def test_photo_model_card():
    paper = results(val=32.9, set14=32.79, q85=30.58)
    card = shipped_card(
        2,
        True,
        results(val=33.39, set14=32.09, q85=31.00),
        PHOTO_HISTORY,
        HPARAMS,
        paper,
        photo_model_shipped=True,
        credit_lines=CREDITS,
    )
    assert card.startswith("# mlrn-x2-photo\n")
    assert "as JPEG quality 85 it is +1.31 dB sharper than plain (bicubic) enlargement and +0.42 dB" in card
    assert "| Set14 | 30.33 / 0.8700 | 32.09 / 0.9106 | +1.76 dB | 33.49 / 0.9140 | 33.64 |" in card
    assert "| Set14 input | bicubic | mlrn-x2 (paper model) | mlrn-x2-photo |" in card
    assert "| JPEG q85 | 29.69 / 0.8400 | 30.58 / 0.8637 | 31.00 / 0.8637 |" in card
    assert "| lossless | 30.33 / 0.8700 | 32.79 / 0.9106 | 32.09 / 0.9106 |" in card
    assert "the project's floor" not in card
    assert "a round whose command says `--clean-share S` left that fraction of its samples clean" in card
    assert "- pop-wallpapers__jumpington.jpg (CC-BY-4.0): Clayton Diggs (Schykle), 2020" in card
    assert "- Command: `python scripts/train_weights.py --minutes 35 --scales 2 --photo --clean-share 0.3`" in card
    assert "counting only this model's own rounds" in card
    # without the paper model's figures the JPEG table says so instead of inventing them
    alone = shipped_card(
        2, True, results(33.39, 32.09, 31.00), PHOTO_HISTORY, HPARAMS, photo_model_shipped=True, credit_lines=()
    )
    assert "| JPEG q85 | 29.69 / 0.8400 | n/a | 31.00 / 0.8637 |" in alone
    assert "against the built-in model" not in alone


def test_credits_are_the_cc_by_rows_of_sources_md(tmp_path):
    sources = tmp_path / "SOURCES.md"
    sources.write_text(
        "| file | licence | author |\n|---|---|---|\n"
        "| a.jpg | CC0-1.0 | nobody |\n"
        "| b.jpg | CC-BY-4.0 | Clayton Diggs |\n"
        "| c.jpg | CC-BY-SA-3.0 | Gavin Ash |\n",
        encoding="utf-8",
    )
    assert credits(sources) == ["b.jpg (CC-BY-4.0): Clayton Diggs", "c.jpg (CC-BY-SA-3.0): Gavin Ash"]
    assert credits(tmp_path / "missing.md") == []


def test_the_script_s_card_uses_the_repository_s_photo_models_and_openphotos_credits(repo):
    sources = tw.SHARED / "train" / "OpenPhotos" / "SOURCES.md"
    sources.parent.mkdir(parents=True)
    sources.write_text("| b.jpg | CC-BY-4.0 | Clayton Diggs |\n", encoding="utf-8")
    card = tw.card_text(2, False, results(33.34, 32.79), PAPER_HISTORY, HPARAMS)
    assert "- b.jpg (CC-BY-4.0): Clayton Diggs" in card
    assert "(there is no mlrn-x2-photo yet)" in card
    (repo / "mlrn-x2-photo.pt").write_bytes(b"")
    assert f"For camera JPEGs below quality {PAPER_FROM_JPEG_QUALITY[2]}, mlrn-x2-photo is better" in tw.card_text(
        2, False, results(33.34, 32.79), PAPER_HISTORY, HPARAMS
    )


def test_markdown_table_keeps_cells_as_given():
    assert markdown_table(("set", "IMDN"), [("Set5", ""), ("Set14", "33.64")]) == [
        "| set | IMDN |",
        "|---|---|",
        "| Set5 |  |",
        "| Set14 | 33.64 |",
    ]


# --- metrics_of ---------------------------------------------------------------------------------------------


def test_metrics_of_a_paper_model():
    m = tw.metrics_of(results(val=33.34, set14=32.79), photo=False)
    assert m == {
        "val_psnr": 33.34,
        "val_ssim": 0.9264,
        "val_bicubic_psnr": 31.02,
        "set5_psnr": 37.21,
        "set5_ssim": 0.9573,
        "set5_bicubic_psnr": 33.68,
        "set5_bicubic_ssim": 0.9305,
        "set14_psnr": 32.79,
        "set14_ssim": 0.9106,
        "set14_bicubic_psnr": 30.33,
        "set14_bicubic_ssim": 0.8700,
    }


def test_metrics_of_a_photo_model_adds_the_jpeg_rows():
    m = tw.metrics_of(results(val=33.39, set14=32.09, q85=31.00), photo=True)
    assert m["set14_jpeg85_psnr"] == 31.00
    assert m["set14_jpeg85_bicubic_psnr"] == 29.69
    assert m["set14_jpeg75_ssim"] == 0.8403
    assert m["set14_jpeg95_bicubic_ssim"] == 0.8630
    assert m["set14_psnr"] == 32.09
    assert len(m) == 3 + 4 * 5  # validation, then Set5, Set14 and three JPEG qualities


def test_a_run_installed_again_from_a_later_checkpoint_stays_one_round(repo, tmp_path, monkeypatch):
    """--install-run on a run that was already installed from an earlier checkpoint (a round that ran on) must
    not count its first steps twice: the card keeps one round with the later figures."""
    measured = []
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: measured.pop(0))
    run = _run_with_model(tmp_path / "mlrn-x2-20261130-041417")
    measured[:] = [results(val=33.30, set14=32.79)]
    assert tw.install(run, 2, False, "round", "cpu", 16.4, 1400, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    measured[:] = [results(val=33.40, set14=32.80), results(val=33.30, set14=32.79)]
    assert tw.install(run, 2, False, "round", "cpu", 78.0, 4900, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    history = json.loads((_records(repo) / "mlrn-x2.history.json").read_text())
    assert [(h["steps"], h["val_psnr"]) for h in history] == [(4900, 33.40)]
    # another run is another round
    measured[:] = [results(val=33.50, set14=32.80), results(val=33.40, set14=32.80)]
    run2 = _run_with_model(tmp_path / "run2")
    assert tw.install(run2, 2, False, "next", "cpu", 9.0, 300, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    assert [h["steps"] for h in json.loads((_records(repo) / "mlrn-x2.history.json").read_text())] == [4900, 300]
    # a second campaign whose folder has the same name as the first (training/mlrn-x2-leg2/mlrn-x2-campaign) is
    # another round: it must not replace the first campaign's entry (the bug of 2026-12-07)
    first = _run_with_model(tw.REPO / "training" / "mlrn-x2-campaign")
    leg2 = _run_with_model(tw.REPO / "training" / "mlrn-x2-leg2" / "mlrn-x2-campaign")
    measured[:] = [results(val=33.60, set14=32.81), results(val=33.50, set14=32.80)]
    assert tw.install(first, 2, False, "c1", "cpu", 500.0, 13200, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    measured[:] = [results(val=33.70, set14=32.82), results(val=33.60, set14=32.81)]
    assert tw.install(leg2, 2, False, "c2", "cpu", 120.0, 18000, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    history = json.loads((_records(repo) / "mlrn-x2.history.json").read_text())
    assert [h["steps"] for h in history] == [4900, 300, 13200, 18000]
    assert (
        history[-2]["run"] == "training/mlrn-x2-campaign"
        and history[-1]["run"] == "training/mlrn-x2-leg2/mlrn-x2-campaign"
    )
    # a final-phase arm started from the campaign is installed, then the campaign itself goes on and beats it:
    # the shipped weights descend from the campaign, not from the arm, so the arm's round leaves the history
    arm = _run_with_model(tmp_path / "arm")
    measured[:] = [results(val=33.71, set14=32.83), results(val=33.70, set14=32.82)]
    assert tw.install(arm, 2, False, "arm", "cpu", 20.0, 1000, "model.pt", tmp_path, hardware="CPU")["installed"]
    measured[:] = [results(val=33.80, set14=32.90), results(val=33.71, set14=32.83)]
    assert tw.install(leg2, 2, False, "c2", "cpu", 240.0, 35000, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    history = json.loads((_records(repo) / "mlrn-x2.history.json").read_text())
    assert [h["steps"] for h in history] == [4900, 300, 13200, 35000]


def test_install_run_counts_the_steps_of_the_best_checkpoint_not_the_latest(tmp_path):
    from tests.helpers import tiny_model

    # model.pt holds the best weights, exported at step 200 after 130 s; ckpt.pt is at step 300
    registry.save_model(tmp_path / "model.pt", tiny_model(2), {"provenance": {"steps": 200, "train_seconds": 130.0}})
    assert tw.best_checkpoint(tmp_path, {"step": 300, "elapsed_s": 200.0}) == (200, 130.0 / 60)
    # a model.pt without provenance: the checkpoint's own figures
    registry.save_model(tmp_path / "old" / "model.pt", tiny_model(2))
    assert tw.best_checkpoint(tmp_path / "old", {"step": 300, "elapsed_s": 240.0}) == (300, 4.0)


# --- the campaign: one long run across sessions ------------------------------------------------------------


def _campaign_args(**kw):
    import argparse

    values = {"photo": False, "minutes": 150.0, "batch": None, "patch": None, "lr": None, "ema": 0.999}
    values.update(clean_share=0.0, val_every=None, loss="l1", seed=None)
    values.update(campaign_steps=None, tail_steps=None)
    values.update(kw)
    return argparse.Namespace(**values)


def test_a_campaign_starts_from_the_shipped_model_and_records_its_set14_as_the_reference(repo, tmp_path):
    import torch

    from tests.helpers import tiny_model

    registry.save_model(repo / "mlrn-x2.pt", tiny_model(2), {"metrics": {"set14_psnr": 32.7957, "val_psnr": 36.1568}})
    folder = tmp_path / "training" / "mlrn-x2-campaign"
    valdir = tmp_path / "val"
    cfg, resume, command, ref = tw.campaign_setup(_campaign_args(), 2, torch.device("cpu"), valdir, [], folder)
    assert not resume and ref == 32.7957
    assert (cfg.schedule, cfg.max_steps, cfg.tail_steps, cfg.lr, cfg.ema) == (
        "constant-cosine",
        40_000,
        10_000,
        2e-4,
        0.999,
    )
    assert cfg.init == str(repo / "mlrn-x2.pt") and cfg.out == str(folder) and cfg.max_minutes == 150.0
    assert cfg.val == (str(valdir),) and cfg.data == tuple(str(tw.SHARED / "train" / s) for s in tw.TRAIN_SETS)
    assert json.loads((folder / "baseline.json").read_text())["set14_psnr"] == 32.7957
    assert "--campaign" in command and "cosine over the last 10000 of 40000 steps" in command
    assert (folder / "command.txt").read_text().strip() == command


def test_a_campaign_resumes_with_today_s_paths_and_minutes_and_keeps_its_reference(repo, tmp_path):
    import dataclasses

    import torch

    from tests.helpers import tiny_model

    registry.save_model(repo / "mlrn-x2.pt", tiny_model(2), {"metrics": {"set14_psnr": 32.7957}})
    folder = tmp_path / "training" / "mlrn-x2-campaign"
    cpu = torch.device("cpu")
    cfg, *_ = tw.campaign_setup(_campaign_args(), 2, cpu, tmp_path / "val", [], folder)
    # the first session's checkpoint, written on another machine at another path, 150 minutes in
    old = dataclasses.replace(cfg, out="/elsewhere/training/mlrn-x2-campaign", data=("/elsewhere/T91",))
    torch.save({"config": old.to_json(), "step": 3500, "elapsed_s": 9000.0}, folder / "ckpt.pt")
    # the shipped model improves after the first install: the reference stays what shipped before the campaign
    registry.save_model(repo / "mlrn-x2.pt", tiny_model(2), {"metrics": {"set14_psnr": 32.90}})
    cfg2, resume, command, ref = tw.campaign_setup(_campaign_args(minutes=140), 2, cpu, tmp_path / "v2", [], folder)
    assert resume and ref == 32.7957
    assert cfg2.out == str(folder) and cfg2.data == cfg.data and cfg2.val == (str(tmp_path / "v2"),)
    assert cfg2.max_minutes == pytest.approx(150 + 140)  # max_minutes counts all sessions' training time
    assert (cfg2.seed, cfg2.max_steps, cfg2.lr, cfg2.init) == (cfg.seed, 40_000, cfg.lr, cfg.init)
    assert command == (folder / "command.txt").read_text().strip()
    # while the rate is constant the horizon may grow; once in the tail it may not
    longer, *_ = tw.campaign_setup(_campaign_args(campaign_steps=60_000), 2, cpu, tmp_path / "v2", [], folder)
    assert (longer.max_steps, longer.tail_steps) == (60_000, 10_000)
    torch.save({"config": old.to_json(), "step": 31_000, "elapsed_s": 9e4}, folder / "ckpt.pt")
    with pytest.raises(SystemExit, match="past the constant phase"):
        tw.campaign_setup(_campaign_args(campaign_steps=60_000), 2, cpu, tmp_path / "v2", [], folder)
    # a campaign at the end of its schedule is not "resumed" for nothing: the message says how to go on
    torch.save({"config": longer.to_json(), "step": longer.max_steps, "elapsed_s": 6000.0}, folder / "ckpt.pt")
    with pytest.raises(SystemExit, match=r"finished its 60000 steps .*--campaigns training/mlrn-x2-leg2"):
        tw.campaign_setup(_campaign_args(), 2, cpu, tmp_path / "v2", [], folder)


def test_an_x4_campaign_starts_from_the_x2_body_under_the_shipped_x4_upsampler(repo, tmp_path):
    import shutil

    import torch

    from tests.helpers import tiny_model

    registry.save_model(repo / "mlrn-x2.pt", tiny_model(2, seed=1), {"metrics": {"set14_psnr": 33.0}})
    registry.save_model(repo / "mlrn-x4.pt", tiny_model(4, seed=2), {"metrics": {"set14_psnr": 27.7604}})
    x2, x4 = registry.read_model_file(repo / "mlrn-x2.pt"), registry.read_model_file(repo / "mlrn-x4.pt")
    folder = tmp_path / "training" / "mlrn-x4-campaign"
    cpu = torch.device("cpu")
    cfg, resume, command, ref = tw.campaign_setup(_campaign_args(), 4, cpu, tmp_path / "val", [], folder)
    init = folder / "mlrn-x2-body+mlrn-x4-upsampler.pt"
    assert not resume and cfg.init == str(init) and cfg.lr == 2e-4
    assert ref == 27.7604  # Set14 is held to the x4 that ships, not to x2's
    assert "init mlrn-x2-body+mlrn-x4-upsampler.pt" in command
    start = registry.read_model_file(init)
    assert start.scale == 4 and set(start.state_dict) == set(x4.state_dict)
    upsampler = [k for k in x4.state_dict if k.startswith("upsample.")]
    assert upsampler and len(upsampler) < len(x4.state_dict)
    for k, v in start.state_dict.items():
        source = x4 if k in upsampler else x2
        assert torch.equal(v, source.state_dict[k].float()), k
    assert not torch.equal(x2.state_dict["head.weight"], x4.state_dict["head.weight"])  # the two do differ
    # resumed from another work tree: the composed start is the one kept beside the checkpoint
    torch.save({"config": cfg.to_json(), "step": 500, "elapsed_s": 600.0}, folder / "ckpt.pt")
    moved = tmp_path / "tree2" / "training" / "mlrn-x4-campaign"
    shutil.copytree(folder, moved)
    shutil.rmtree(folder)
    cfg2, resume, *_ = tw.campaign_setup(_campaign_args(), 4, cpu, tmp_path / "val", [], moved)
    assert resume and cfg2.init == str(moved / init.name)


def test_a_body_and_an_upsampler_of_different_networks_are_refused(tmp_path):
    from tests.helpers import tiny_model

    registry.save_model(tmp_path / "a.pt", tiny_model(2, features=8))
    registry.save_model(tmp_path / "b.pt", tiny_model(4, features=12))
    with pytest.raises(SystemExit, match="different networks"):
        tw.body_with_upsampler(tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_a_campaign_install_holds_set14_to_the_reference_not_the_previous_install(repo, tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: measured.pop(0))
    run = _run_with_model(tmp_path / "mlrn-x2-campaign")
    (run / "baseline.json").write_text(json.dumps({"set14_psnr": 32.80, "date": "2026-12-03"}))
    started = {"step": 0, "event": "started"}
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in (started, {"step": 1}, started)) + "\n")

    def install(minutes, steps):
        return tw.install(
            run,
            2,
            False,
            "campaign",
            "cpu",
            minutes,
            steps,
            "mlrn-x2.pt",
            tmp_path,
            hardware="CPU",
            set14_reference=32.80,
        )

    # session 1 gains on Set14; session 2 is 0.03 below session 1 but above the reference: installed
    measured[:] = [results(val=36.30, set14=32.95), results(val=36.16, set14=32.80)]
    assert install(150.0, 3500)["installed"]
    measured[:] = [results(val=36.40, set14=32.92), results(val=36.30, set14=32.95)]
    assert install(290.0, 7000)["installed"]
    # 0.03 below the reference: refused, whatever the validation split says
    measured[:] = [results(val=36.50, set14=32.77), results(val=36.40, set14=32.92)]
    report = install(430.0, 10_500)
    assert not report["installed"] and "Set14 more than 0.02 dB worse" in report["reason"]
    history = json.loads((_records(repo) / "mlrn-x2.history.json").read_text())
    assert [h["steps"] for h in history] == [7000]  # one round that grows
    assert history[0]["run"].endswith("mlrn-x2-campaign")
    assert history[0]["campaign"] == {"since": "2026-12-03", "sessions": 2}
    card = (repo / "mlrn-x2.md").read_text(encoding="utf-8")
    assert "### Round 1: " in card and "(one training campaign since 2026-12-03, 2 sessions so far" in card
    assert "Compute in total: 7,000 training steps in 4.83 hours over 1 round" in card
    assert "it is trained further in long campaigns (`python scripts/train_weights.py --campaign" in card


def test_a_round_started_from_the_x2_body_says_so_on_the_card():
    composed = dict(PAPER_HISTORY[1], init="mlrn-x2-body+mlrn-x4-upsampler.pt")
    card = shipped_card(
        4,
        False,
        results(val=31.5, set14=27.81),
        [PAPER_HISTORY[1], composed],
        HPARAMS,
        photo_model_shipped=True,
        credit_lines=(),
    )
    assert "- Start: the body of mlrn-x2 (every layer but the upsampler; its training is on the mlrn-x2 card)" in card
    assert "under the upsampler of the previous mlrn-x4 (`mlrn-x2-body+mlrn-x4-upsampler.pt`" in card
    assert "not counting the training of the mlrn-x2 body a round started from" in card
    plain = shipped_card(
        4, False, results(val=31.5, set14=27.81), PAPER_HISTORY, HPARAMS, photo_model_shipped=True, credit_lines=()
    )
    assert "- Start: mlrn-x2.pt" in plain and "mlrn-x2 body" not in plain


def test_install_run_installs_a_run_as_the_scale_it_was_trained_at(repo, tmp_path, monkeypatch):
    import sys

    import torch

    from mlrn_core.trainer import TrainConfig

    run = tmp_path / "training" / "mlrn-x4-campaign"
    run.mkdir(parents=True)
    cfg = TrainConfig(data=("d",), out=str(run), scale=4)
    torch.save({"config": cfg.to_json(), "step": 300, "elapsed_s": 600.0}, run / "ckpt.pt")
    installed = []
    monkeypatch.setattr(tw, "val_split", lambda runs: (tmp_path / "val", []))
    monkeypatch.setattr(tw, "best_checkpoint", lambda run, ck: (300, 10.0))
    monkeypatch.setattr(tw, "install", lambda run, scale, *a, **k: installed.append(scale))
    monkeypatch.setattr(sys, "argv", ["train_weights.py", "--install-run", str(run), "--runs", str(tmp_path / "r")])
    tw.main()  # no --scales: not the default 2, 3 and 4, only the run's own 4
    assert installed == [4]


def test_the_card_shows_the_validation_curve_against_total_training_hours():
    from release.cards import curve_table, validation_curve

    history = [dict(PAPER_HISTORY[0], minutes=60.0, steps=1000), dict(PAPER_HISTORY[1], minutes=30.0, steps=400)]
    events = [{"event": "step", "step": s, "elapsed_s": s * 4.5} for s in range(0, 401, 10)] + [
        {"event": "validation", "step": s, "psnr": 36.0 + s / 1000, "bicubic_psnr": 33.86, "base_psnr": 35.9}
        for s in range(20, 401, 20)
    ]
    rows = validation_curve(history, events)
    # the first row is where the last round started: the earlier round's 1 h and 1,000 steps, its start's score
    assert rows[0] == (1.0, 1000, 35.9, pytest.approx(35.9 - 33.86))
    # the last round's logged 400 * 4.5 s = 30 min are its 30 minutes: 1.5 h, 1,400 steps at the end
    assert rows[-1][:3] == (pytest.approx(1.5), 1400, pytest.approx(36.4)) and len(rows) == 21
    table = curve_table(rows, at_most=12)
    assert len(table) - 2 <= 12 and table[-1] == "| 1.50 | 1,400 | 36.400 | +2.54 |"
    assert table[2] == "| 1.00 | 1,000 | 35.900 | +2.04 |"
    card = shipped_card(
        2,
        False,
        results(val=36.4, set14=33.0),
        history,
        HPARAMS,
        photo_model_shipped=True,
        credit_lines=(),
        curve=rows,
    )
    assert "## Validation against training hours" in card and "| 1.50 | 1,400 | 36.400 | +2.54 |" in card
    assert "python scripts/training_curve.py mlrn-x2" in card
    assert f"The first row is the start of the last round, before its first step: {history[-1]['init']}." in card
    composed = [history[0], dict(history[1], init="mlrn-x2-body+mlrn-x4-upsampler.pt")]
    card4 = shipped_card(
        4,
        False,
        results(val=31.6, set14=27.9),
        composed,
        HPARAMS,
        photo_model_shipped=True,
        credit_lines=(),
        curve=rows,
    )
    # a composed start scores far below bicubic before its first step; the card says what that start was
    assert "before its first step: the body of mlrn-x2 (every layer but the upsampler" in card4
    bare = shipped_card(
        2, False, results(val=36.4, set14=33.0), history, HPARAMS, photo_model_shipped=True, credit_lines=()
    )
    assert "## Validation against training hours" not in bare


def test_a_committed_run_record_names_no_machine_folders(tmp_path, monkeypatch):
    """Issue 35, item 2: training/*/config.json held the absolute paths of the machine that trained."""
    repo = tmp_path / "work" / "main"
    monkeypatch.setattr(tw, "REPO", repo)
    run = repo / "training" / "mlrn-x2-campaign"
    run.mkdir(parents=True)
    shared = str(tmp_path / "work" / "shared" / "data" / "train" / "T91")
    (run / "config.json").write_text(
        json.dumps(
            {
                "data": [shared, "/elsewhere/photos"],
                "out": str(run),
                "val": [str(repo / "runs" / "valsplit" / "openphotos-val10")],
                "init": None,
                "scale": 2,
            }
        )
    )
    tw.portable_config(run)
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == ["../shared/data/train/T91", "/elsewhere/photos"]
    assert config["out"] == "training/mlrn-x2-campaign" and config["val"] == ["runs/valsplit/openphotos-val10"]
    assert config["init"] is None and config["scale"] == 2


def test_recard_rewrites_the_card_but_the_weights_file_only_when_its_figures_change(repo, tmp_path, monkeypatch):
    """Every new version of a shipped weights file costs every clone: a recard with the same figures keeps it."""
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: results(val=33.30, set14=32.79))
    run = _run_with_model(tmp_path / "run1")
    assert tw.install(run, 2, False, "round", "cpu", 12.0, 150, "mlrn-x2.pt", tmp_path, hardware="CPU")["installed"]
    weights, card = repo / "mlrn-x2.pt", repo / "mlrn-x2.md"
    before = weights.read_bytes()
    card.write_text("an old card\n")
    tw.recard(2, False, "cpu", tmp_path)
    assert weights.read_bytes() == before and card.read_text().startswith("# mlrn-x2")
    # a figure stored with 3 decimals by an older install, re-measured with 4: the same figure
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: results(val=33.3004, set14=32.79))
    tw.recard(2, False, "cpu", tmp_path)
    assert weights.read_bytes() == before
    monkeypatch.setattr(tw, "measure", lambda model, scale, device, valdir, photo: results(val=33.31, set14=32.80))
    tw.recard(2, False, "cpu", tmp_path)
    assert weights.read_bytes() != before
    assert registry.read_model_file(weights).info["metrics"]["set14_psnr"] == 32.80
