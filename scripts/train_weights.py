"""Train (or continue) the shipped MLRN weights for x2, x3 and x4 within a fixed time budget.

``python scripts/train_weights.py --minutes 40 --scales 2`` trains each scale for about that many
minutes, warm-starting from the best weights so far (the shipped ``resources/models/mlrn-x{s}.pt``;
x3/x4 from x2 when they have none yet). ``--photo`` trains the photo models (``mlrn-x{s}-photo``) the
same way, from the photo model or else the paper model, on LR inputs made by the camera degradation
(:data:`mlrn_core.data.CAMERA`: blur, bicubic or area downscale, noise, 4:2:0 JPEG q70-98).

Selection is honest: the best checkpoint is picked on a fixed validation split carved out of the
training photographs (:mod:`release.validation`, ten 480 px crops of OpenPhotos, never trained on;
degraded with a fixed seed for the photo models). A round is installed into ``resources/models``, with
its model card, only if it beats the shipped model on that split *and* is not worse on Set14 (more
than 0.02 dB). Set5 and Set14 are only reported. It never starts over from scratch when weights exist,
so every GPU or CPU hour adds to the last; ``--resume`` continues an interrupted round from its last
checkpoint (a killed job loses at most ``val_every`` steps).

``--campaign`` trains one long run per model that spans sessions instead of short rounds: a constant learning
rate after warm-up and a cosine over the last ``--tail-steps`` of ``--campaign-steps`` (``constant-cosine``).
Its folder, ``training/<model>-campaign/`` in the repository (checkpoint with optimiser, EMA, step, RNG and
best-so-far; the data sampler is a pure function of the seed and the step), is committed at the end of each
session, and the next ``--campaign`` call resumes it exactly where it stopped for another ``--minutes``. Each
session installs its best weights by the usual rule, except that Set14 is held to what shipped before the
campaign began (``baseline.json``), not to the previous session's install.

The cosine schedule needs a horizon in steps: a few timed training steps on the device turn the
minute budget into a step count (``--max-minutes`` stays as a hard stop).

Works without Qt and without platformdirs (it sets ``MLRN_HOME`` to the run folder).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
CAMPAIGNS = REPO / "training"  # long runs that span sessions (committed: the work tree is new every session)
SET14_TOLERANCE = 0.02  # dB: a round may not lose more than this on Set14 (rounding and tiling noise)

from release.cards import PHOTO_TABLE, credits, model_name, shipped_card, validation_curve  # noqa: E402 (after sys.path)
from release.validation import TRAIN_SETS  # noqa: E402


def probe_steps_per_s(device: str, batch: int, patch: int, scale: int, image_skip: bool) -> float:
    import torch
    import torch.nn.functional as F

    from mlrn_core import MLRN
    from mlrn_core.tiling import pick_device
    from mlrn_core.trainer import autocast_for

    dev = pick_device(device)
    # the same precision and memory format as the trainer will use (bf16 + channels_last where it pays)
    ctx, _scaler = autocast_for(dev)
    model = MLRN(scale=scale, image_skip=image_skip).to(dev).train()
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    lo = torch.rand(batch, 3, patch, patch, device=dev).contiguous(memory_format=torch.channels_last)
    hi = torch.rand(batch, 3, patch * scale, patch * scale, device=dev)
    n, t = 0, None
    for i in range(8 if dev.type == "cpu" else 30):
        if i == 3:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t, n = time.perf_counter(), 0
        with ctx:
            loss = F.l1_loss(model(lo).float(), hi)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def layout_text(device) -> str:
    """The trainer's memory format on ``device`` (channels_last on CUDA and on CPUs with native bf16 kernels)."""
    from mlrn_core.tiling import cpu_bf16_supported

    return " + channels_last" if device.type == "cuda" or cpu_bf16_supported() else ", NCHW"


def degradation_for(photo: bool):
    from mlrn_core import data as data_mod

    return data_mod.CAMERA if photo else data_mod.Degradation()


def val_split(runs: Path) -> tuple[Path, list[Path]]:
    from release.validation import validation_split

    return validation_split(SHARED / "train" / "OpenPhotos", runs / "valsplit")


def bench(model, scale: int, device, folder: Path, spec: str = "none") -> dict:
    from mlrn_core.evaluate import benchmark, parse_degradation

    r = benchmark([folder], scale, model, device=device, degradation=parse_degradation(spec))
    return {"bicubic": r.bicubic.as_dict(), "model": r.model.as_dict() if r.model else None}


def measure(model, scale: int, device, valdir: Path, photo: bool) -> dict:
    """Validation split (degraded for photo models) and the report-only benchmarks."""
    out = {"val": bench(model, scale, device, valdir, "camera" if photo else "none")}
    for name in ("Set5", "Set14"):
        out[name] = bench(model, scale, device, SHARED / "bench" / name)
    if photo:
        for spec in PHOTO_TABLE[1:]:
            out[f"Set14 {spec}"] = bench(model, scale, device, SHARED / "bench" / "Set14", spec)
    return out


def hardware_text(label: str) -> str:
    """The device label plus, on a CPU, its model name and core count (for the card)."""
    import torch

    text = f"{label}, {platform.machine()}, torch {torch.__version__}"
    if label.startswith("CPU"):
        try:
            names = [
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ]
            text += f", {len(names)} x {names[0]}" if names else ""
        except OSError:
            pass
    return text


def card_text(
    scale: int,
    photo: bool,
    results: dict,
    history: list[dict],
    hparams: dict,
    paper_results: dict | None = None,
    events: Path | None = None,
) -> str:
    """The shipped model's card (:func:`release.cards.shipped_card`), with the photo models found in
    ``resources/models``, the credits of ``train/OpenPhotos/SOURCES.md`` and the validation curve of the last
    round's ``events`` file (``events.jsonl``), if given and there."""
    rows = []
    if events is not None and events.exists():
        rows = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return shipped_card(
        scale,
        photo,
        results,
        history,
        hparams,
        paper_results,
        photo_model_shipped=(REPO / "resources" / "models" / f"{model_name(scale, True)}.pt").exists(),
        credit_lines=credits(SHARED / "train" / "OpenPhotos" / "SOURCES.md"),
        curve=validation_curve(history, rows),
    )


def set14_key(photo: bool) -> str:
    """The Set14 entry a round may not lose on: lossless Set14, or for photo models Set14 as JPEG q85."""
    return "Set14 jpeg:85" if photo else "Set14"


def should_install(new: dict, old: dict | None, photo: bool, set14_reference: float | None = None) -> tuple[bool, str]:
    """Whether a round's results beat the model to beat (``old``; ``None`` when there is none), and why.

    Better means: higher on the validation split *and* at most :data:`SET14_TOLERANCE` dB lower on Set14
    (:func:`set14_key`) than ``old``, or than ``set14_reference`` when given (a campaign holds Set14 to the model
    shipped before it began, so installs cannot ratchet it down session by session). ``new`` and ``old`` are
    :func:`measure` results."""
    if old is None:
        return True, "no model to beat"
    s14 = set14_key(photo)
    new_val, old_val = new["val"]["model"]["psnr"], old["val"]["model"]["psnr"]
    new14 = new[s14]["model"]["psnr"]
    old14 = old[s14]["model"]["psnr"] if set14_reference is None else set14_reference
    figures = f"validation {new_val:.3f} dB (was {old_val:.3f}), {s14} {new14:.3f} dB (was {old14:.3f})"
    if not new_val > old_val:
        return False, f"not better on the validation split: {figures}"
    if not new14 >= old14 - SET14_TOLERANCE:
        return False, f"{s14} more than {SET14_TOLERANCE} dB worse: {figures}"
    return True, f"better on the validation split and within {SET14_TOLERANCE} dB on {s14}: {figures}"


def install(
    run: Path,
    scale: int,
    photo: bool,
    command: str,
    device,
    minutes: float,
    steps: int,
    init_name: str,
    valdir: Path,
    force: bool = False,
    dry: bool = False,
    hardware: str | None = None,
    set14_reference: float | None = None,
) -> dict:
    """Benchmark a run's model.pt; ship it if it beats the shipped model on the validation split (or ``force``)
    and is not worse on Set14 (for photo models: Set14 as JPEG q85)."""
    from mlrn_core import registry
    from mlrn_core.tiling import device_label

    models_dir = REPO / "resources" / "models"
    name = model_name(scale, photo)
    shipped = models_dir / f"{name}.pt"
    new = registry.load_model(run / "model.pt", scale)
    results = measure(new.model, scale, device, valdir, photo)
    print(f"{name}: {json.dumps(results)}", flush=True)
    s14 = set14_key(photo)
    old = None
    if shipped.exists():
        old = measure(registry.load_model(shipped, scale).model, scale, device, valdir, photo)
    elif photo and (models_dir / f"{model_name(scale, False)}.pt").exists():
        # the first photo model must beat the paper model at the photo inputs it is made for
        old = measure(
            registry.load_model(models_dir / f"{model_name(scale, False)}.pt", scale).model, scale, device, valdir, True
        )
    if old is not None:
        print(f"{name}: compared with {json.dumps(old)}", flush=True)
    new_val = results["val"]["model"]["psnr"]
    old_val = old["val"]["model"]["psnr"] if old else None
    report = {
        "name": name,
        "new_val": new_val,
        "old_val": old_val,
        "new_set14": results[s14]["model"]["psnr"],
        "old_set14": old[s14]["model"]["psnr"] if old else None,
        "steps": steps,
        "minutes": round(minutes, 1),
        "installed": False,
    }
    better, report["reason"] = should_install(results, old, photo, set14_reference)
    if dry or not (force or better):
        print(f"{name}: not installed ({json.dumps(report)})", flush=True)
        return report
    history_file = records_dir() / f"{name}.history.json"
    history = json.loads(history_file.read_text()) if history_file.exists() else []
    # a run is named by its folder under the repository (two campaigns of one model share the folder name
    # 'mlrn-x2-campaign', in training/ and training/mlrn-x2-leg2/): only the same run replaces its own entry
    run_id = run_key(run)
    same = [i for i, h in enumerate(history) if h.get("run") == run_id]
    if same:
        # the same round installed again from a later checkpoint: one round, counted once; rounds installed after
        # its earlier entry (a final-phase arm started from it) are branches the new weights do not descend from
        del history[same[-1] :]
    history.append(
        {
            "run": run_id,
            "date": _dt.date.today().isoformat(),
            "command": command,
            "device": hardware or hardware_text(device_label(device)),
            "steps": steps,
            "minutes": minutes,
            "init": init_name,
            "val_psnr": new_val,
            "set5_psnr": results["Set5"]["model"]["psnr"],
            "set14_psnr": results["Set14"]["model"]["psnr"],
        }
    )
    if (run / "baseline.json").exists():  # a campaign: one round that grows over sessions
        baseline = json.loads((run / "baseline.json").read_text())
        started = 0
        if (run / "events.jsonl").exists():
            lines = (run / "events.jsonl").read_text().splitlines()
            started = sum(json.loads(line).get("event") == "started" for line in lines if line.strip())
        history[-1]["campaign"] = {"since": baseline.get("date") or history[-1]["date"], "sessions": max(1, started)}
    paper_results = None
    if photo:  # the paper model's row of the JPEG table (already measured when it was the one to beat)
        paper = models_dir / f"{model_name(scale, False)}.pt"
        if not shipped.exists():
            paper_results = old
        elif paper.exists():
            paper_results = measure(registry.load_model(paper, scale).model, scale, device, valdir, True)
    mf = registry.read_model_file(run / "model.pt")
    metrics = metrics_of(results, photo)
    info = dict(mf.info, name=name, metrics=metrics)
    registry.atomic_torch_save(registry.make_model_payload(mf.hparams, mf.state_dict, info), shipped)
    history_file.parent.mkdir(parents=True, exist_ok=True)
    history_file.write_text(json.dumps(history, indent=2) + "\n")
    card = card_text(scale, photo, results, history, mf.hparams, paper_results, run / "events.jsonl")
    (models_dir / f"{name}.md").write_text(card)
    if (run / "events.jsonl").exists():
        shutil.copy(run / "events.jsonl", records_dir() / f"{name}.events.jsonl")
    print(f"{name}: installed {shipped} (validation {new_val:.3f} dB, was {old_val})", flush=True)
    report["installed"] = True
    return report


def best_checkpoint(run: Path, ckpt: dict) -> tuple[int, float]:
    """(steps, minutes) of the checkpoint a run's model.pt holds (the trainer exports the best weights with their
    step and training time, while ckpt.pt is the latest); the checkpoint's own figures for an older model.pt."""
    from mlrn_core import registry

    prov = registry.read_model_file(run / "model.pt").info.get("provenance") or {}
    if "steps" not in prov or "train_seconds" not in prov:
        return int(ckpt["step"]), ckpt.get("elapsed_s", 0) / 60
    return int(prov["steps"]), prov["train_seconds"] / 60


def recard(scale: int, photo: bool, device, valdir: Path) -> None:
    """Measure a shipped model again (validation split, Set5, Set14) and rewrite its card and metrics."""
    from mlrn_core import registry

    models_dir = REPO / "resources" / "models"
    name = model_name(scale, photo)
    shipped = models_dir / f"{name}.pt"
    loaded = registry.load_model(shipped, scale)
    results = measure(loaded.model, scale, device, valdir, photo)
    paper_results = None
    if photo:
        paper_results = measure(
            registry.load_model(models_dir / f"mlrn-x{scale}.pt", scale).model, scale, device, valdir, True
        )
    history_file = records_dir() / f"{name}.history.json"
    history = json.loads(history_file.read_text()) if history_file.exists() else []
    mf = registry.read_model_file(shipped)
    metrics = metrics_of(results, photo)
    if not same_figures(mf.info.get("metrics") or {}, metrics) or mf.info.get("name") != name:
        # only when the figures changed: every new version of a weights file is paid for by every clone
        info = dict(mf.info, name=name, metrics=metrics)
        registry.atomic_torch_save(registry.make_model_payload(mf.hparams, mf.state_dict, info), shipped)
    card = card_text(scale, photo, results, history, mf.hparams, paper_results, records_dir() / f"{name}.events.jsonl")
    (models_dir / f"{name}.md").write_text(card)
    print(f"{name}: card rewritten ({json.dumps(results)})", flush=True)


def same_figures(old: dict, new: dict, tolerance: float = 5e-4) -> bool:
    """Whether two metrics dicts say the same (the same keys, each within ``tolerance``: an older install
    rounded to 3 decimals where a re-measure keeps 4)."""
    return set(old) == set(new) and all(abs(float(old[k]) - float(new[k])) <= tolerance for k in new)


def metrics_of(results: dict, photo: bool) -> dict:
    metrics = {
        "val_psnr": results["val"]["model"]["psnr"],
        "val_ssim": results["val"]["model"]["ssim"],
        "val_bicubic_psnr": results["val"]["bicubic"]["psnr"],
    }
    for key, label in (("Set5", "set5"), ("Set14", "set14")) + tuple(
        (f"Set14 {spec}", "set14_" + spec.replace(":", "")) for spec in PHOTO_TABLE[1:] if photo
    ):
        metrics.update(
            {
                f"{label}_psnr": results[key]["model"]["psnr"],
                f"{label}_ssim": results[key]["model"]["ssim"],
                f"{label}_bicubic_psnr": results[key]["bicubic"]["psnr"],
                f"{label}_bicubic_ssim": results[key]["bicubic"]["ssim"],
            }
        )
    return metrics


def warm_start(name: str, scale: int) -> Path | None:
    """The weights a new round or campaign of ``name`` starts from: its own, the paper model's, else x2's body."""
    models_dir = REPO / "resources" / "models"
    candidates = [models_dir / f"{name}.pt", models_dir / f"mlrn-x{scale}.pt", models_dir / "mlrn-x2.pt"]
    return next((c for c in candidates if c.exists()), None)


def body_with_upsampler(body: Path, upsampler: Path, out: Path) -> Path:
    """A model file at ``out`` with ``upsampler``'s architecture and ``upsample.*`` tensors and everything else
    from ``body`` (the new x2 body under the shipped x3/x4 upsampler): the start of a x3/x4 campaign."""
    from mlrn_core import registry

    b, u = registry.read_model_file(body), registry.read_model_file(upsampler)
    if {k: v for k, v in b.hparams.items() if k != "scale"} != {k: v for k, v in u.hparams.items() if k != "scale"}:
        raise SystemExit(f"{body.name} and {upsampler.name} are different networks: cannot join them")
    body_keys = [k for k in u.state_dict if not k.startswith("upsample.")]
    lacking = [k for k in body_keys if k not in b.state_dict or b.state_dict[k].shape != u.state_dict[k].shape]
    if lacking:
        raise SystemExit(f"{body.name} lacks tensors of {upsampler.name}: {lacking[:5]}")
    state = {k: (b.state_dict[k] if k in body_keys else v).float() for k, v in u.state_dict.items()}
    info = {
        "name": out.stem,
        "provenance": {
            "body": f"{body.name} ({b.info.get('created', 'undated')})",
            "upsampler": f"{upsampler.name} ({u.info.get('created', 'undated')})",
        },
    }
    return registry.atomic_torch_save(registry.make_model_payload(u.hparams, state, info), out)


def portable_config(folder: Path) -> None:
    """Rewrite a run's ``config.json`` (a record: a resumed campaign takes its paths from this machine) with the
    paths inside the repository or beside it (``../shared``) relative to the repository, so a committed record
    names no machine's folders. Other paths (a user's photos elsewhere) stay as they are."""
    file = folder / "config.json"
    if not file.exists():
        return
    config = json.loads(file.read_text())
    repo = REPO.resolve()

    def relative(value):
        if isinstance(value, str) and os.path.isabs(value):
            path = Path(value).resolve()
            if path.is_relative_to(repo.parent):
                return os.path.relpath(path, repo)
        return value

    config = {k: [relative(x) for x in v] if isinstance(v, list) else relative(v) for k, v in config.items()}
    file.write_text(json.dumps(config, indent=2) + "\n")


def run_key(run: Path) -> str:
    """How the training history names a run: its folder relative to the repository (else its full path)."""
    path = run.resolve()
    try:
        return path.relative_to(REPO.resolve()).as_posix()
    except ValueError:
        return str(path)


def records_dir() -> Path:
    """Where the shipped models' training records live: ``<name>.history.json`` (every round installed) and
    ``<name>.events.jsonl`` (the last round's events). Out of ``resources/``, which is what the app ships."""
    return REPO / "training" / "records"


def recipe(args, device, init: Path | None) -> tuple[int, int, float]:
    """(batch, LR patch, peak lr): the options given, else the device's defaults."""
    cuda = device.type == "cuda"
    return args.batch or (32 if cuda else 16), args.patch or (64 if cuda else 48), args.lr or (2e-4 if init else 5e-4)


def campaign_command(cfg, scale: int, photo: bool, device) -> str:
    """The campaign's recipe line for its card, derived from its TrainConfig (rewritten when the horizon changes)."""
    import torch

    from mlrn_core.trainer import autocast_for

    ctx = autocast_for(device, cfg.amp)[0]
    precision = "bf16 autocast" if isinstance(ctx, torch.autocast) else "fp32"
    init = Path(cfg.init).name if cfg.init else "scratch"
    return (
        f"python scripts/train_weights.py --campaign --scales {scale}"
        + (" --photo" if photo else "")
        + f" --minutes M (one call a session; TrainConfig: batch {cfg.batch}, patch {cfg.patch}, lr {cfg.lr:g} "
        f"constant after {cfg.warmup_steps} warm-up steps, cosine over the last {cfg.tail_steps} of {cfg.max_steps} "
        f"steps, {precision}{layout_text(device)}"
        + (f", {cfg.loss.upper()} loss" if cfg.loss != "l1" else "")
        + (f", EMA {cfg.ema:g}" if cfg.ema else "")
        + (f", {cfg.clean_share:.0%} of samples clean" if photo and cfg.clean_share else "")
        + f", init {init})"
    )


def campaign_setup(args, scale: int, device, valdir: Path, held_out: list[Path], folder: Path):
    """(TrainConfig, resume, command, Set14 reference) of the campaign in ``folder``: resumed from its checkpoint
    (the paths and this session's minutes brought up to date, everything else as it was) or started from the
    shipped weights with the baseline recorded."""
    import dataclasses

    import torch

    from mlrn_core import registry
    from mlrn_core.trainer import TrainConfig

    name = model_name(scale, args.photo)
    paths = {
        "data": tuple(str(SHARED / "train" / s) for s in TRAIN_SETS),
        "val": (str(valdir),),
        "exclude": tuple(str(p) for p in held_out),
        "out": str(folder),
    }
    ckpt = folder / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        cfg = TrainConfig.from_json(state["config"])
        if cfg.scale != scale:
            raise SystemExit(f"{ckpt} is a x{cfg.scale} checkpoint, not x{scale}: move it away or pick its scale")
        done_min = float(state.get("elapsed_s", 0.0)) / 60
        if cfg.init and (folder / Path(cfg.init).name).exists():  # a composed start kept in the folder
            paths["init"] = str(folder / Path(cfg.init).name)
        cfg = dataclasses.replace(
            cfg, **paths, max_minutes=done_min + args.minutes, device=str(device), ckpt_every=cfg.ckpt_every or 50
        )
        horizon = {"max_steps": args.campaign_steps or cfg.max_steps, "tail_steps": args.tail_steps or cfg.tail_steps}
        if (horizon["max_steps"], horizon["tail_steps"]) != (cfg.max_steps, cfg.tail_steps):
            # a longer or shorter campaign: only while the learning rate is still constant, so the steps already
            # taken are the same under the new schedule as under the old one
            tail0_old, tail0_new = cfg.max_steps - cfg.tail_steps, horizon["max_steps"] - horizon["tail_steps"]
            if int(state["step"]) > min(tail0_old, tail0_new):
                raise SystemExit(
                    f"{folder}: step {state['step']} is past the constant phase (the tail starts at step "
                    f"{min(tail0_old, tail0_new)}), so its horizon can no longer change; run it as it is"
                )
            cfg = dataclasses.replace(cfg, **horizon)
            (folder / "command.txt").write_text(campaign_command(cfg, scale, args.photo, device) + "\n")
            print(f"{name}: campaign horizon now {cfg.max_steps} steps, cosine over the last {cfg.tail_steps}")
        if int(state["step"]) >= cfg.max_steps:
            # its schedule has run out (the rate decayed to its floor): resuming would train nothing
            raise SystemExit(
                f"{folder}: this campaign finished its {cfg.max_steps} steps (install it with --install-run "
                f"{folder}); to train {name} further, start a new campaign from the installed weights in another "
                f"folder: --campaign --scales {scale} --campaigns training/{name}-leg2"
            )
        baseline = json.loads((folder / "baseline.json").read_text())
        print(f"{name}: resuming the campaign {folder} at step {state['step']} of {cfg.max_steps}", flush=True)
        return cfg, True, (folder / "command.txt").read_text().strip(), baseline["set14_psnr"]
    init = warm_start(name, scale)
    own = REPO / "resources" / "models" / f"{name}.pt"
    x2 = REPO / "resources" / "models" / "mlrn-x2.pt"
    paper = REPO / "resources" / "models" / f"{model_name(scale, False)}.pt"
    if args.photo and paper.exists():
        # a photo campaign rebuilds the photo model on the paper model's current body, not on its own older one
        init = paper
    if not args.photo and scale != 2 and init == own and x2.exists():
        # x3/x4 start from the x2 campaign's body (far more trained) under their own shipped upsampler
        folder.mkdir(parents=True, exist_ok=True)
        init = body_with_upsampler(x2, own, folder / f"mlrn-x2-body+{name}-upsampler.pt")
    batch, patch, lr = recipe(args, device, init)
    deg = degradation_for(args.photo)
    cfg = TrainConfig(
        **paths,
        scale=scale,
        batch=batch,
        patch=patch,
        lr=lr,
        warmup_steps=100,
        max_steps=args.campaign_steps or 40_000,
        tail_steps=args.tail_steps or 10_000,
        schedule="constant-cosine",
        max_minutes=args.minutes,
        val_every=args.val_every or 200,
        ckpt_every=50,  # a validation costs ~40 s on 2 cores; a checkpoint alone ~1 s
        loss=args.loss,
        image_skip=True,
        ema=args.ema,
        init=str(init) if init else None,
        device=str(device),
        seed=args.seed if args.seed is not None else int(time.time()) % 10000,
        jpeg_quality=deg.jpeg_quality,
        noise_sigma=deg.noise_sigma,
        blur=deg.blur,
        resize=deg.resize,
        clean_share=args.clean_share if args.photo else 0.0,
    )
    command = campaign_command(cfg, scale, args.photo, device)
    baseline = {"model": name, "set14_psnr": None, "val_psnr": None}
    if own.exists():  # the reference: what ships now, whatever the campaign starts from
        metrics = registry.read_model_file(own).info.get("metrics") or {}
        key = "set14_jpeg85_psnr" if args.photo else "set14_psnr"
        baseline.update(
            set14_psnr=metrics.get(key), val_psnr=metrics.get("val_psnr"), date=_dt.date.today().isoformat()
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text(command + "\n")
    (folder / "baseline.json").write_text(json.dumps(baseline, indent=2) + "\n")
    print(f"{name}: new campaign {folder}; {command}", flush=True)
    return cfg, False, command, baseline["set14_psnr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="training minutes per scale")
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--photo", action="store_true", help="train the photo models (camera JPEG inputs)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=None, help="default 32 on CUDA, 16 on CPU")
    ap.add_argument("--patch", type=int, default=None, help="LR patch; default 64 on CUDA, 48 on CPU")
    ap.add_argument("--lr", type=float, default=None, help="default 5e-4 from scratch, 2e-4 when continuing")
    ap.add_argument(
        "--init",
        default=None,
        metavar="MODEL.pt",
        help="a round (not a campaign) starts from this model file instead of the shipped weights, e.g. a "
        "campaign's model.pt for a final phase (a new photo campaign starts from the paper model mlrn-x{s}.pt)",
    )
    ap.add_argument(
        "--seed", type=int, default=None, help="the data seed (default: from the clock); equal seeds, equal batches"
    )
    ap.add_argument(
        "--loss",
        choices=("l1", "l2"),
        default="l1",
        help="pixel loss: l1 (the paper's, default) or l2 (MSE, for a final phase at a small --lr)",
    )
    ap.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="EMA decay of the weights (0 = off); the average and the latest weights are both validated, "
        "the better kept",
    )
    ap.add_argument(
        "--clean-share",
        type=float,
        default=0.0,
        help="photo models: fraction of training samples left clean (MATLAB bicubic), so lossless inputs keep "
        "their detail; validation stays fully camera-degraded",
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="cosine horizon in steps (default: measured on CUDA; on a CPU the cosine spans the minutes)",
    )
    ap.add_argument("--val-every", type=int, default=None, help="validation and checkpoint interval in steps")
    ap.add_argument("--runs", default=str(REPO / "runs"), help="where run folders go")
    ap.add_argument(
        "--campaign",
        action="store_true",
        help="train the model's one long run (training/<model>-campaign/, committed), resuming it where the last "
        "session stopped; --minutes is this session's share",
    )
    ap.add_argument(
        "--campaign-steps",
        type=int,
        default=None,
        help="the campaign's total steps (default 40000 for a new one); a running campaign takes a new value only "
        "while its learning rate is still constant",
    )
    ap.add_argument(
        "--tail-steps", type=int, default=None, help="the campaign's cosine tail, its last steps (default 10000)"
    )
    ap.add_argument("--campaigns", default=str(CAMPAIGNS), help="where campaign folders go")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest unfinished run of each model from its checkpoint, if there is one",
    )
    ap.add_argument("--no-install", action="store_true", help="only train and report")
    ap.add_argument("--install-run", metavar="RUN_DIR", help="do not train: benchmark and ship this run's model.pt")
    ap.add_argument("--command", help="with --install-run: the command line that trained it (for the card)")
    ap.add_argument("--hardware", help="with --install-run: where it trained (for the card)")
    ap.add_argument("--force", action="store_true", help="with --install-run: ship even if not better")
    ap.add_argument(
        "--recard",
        action="store_true",
        help="do not train: measure the shipped models again and rewrite their cards (weights unchanged)",
    )
    args = ap.parse_args()
    runs = Path(args.runs)
    os.environ.setdefault("MLRN_HOME", str(runs / "home"))
    valdir, held_out = val_split(runs)
    if args.recard:
        from mlrn_core.tiling import pick_device

        for scale in args.scales:
            recard(scale, args.photo, pick_device(args.device), valdir)
        return
    if args.install_run:
        import torch

        from mlrn_core.tiling import pick_device

        run = Path(args.install_run)
        ck = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=True)
        init = ck["config"].get("init")
        steps, minutes = best_checkpoint(run, ck)
        baseline = run / "baseline.json"  # a campaign: Set14 is held to what shipped before it began
        reference = json.loads(baseline.read_text()).get("set14_psnr") if baseline.exists() else None
        for scale in [ck["config"]["scale"]] if ck["config"].get("scale") else args.scales:  # the run's own scale
            install(
                run,
                scale,
                args.photo,
                args.command
                or ((run / "command.txt").read_text().strip() if (run / "command.txt").exists() else None)
                or "see the run's config.json",
                pick_device(args.device),
                minutes,
                steps,
                Path(init).name if init else "scratch",
                valdir,
                force=args.force,
                hardware=args.hardware,
                set14_reference=reference,
            )
        return

    import torch

    from mlrn_core.tiling import device_label, pick_device
    from mlrn_core.trainer import TrainConfig, Trainer, autocast_for

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    summary = {}
    for scale in args.scales:
        name = model_name(scale, args.photo)
        init = Path(args.init) if args.init else warm_start(name, scale)
        batch, patch, lr = recipe(args, device, init)
        resumable = sorted(
            p
            for p in runs.glob(f"{name}-[0-9]*")
            if (p / "ckpt.pt").exists() and (p / "command.txt").exists() and not (p / "finished").exists()
        )
        set14_reference = None
        if args.campaign:
            out = Path(args.campaigns) / f"{name}-campaign"
            cfg, resume, command, set14_reference = campaign_setup(args, scale, device, valdir, held_out, out)
        elif args.resume and resumable:
            out = resumable[-1]
            ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
            cfg = TrainConfig.from_json(ck["config"])
            command = (out / "command.txt").read_text().strip() + " (resumed)"
            steps = cfg.max_steps
            print(f"{name}: resuming {out} at step {ck['step']} of {steps}", flush=True)
            resume = True
        else:
            if args.steps:
                steps, schedule = args.steps, "cosine"
            elif cuda:  # a dedicated GPU's speed is steady: turn the minutes into a step horizon
                rate = probe_steps_per_s(str(device), batch, patch, scale, True)
                steps, schedule = max(50, int(args.minutes * 60 * rate * 0.9)), "cosine"
            else:  # a shared CPU's speed is not: the cosine runs over the time budget itself
                steps, schedule = None, "cosine-time"
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = runs / f"{name}-{stamp}"
            deg = degradation_for(args.photo)
            cfg = TrainConfig(
                data=tuple(str(SHARED / "train" / s) for s in TRAIN_SETS),
                val=(str(valdir),),
                exclude=tuple(str(p) for p in held_out),
                out=str(out),
                scale=scale,
                batch=batch,
                patch=patch,
                lr=lr,
                warmup_steps=min(100, steps // 10) if steps else 50,
                max_steps=steps,
                schedule=schedule,
                max_minutes=args.minutes * (1.1 if steps else 1.0),
                val_every=args.val_every or (max(50, steps // 10) if steps else 100),
                loss=args.loss,
                image_skip=True,
                ema=args.ema,
                init=str(init) if init else None,
                device=str(device),
                seed=args.seed if args.seed is not None else int(time.time()) % 10000,
                jpeg_quality=deg.jpeg_quality,
                noise_sigma=deg.noise_sigma,
                blur=deg.blur,
                resize=deg.resize,
                clean_share=args.clean_share if args.photo else 0.0,
            )
            ctx = autocast_for(device, cfg.amp)[0]
            precision = (
                {torch.bfloat16: "bf16", torch.float16: "fp16"}[ctx.fast_dtype] + " autocast"
                if isinstance(ctx, torch.autocast)
                else "fp32"
            ) + layout_text(device)
            command = (
                f"python scripts/train_weights.py --minutes {args.minutes:g} --scales {scale}"
                + (" --photo" if args.photo else "")
                + f" --device {device.type}"
                + (f" --lr {args.lr:g}" if args.lr else "")
                + (f" --loss {args.loss}" if args.loss != "l1" else "")
                + (f" --ema {args.ema:g}" if args.ema else "")
                + (f" --clean-share {args.clean_share:g}" if args.photo and args.clean_share else "")
                + (f" --batch {args.batch}" if args.batch else "")
                + (f" --patch {args.patch}" if args.patch else "")
                + (f" --steps {args.steps}" if args.steps else "")
                + (f" --seed {args.seed}" if args.seed is not None else "")
                + (f" --init {args.init}" if args.init else "")
                + f" (TrainConfig: batch {batch}, patch {patch}, lr {lr:g}, "
                + (f"cosine over {steps} steps, " if steps else f"cosine over {args.minutes:g} minutes, ")
                + f"warm-up {cfg.warmup_steps}, {cfg.loss.upper()} loss, image_skip, {precision}"
                + (f", EMA {args.ema:g}" if args.ema else "")
                + (f", {args.clean_share:.0%} of samples clean" if args.photo and args.clean_share else "")
                + f", init {init.name if init else 'scratch'})"
            )
            print(f"{name}: {device_label(device)}; {command}", flush=True)
            resume = False
            out.mkdir(parents=True, exist_ok=True)
            (out / "command.txt").write_text(command + "\n")
        t0 = time.perf_counter()
        trainer = Trainer(
            cfg,
            lambda ev: (
                print(ev, flush=True)
                if type(ev).__name__ in ("ValidationEvent", "FinishedEvent", "FailedEvent")
                else None
            ),
            resume=resume,
        )
        trainer.pause_on_signals()  # kill -USR1 / -USR2: pause / resume (paused time is not counted)
        fin = trainer.run()
        portable_config(out)
        if not args.campaign or (cfg.max_steps is not None and fin.step >= cfg.max_steps):
            (out / "finished").write_text(f"{fin.elapsed_s:.1f}\n")
        minutes = fin.elapsed_s / 60 if fin.elapsed_s else (time.perf_counter() - t0) / 60
        ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=True)
        steps = int(ck["step"])
        if args.campaign:  # a campaign installs the weights its validation chose, with their own step and time
            steps, minutes = best_checkpoint(out, ck)
        init_name = Path(cfg.init).name if cfg.init else "scratch"
        summary[name] = install(
            out,
            scale,
            args.photo,
            command,
            device,
            minutes,
            steps,
            init_name,
            valdir,
            force=False,
            dry=args.no_install,
            set14_reference=set14_reference,
        )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
