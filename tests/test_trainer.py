import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mlrn_core import registry
from mlrn_core import trainer as tr
from mlrn_core.data import Degradation, PatchSampler, load_pairs
from mlrn_core.trainer import TrainConfig, Trainer, lr_at
from tests.helpers import REPO, free_port, write_png_folder

TINY = {"features": 8, "blocks": 1, "batch": 2, "patch": 16, "lr": 1e-3, "warmup_steps": 2, "log_every": 1}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))


@pytest.fixture
def folders(tmp_path):
    write_png_folder(tmp_path / "train", 4)
    write_png_folder(tmp_path / "val", 1, 48, 48)
    return tmp_path / "train", tmp_path / "val"


def cfg_for(folders, out, **kw):
    train, val = folders
    values = dict(TINY, data=(str(train),), val=(str(val),), out=str(out), max_steps=4, val_every=2)
    values.update(kw)
    return TrainConfig(**values)


def final_state(out):
    return torch.load(out / "ckpt.pt", weights_only=True)["model"]["state_dict"]


def test_lr_schedules_are_pure_functions_of_the_step():
    c = TrainConfig(data=("x",), out="o", lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.0)
    assert lr_at(0, c) == pytest.approx(1e-4)
    assert lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(60, c) == pytest.approx(0.5e-3)
    assert lr_at(110, c) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(60, c) == lr_at(60, c)
    paper = TrainConfig(data=("x",), out="o", lr=1e-4, schedule="step", halve_every=200_000, max_steps=10)
    assert lr_at(199_999, paper) == 1e-4 and lr_at(200_000, paper) == 5e-5 and lr_at(400_000, paper) == 2.5e-5


def test_constant_cosine_holds_the_rate_then_decays_over_the_tail_only():
    c = TrainConfig(
        data=("x",), out="o", lr=2e-4, warmup_steps=10, max_steps=1000, tail_steps=200, schedule="constant-cosine"
    )
    assert lr_at(0, c) == pytest.approx(2e-5)  # warm-up as for cosine
    assert lr_at(10, c) == lr_at(500, c) == lr_at(799, c) == 2e-4  # constant until the tail
    assert lr_at(900, c) == pytest.approx(2e-4 * (0.02 + 0.98 * 0.5))  # half-way down the tail
    assert lr_at(1000, c) == pytest.approx(2e-4 * 0.02)  # the floor at the end
    assert lr_at(899, c) > lr_at(900, c) > lr_at(901, c)
    # a longer campaign (the same warm-up and rate) takes the same steps as long as both are constant
    longer = TrainConfig(**{**c.to_json(), "max_steps": 3000, "data": ("x",)})
    assert all(lr_at(s, c) == lr_at(s, longer) for s in range(800))
    with pytest.raises(ValueError, match="constant-cosine schedule needs max_steps and 0 < tail_steps"):
        TrainConfig(data=("x",), out="o", schedule="constant-cosine", max_steps=100, tail_steps=0)
    with pytest.raises(ValueError, match="constant-cosine schedule needs"):
        TrainConfig(data=("x",), out="o", schedule="constant-cosine", max_steps=100, warmup_steps=10, tail_steps=95)


def test_a_campaign_resumed_in_another_folder_is_the_same_as_never_stopping(folders, tmp_path):
    """What train_weights --campaign does between sessions: the checkpoint (with the EMA, the optimiser, the step
    and the RNG) travels to a fresh clone at another path, the config's paths are brought up to date and the
    run goes on. The weights, the EMA and the Adam moments end where one uninterrupted run ends."""
    import dataclasses
    import shutil

    # validations at 4 and 8, checkpoints alone at every other step: the session ends at step 5, between two
    kw = {"schedule": "constant-cosine", "max_steps": 8, "tail_steps": 3, "ema": 0.9, "val_every": 4, "ckpt_every": 1}
    straight = tmp_path / "straight"
    Trainer(cfg_for(folders, straight, **kw)).run()
    first = tmp_path / "session1"
    holder = {}

    def stop_at_5(ev):
        if isinstance(ev, tr.CheckpointEvent) and ev.step == 5:
            holder["t"].request_stop()

    holder["t"] = Trainer(cfg_for(folders, first, **kw), stop_at_5)
    assert holder["t"].run().step == 5
    moved = tmp_path / "clone" / "campaign"
    shutil.copytree(first, moved)
    shutil.rmtree(first)  # the old session's folder is gone, as on a new machine
    state = torch.load(moved / "ckpt.pt", weights_only=True)
    cfg = dataclasses.replace(TrainConfig.from_json(state["config"]), out=str(moved))
    lrs = []
    Trainer(cfg, lambda e: lrs.append((e.step, e.lr)) if isinstance(e, tr.StepEvent) else None, resume=True).run()
    assert lrs[0] == (6, pytest.approx(lr_at(5, cfg)))
    a = torch.load(straight / "ckpt.pt", weights_only=True)
    b = torch.load(moved / "ckpt.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for k in a["model"]["state_dict"]:
        assert torch.equal(a["model"]["state_dict"][k], b["model"]["state_dict"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    for i, sa in a["optimizer"]["state"].items():
        sb = b["optimizer"]["state"][i]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["best"] == b["best"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="scale must be 2, 3 or 4, got 5"):
        TrainConfig(data=("x",), out="o", scale=5)
    with pytest.raises(ValueError, match="max_steps or max_minutes"):
        TrainConfig(data=("x",), out="o", max_steps=None)
    c = TrainConfig(data=("a", "b"), out="o", kernels=((3, 3), (5, 7)), jpeg_quality=(60, 90))
    assert TrainConfig.from_json(json.loads(json.dumps(c.to_json()))) == c


def test_the_loss_is_l1_or_l2_and_old_checkpoints_read_as_l1(folders, tmp_path):
    with pytest.raises(ValueError, match="loss must be one of l1, l2"):
        TrainConfig(data=("x",), out="o", loss="huber")
    old = TrainConfig(data=("x",), out="o").to_json()
    del old["loss"]  # a checkpoint written before the option existed
    assert TrainConfig.from_json(old).loss == "l1"
    first = {}
    for loss in ("l1", "l2"):
        events = []
        Trainer(cfg_for(folders, tmp_path / loss, loss=loss, max_steps=1, seed=7, amp="off"), events.append).run()
        first[loss] = next(e.loss for e in events if isinstance(e, tr.StepEvent))
    # the same first batch through the same initial net: MSE is below MAE where every error is under 1, and
    # the two are tied by Jensen's inequality (MAE^2 <= MSE)
    assert first["l1"] ** 2 <= first["l2"] < first["l1"]
    a, b = final_state(tmp_path / "l1"), final_state(tmp_path / "l2")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_short_run_writes_a_loadable_model_and_events(folders, tmp_path):
    events = []
    out = tmp_path / "run"
    fin = Trainer(cfg_for(folders, out), events.append).run()
    assert fin.step == 4 and not fin.stopped
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "StartedEvent" and kinds[-1] == "FinishedEvent"
    assert kinds.count("ValidationEvent") == 2 and "CheckpointEvent" in kinds
    val = [e for e in events if isinstance(e, tr.ValidationEvent)]
    assert val[0].bicubic_psnr > 20 and val[0].preview is not None
    loaded = registry.load_model(out / "model.pt", 2)
    assert loaded.info["provenance"]["steps"] in (2, 4)  # the best validation step
    assert loaded.info["metrics"]["val_bicubic_psnr"] > 20
    lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert lines[-1]["event"] == "finished"


def test_same_seed_same_weights_and_resume_continues_exactly(folders, tmp_path):
    straight = tmp_path / "straight"
    Trainer(cfg_for(folders, straight, max_steps=6, val_every=3)).run()
    # the same run, stopped at step 3 by the cooperative flag, then resumed
    part = tmp_path / "part"
    holder = {}

    def stop_at_3(ev):
        if isinstance(ev, tr.StepEvent) and ev.step == 3:
            holder["t"].request_stop()

    holder["t"] = Trainer(cfg_for(folders, part, max_steps=6, val_every=3), stop_at_3)
    fin = holder["t"].run()
    assert fin.stopped and fin.step == 3
    assert torch.load(part / "ckpt.pt", weights_only=True)["step"] == 3
    lrs = []
    Trainer(
        cfg_for(folders, part, max_steps=6, val_every=3),
        lambda e: lrs.append((e.step, e.lr)) if isinstance(e, tr.StepEvent) else None,
        resume=True,
    ).run()
    assert lrs[0][0] == 4
    cfg = cfg_for(folders, part, max_steps=6)
    assert lrs[0][1] == pytest.approx(lr_at(3, cfg))
    a, b = final_state(straight), final_state(part)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a second fresh run in the same folder is refused instead of clobbering it
    with pytest.raises(tr.TrainingError, match="--resume"):
        Trainer(cfg_for(folders, part)).run()


def test_init_and_save_as_register_a_user_model(folders, tmp_path):
    base = registry.save_model(tmp_path / "base.pt", __import__("tests.helpers").helpers.tiny_model(2))
    events = []
    cfg = cfg_for(folders, tmp_path / "ft", init=str(base), save_as="My Style")
    fin = Trainer(cfg, events.append).run()
    assert fin.user_model == "My Style"
    entry = registry.find_model("My Style")
    assert entry is not None and entry.kind == "user" and entry.scale == 2
    assert "Base model" in entry.card and "bicubic" in entry.card
    assert entry.card.startswith(
        "# My Style\n\n**My Style** enlarges photos 2x (for example for a bigger print "
        "or a crop). It is a fine-tune of base on 4 of your own photos"
    )
    val = [e for e in events if isinstance(e, tr.ValidationEvent)]
    assert val[0].base_psnr is not None  # the base was measured before fine-tuning
    out = subprocess.run(
        [sys.executable, "-m", "mlrn_core.cli", "models"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ},
    )
    assert "My Style" in out.stdout


def test_warm_start_across_scales_keeps_all_but_the_upsampler(folders, tmp_path):
    from tests.helpers import tiny_model

    base = tiny_model(2)
    path = registry.save_model(tmp_path / "x2.pt", base)
    t = Trainer(cfg_for(folders, tmp_path / "x3", scale=3, init=str(path), max_steps=1))
    model, info = t._build_model()
    assert model.scale == 3 and info["scale"] == 2
    assert torch.equal(model.state_dict()["head.weight"], base.state_dict()["head.weight"])


def test_data_scan_skips_with_reasons_and_errors_when_nothing_is_usable(tmp_path):
    folder = tmp_path / "mixed"
    paths = write_png_folder(folder, 2)
    (folder / "zcopy.png").write_bytes(paths[0].read_bytes())
    write_png_folder(tmp_path / "small", 1, 10, 10)[0].rename(folder / "small.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    pairs, scan = load_pairs([folder], 2, 32)
    assert len(pairs) == 2
    reasons = {s.path.name: s.reason for s in scan.skipped}
    assert "duplicate" in reasons["zcopy.png"] and "too small" in reasons["small.png"]
    assert "unreadable" in reasons["broken.png"]
    from mlrn_core.data import DataError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no usable training image"):
        load_pairs([empty], 2, 32)


def test_patches_are_aligned_and_deterministic(tmp_path):
    write_png_folder(tmp_path / "d", 3)
    pairs, _ = load_pairs([tmp_path / "d"], 2, 32)
    s = PatchSampler(pairs, 2, 12, 4, seed=7)
    lo, hi = s.batch_arrays(5)
    assert lo.shape == (4, 3, 12, 12) and hi.shape == (4, 3, 24, 24)
    lo2, hi2 = s.batch_arrays(5)
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    assert not np.array_equal(lo, s.batch_arrays(6)[0])
    # the LR patch is the MATLAB-bicubic downscale of its HR patch (up to border effects): compare centres
    from mlrn_core.metrics import imresize

    down = imresize(hi[0].transpose(1, 2, 0), 0.5)
    assert np.abs(down[3:-3, 3:-3] - lo[0].transpose(1, 2, 0)[3:-3, 3:-3]).mean() < 0.02
    # two ranks draw different slices of the same global batch
    r0 = PatchSampler(pairs, 2, 12, 2, seed=7, rank=0, world=2).batch_arrays(5)[0]
    r1 = PatchSampler(pairs, 2, 12, 2, seed=7, rank=1, world=2).batch_arrays(5)[0]
    assert np.array_equal(np.concatenate([r0, r1]), lo)


def test_degradations_change_lr_only_when_enabled(tmp_path):
    write_png_folder(tmp_path / "d", 2)
    pairs, _ = load_pairs([tmp_path / "d"], 2, 32)
    clean = PatchSampler(pairs, 2, 16, 2, seed=1).batch_arrays(0)
    dirty = PatchSampler(pairs, 2, 16, 2, seed=1, degradation=Degradation((30, 40), 5.0)).batch_arrays(0)
    assert np.array_equal(clean[1], dirty[1])  # HR untouched
    assert not np.array_equal(clean[0], dirty[0])


def test_two_process_torchrun_ends_with_identical_weights(folders, tmp_path):
    script = tmp_path / "ddp_train.py"
    kwargs = dict(
        TINY,
        data=(str(folders[0]),),
        val=(str(folders[1]),),
        out=str(tmp_path / "ddp"),
        max_steps=3,
        val_every=2,
        device="cpu",
    )
    script.write_text(
        textwrap.dedent(f"""
        import os, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from mlrn_core.trainer import Trainer, TrainConfig
        cfg = TrainConfig(**{kwargs!r})
        t = Trainer(cfg)
        t.run()
        model = t.model
        torch.save(model.state_dict(), {str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pt")
        import torch.distributed as dist
        dist.destroy_process_group()
    """)
    )
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={free_port()}",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    single = final_state(tmp_path / "ddp")
    assert torch.equal(single["head.weight"], a["head.weight"])  # rank 0 saved what it trained
    assert torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=True)["step"] == 3


def test_cli_four_step_run_then_upscale_resume_and_save_as(folders, tmp_path, capsys):
    from PIL import Image

    from mlrn_core.cli import main

    train, val = folders
    out = tmp_path / "cli-run"
    common = [
        "train",
        "--data",
        str(train),
        "--val",
        str(val),
        "-s",
        "2",
        "--out",
        str(out),
        "--features",
        "8",
        "--blocks",
        "1",
        "--batch",
        "2",
        "--patch",
        "16",
        "--val-every",
        "2",
    ]
    assert main([*common, "--max-steps", "4"]) == 0
    assert (out / "model.pt").exists()
    # the run's model.pt is what `mlrn upscale --model` loads
    src = tmp_path / "in.png"
    Image.new("RGB", (30, 20), (120, 60, 200)).save(src)
    assert (
        main(
            [
                "upscale",
                str(src),
                "-s",
                "2",
                "--model",
                str(out / "model.pt"),
                "-o",
                str(tmp_path / "o.png"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "o.png").size == (60, 40)
    # --resume continues to a larger budget from step 4; --save-as registers it
    assert main([*common, "--resume", "--max-steps", "6", "--save-as", "CLI model"]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == 6
    assert main(["models"]) == 0
    assert "CLI model" in capsys.readouterr().out
    # the ablation switches reach the network
    abl = tmp_path / "abl"
    assert (
        main(
            [
                "train",
                "--data",
                str(train),
                "-s",
                "2",
                "--out",
                str(abl),
                "--features",
                "8",
                "--blocks",
                "1",
                "--batch",
                "2",
                "--patch",
                "16",
                "--max-steps",
                "1",
                "--no-gff",
                "--no-rsc",
                "--kernels",
                "3,5",
            ]
        )
        == 0
    )
    hp = registry.read_model_file(abl / "model.pt").hparams
    assert hp["gff"] is False and hp["rsc"] is False and hp["kernels"] == [[3, 3], [5, 5]]


def test_cli_config_file_and_bad_input(folders, tmp_path, capsys):
    from mlrn_core.cli import main

    cfg = tmp_path / "ablation.json"
    cfg.write_text(
        json.dumps(
            {
                "data": [str(folders[0])],
                "scale": 2,
                "features": 8,
                "blocks": 1,
                "batch": 2,
                "patch": 16,
                "max_steps": 1,
                "gff": False,
            }
        )
    )
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 0
    assert registry.read_model_file(tmp_path / "r" / "model.pt").hparams["gff"] is False
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["train", "--data", str(empty), "-s", "2", "--out", str(tmp_path / "r2")]) == 2
    assert "no usable training image" in capsys.readouterr().err


def test_validation_sees_the_training_degradation_like_the_wizard_evaluation(folders, tmp_path):
    """With "match camera JPEGs" the best checkpoint must be chosen on JPEG inputs, not clean ones."""
    from mlrn_core.evaluate import evaluate_models, load_eval_images

    deg = Degradation((20, 20), 0.0)
    events = []
    Trainer(cfg_for(folders, tmp_path / "run", jpeg_quality=(20, 20), max_steps=2), events.append).run()
    val = [e for e in events if isinstance(e, tr.ValidationEvent)][0]
    files = sorted(folders[1].iterdir())
    jpeg = evaluate_models({"bicubic": None}, load_eval_images(files, 2, deg), 2, torch.device("cpu"))["bicubic"]
    clean = evaluate_models({"bicubic": None}, load_eval_images(files, 2), 2, torch.device("cpu"))["bicubic"]
    assert abs(jpeg.psnr - clean.psnr) > 0.05  # quality 20 visibly changes the bicubic score
    assert val.bicubic_psnr == pytest.approx(jpeg.psnr, abs=1e-6)


def test_cpu_amp_picks_bf16_only_where_the_cpu_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(tr, "cpu_bf16_supported", lambda: True)
    ctx, scaler = tr.autocast_for(cpu, "auto")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and scaler is None
    monkeypatch.setattr(tr, "cpu_bf16_supported", lambda: False)
    ctx, _ = tr.autocast_for(cpu, "auto")
    assert not isinstance(ctx, torch.autocast)
    monkeypatch.setattr(tr, "cpu_bf16_supported", lambda: True)
    assert not isinstance(tr.autocast_for(cpu, "off")[0], torch.autocast)


def test_model_card_names_the_inputs_its_scores_were_measured_on():
    kw = {
        "name": "m",
        "scale": 2,
        "base": "b",
        "data": {},
        "steps": 1,
        "seconds": 1.0,
        "device": "CPU",
        "val_psnr": 30.0,
        "val_ssim": 0.9,
        "bicubic_psnr": 29.0,
        "base_psnr": 29.5,
    }
    jpeg = TrainConfig(data=("x",), out="o", jpeg_quality=(60, 90))
    assert "training degradation" in tr.model_card(config=jpeg, **kw)
    assert "training degradation" not in tr.model_card(config=jpeg, degraded_inputs=False, **kw)
    assert "training degradation" not in tr.model_card(config=TrainConfig(data=("x",), out="o"), **kw)


def test_usr1_pauses_and_usr2_resumes_without_counting_the_pause(folders, tmp_path):
    import os
    import signal
    import threading
    import time

    old = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)
    pid = os.getpid()
    steps_at_pause = []
    trainer = None

    def on_event(ev):
        if isinstance(ev, tr.StepEvent) and ev.step == 1 and not steps_at_pause:
            steps_at_pause.append(ev.step)
            os.kill(pid, signal.SIGUSR1)  # as `kill -USR1 <training pid>` from a shell
            threading.Timer(1.5, os.kill, (pid, signal.SIGUSR2)).start()

    try:
        trainer = Trainer(cfg_for(folders, tmp_path / "run", max_steps=3, val_every=10), on_event)
        trainer.pause_on_signals()
        t0 = time.perf_counter()
        fin = trainer.run()
        wall = time.perf_counter() - t0
    finally:
        signal.signal(signal.SIGUSR1, old[0])
        signal.signal(signal.SIGUSR2, old[1])
    assert fin.step == 3 and not fin.stopped and steps_at_pause == [1]
    assert wall >= 1.5  # it did wait for USR2
    assert fin.elapsed_s <= wall - 1.2  # and the paused time is not training time


def test_ema_validates_both_weights_and_keeps_the_better(folders, tmp_path):
    """With EMA on, the averaged and the latest weights are both validated; model.pt is the better one."""
    from mlrn_core.evaluate import evaluate

    events = []
    out = tmp_path / "ema"
    cfg = cfg_for(folders, out, ema=0.99, lr=3e-3, max_steps=2, val_every=2)
    trainer = Trainer(cfg, events.append)
    trainer.run()
    (val,) = [e for e in events if isinstance(e, tr.ValidationEvent)]
    state = torch.load(out / "ckpt.pt", weights_only=False)
    assert state["step"] == 2 and state["history"][0]["raw_psnr"] == val.raw_psnr

    def psnr_of(weights):
        net = registry.load_model(out / "model.pt", 2).model
        net.load_state_dict(weights)
        return evaluate(net.eval(), trainer.val_images, 2, torch.device("cpu"), tile=cfg.val_tile).mean.psnr

    ema_psnr, raw_psnr = psnr_of(state["ema"]), psnr_of(state["model"]["state_dict"])
    assert val.raw_psnr == pytest.approx(raw_psnr, abs=1e-6)
    assert ema_psnr != pytest.approx(raw_psnr, abs=1e-3)  # the two really differ, so the choice matters
    assert val.psnr == pytest.approx(max(ema_psnr, raw_psnr), abs=1e-6)
    chosen = state["ema"] if ema_psnr > raw_psnr else state["model"]["state_dict"]
    saved = registry.load_model(out / "model.pt", 2).model.state_dict()
    for k, v in saved.items():
        torch.testing.assert_close(v, chosen[k])
    # without EMA there is nothing to compare
    plain = []
    Trainer(cfg_for(folders, tmp_path / "plain"), plain.append).run()
    assert all(e.raw_psnr is None for e in plain if isinstance(e, tr.ValidationEvent))
