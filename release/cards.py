"""The one builder of a shipped model's card (``resources/models/mlrn-x{s}[-photo].md``).

``scripts/train_weights.py`` writes it when it installs a round or re-measures one (``--recard``): what the
model is for, its test tables against the paper and IMDN, where it stands, how it was made, the credits of
the training photographs and every training round. User models' cards are built by :mod:`mlrn_core.cards`;
both render their tables with :func:`mlrn_core.cards.markdown_table`.

``results`` maps a set to its scores, as ``scripts/train_weights.py`` measures them: ``"val"`` (the
validation split), ``"Set5"``, ``"Set14"`` and, for photo models, ``"Set14 jpeg:Q"`` for each JPEG input of
:data:`PHOTO_TABLE`; each ``{"bicubic": {"psnr", "ssim"}, "model": {"psnr", "ssim"}}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from mlrn_core.auto import PAPER_FROM_JPEG_QUALITY
from mlrn_core.cards import markdown_table
from mlrn_core.data import CAMERA
from release.validation import DESCRIPTION

PHOTO_TABLE = ("none", "jpeg:95", "jpeg:85", "jpeg:75")  # the photo models' Set14 table
PAPER = {  # the MLRN paper's Table 2: PSNR, SSIM
    2: {"Set5": (37.90, 0.9601), "Set14": (33.49, 0.9140)},
    3: {"Set5": (34.18, 0.9254), "Set14": (30.22, 0.8369)},
    4: {"Set5": (31.92, 0.8911), "Set14": (28.43, 0.7748)},
}
FLOORS = {2: 33.20, 3: 29.90, 4: 28.10}  # Set14 PSNR floors of the weights issue (round 2)
IMDN_SET14 = {2: 33.64, 3: 30.33, 4: 28.58}


def _near_lossless(scale: int) -> int:
    """The JPEG quality from which Auto uses the paper model (mlrn_core.auto)."""
    return PAPER_FROM_JPEG_QUALITY.get(scale, 101)


def model_name(scale: int, photo: bool) -> str:
    """The shipped model's name: ``mlrn-x2`` (paper model) or ``mlrn-x2-photo``."""
    return f"mlrn-x{scale}" + ("-photo" if photo else "")


def credits(sources: Path) -> list[str]:
    """The CC-BY / CC-BY-SA credits of a SOURCES.md table (``| file | licence | author |``), one line each;
    OpenPhotos' asks models trained on it to give them. Empty when the file is missing."""
    rows = []
    if sources.is_file():
        for line in sources.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[1].upper().startswith("CC-BY"):
                rows.append(f"{cells[0]} ({cells[1]}): {cells[2]}")
    return rows


def _start(init: str) -> str:
    """A round's start as the card says it: a composed x2-body start (``mlrn-x2-body+mlrn-x4-upsampler.pt``,
    written by ``scripts/train_weights.py`` when a x3/x4 campaign begins) in words, any other file by name."""
    m = re.fullmatch(r"mlrn-x2-body\+(mlrn-x\d+)-upsampler\.pt", init)
    if not m:
        return init
    return (
        f"the body of mlrn-x2 (every layer but the upsampler; its training is on the mlrn-x2 card) under the "
        f"upsampler of the previous {m[1]} (`{init}`, written into the campaign's folder when it began and "
        "removed once the campaign had passed it: both parts are shipped models in the git history)"
    )


def validation_curve(history: Sequence[dict], events: Sequence[dict]) -> list[tuple[float, int, float, float]]:
    """The validation-PSNR curve against total training: ``(hours, steps, psnr, gain over bicubic)`` rows.

    ``history``: every round (``.history.json``: steps and minutes); ``events``: the validations of the last
    round (``.events.jsonl``, on the validation split). Earlier rounds only add to the hours and steps; the
    first row is the start of the last round (its warm-start model's score); the logged times are scaled to
    the minutes of the installed checkpoint.
    """
    if not history:
        return []
    before_h = sum(float(h["minutes"]) for h in history[:-1]) / 60
    before_steps = sum(int(h["steps"]) for h in history[:-1])
    vals = [e for e in events if e.get("event") == "validation"]
    elapsed = {e["step"]: e["elapsed_s"] for e in events if "elapsed_s" in e}
    last = history[-1]
    at_install = [t for s, t in elapsed.items() if s <= int(last["steps"])]
    scale_h = float(last["minutes"]) / 60 / max(at_install) * 3600 if at_install and max(at_install) > 0 else 1.0
    rows = []
    if vals and vals[0].get("base_psnr") is not None:
        base = vals[0]["base_psnr"]
        rows.append((before_h, before_steps, base, base - vals[0]["bicubic_psnr"]))
    for e in vals:
        t = max((s for s in elapsed if s <= e["step"]), default=None)  # the closest logged time at or before it
        hours = before_h + (elapsed[t] / 3600 * scale_h if t is not None else 0.0)
        rows.append((hours, before_steps + e["step"], e["psnr"], e["psnr"] - e["bicubic_psnr"]))
    return rows


def curve_table(rows: Sequence[tuple[float, int, float, float]], at_most: int | None = None) -> list[str]:
    """:func:`validation_curve` as a Markdown table; with ``at_most``, evenly spaced rows and always the last."""
    if at_most and len(rows) > at_most:
        every = -(-len(rows) // (at_most - 1))
        rows = list(rows[::every]) + ([rows[-1]] if (len(rows) - 1) % every else [])
    return markdown_table(
        ("training hours (total)", "steps (total)", "validation PSNR (dB)", "gain over bicubic"),
        [(f"{h:.2f}", f"{s:,}", f"{p:.3f}", f"{g:+.2f}") for h, s, p, g in rows],
    )


def _cell(r: dict) -> str:
    return f"{r['psnr']:.2f} / {r['ssim']:.4f}"


def shipped_card(
    scale: int,
    photo: bool,
    results: dict,
    history: list[dict],
    hparams: dict,
    paper_results: dict | None = None,
    *,
    photo_model_shipped: bool,
    credit_lines: Sequence[str],
    curve: Sequence[tuple[float, int, float, float]] = (),
) -> str:
    """The model card: what it is for (for photographers), the test tables, then every training round.

    ``history``: the rounds (``.history.json``); ``paper_results``: the paper model's results on the photo
    inputs (a photo card's JPEG table); ``photo_model_shipped``: whether ``mlrn-x{scale}-photo`` ships (a
    paper card then points camera JPEGs to it); ``credit_lines``: :func:`credits` of OpenPhotos.
    """
    name = model_name(scale, photo)
    new_rounds = any(h.get("val_psnr") is not None for h in history)  # rounds selected on the validation split
    set5_rounds = [i for i, h in enumerate(history, 1) if h.get("val_psnr") is None]
    s14 = results["Set14"]
    gain14 = s14["model"]["psnr"] - s14["bicubic"]["psnr"]
    lines = [f"# {name}", ""]
    if photo:
        q85 = results["Set14 jpeg:85"]
        lines += [
            f"**For camera and phone JPEGs, enlarged {scale}x.** Trained on inputs that look like what "
            "cameras write (slightly soft, a little sensor noise, JPEG compression with 4:2:0 colour), so "
            "it sharpens detail without sharpening the JPEG blocks and noise. On the Set14 test photos saved "
            f"as JPEG quality 85 it is {q85['model']['psnr'] - q85['bicubic']['psnr']:+.2f} dB sharper "
            "than plain (bicubic) enlargement"
            + (
                f" and {q85['model']['psnr'] - paper_results['Set14 jpeg:85']['model']['psnr']:+.2f} dB "
                f"against the built-in model for lossless files (mlrn-x{scale})"
                if paper_results
                else ""
            )
            + f'. Model "Auto" uses it for JPEG files below quality {_near_lossless(scale)} and for HEIC files; '
            f"for PNG/TIFF files and nearly lossless JPEGs, mlrn-x{scale} is better.",
            "",
        ]
    else:
        lines += [
            f"**The built-in model for enlarging photos {scale}x** from lossless files (PNG, TIFF, "
            f"raw conversions). On the Set14 test photos it is {gain14:+.2f} dB sharper than plain (bicubic) "
            "enlargement."
            + (
                f" For camera JPEGs below quality {_near_lossless(scale)}, mlrn-x{scale}-photo is better "
                '(model "Auto" picks it).'
                if photo_model_shipped
                else ' It is also what model "Auto" uses for camera JPEGs at this scale (there is no '
                f"mlrn-x{scale}-photo yet)."
            ),
            "",
        ]
    lines += [
        "## How sharp it is",
        "",
        "Sharpness is measured as PSNR in dB: how close the enlargement of a shrunk test photo comes to the "
        "original (higher is closer; about +0.1 dB is the smallest difference an eye sees at 100%, +1 dB is "
        "plainly visible), beside SSIM (0 to 1, how well the structure is kept). The test photos are the "
        "standard Set5 and Set14 sets, which no model here trained on"
        + (
            "."
            if not set5_rounds
            else " (Set5 chose the checkpoints of round"
            + ("s " if len(set5_rounds) > 1 else " ")
            + ", ".join(map(str, set5_rounds))
            + ", before the validation split existed)."
        )
        + " The last two columns are what the MLRN paper and IMDN, a larger published network, report.",
        "",
    ]
    rows = []
    for set_name in ("Set5", "Set14"):
        b, m = results[set_name]["bicubic"], results[set_name]["model"]
        pp, ps = PAPER[scale][set_name]
        imdn = f"{IMDN_SET14[scale]:.2f}" if set_name == "Set14" else ""
        rows.append((set_name, _cell(b), _cell(m), f"{m['psnr'] - b['psnr']:+.2f} dB", f"{pp:.2f} / {ps:.4f}", imdn))
    lines += markdown_table(
        ("test photos", "bicubic (plain enlargement)", "this model", "gain", "MLRN paper", "IMDN"), rows
    )
    lines += [
        "",
        "Technical details: PSNR / SSIM on the Y channel, border = scale, the shrunk photo made by MATLAB's "
        f"bicubic (docs/EVALUATION.md), measured when these weights were installed; `mlrn bench FOLDER -s {scale} "
        f"--model {name}` on the Set5 or Set14 folder gives the same figures.",
    ]
    if photo:
        lines += [
            "",
            "On JPEG inputs, what this model is for: the shrunk Set14 photos saved as JPEGs at quality Q with "
            f"4:2:0 colour, as cameras write them, before enlarging (`mlrn bench FOLDER -s {scale} --degrade "
            "jpeg:Q --model NAME`):",
            "",
        ]
        rows = []
        for spec in PHOTO_TABLE:
            key = "Set14" if spec == "none" else f"Set14 {spec}"
            r = results[key]
            paper_cell = _cell(paper_results[key]["model"]) if paper_results else "n/a"
            label = "lossless" if spec == "none" else "JPEG q" + spec.split(":")[1]
            rows.append((label, _cell(r["bicubic"]), paper_cell, _cell(r["model"])))
        lines += markdown_table(("Set14 input", "bicubic", f"mlrn-x{scale} (paper model)", name), rows)
    v = results["val"]
    lines += [
        "",
        (
            "Validation split (selects the checkpoint and decides installation): "
            if new_rounds
            else "Validation split (what selects checkpoints from now on; measured afterwards here): "
        )
        + DESCRIPTION
        + ("; LR degraded by the camera pipeline from a fixed seed" if photo else "")
        + f". Bicubic {_cell(v['bicubic'])}, this model {_cell(v['model'])}.",
        "",
    ]
    if not photo:
        floor = FLOORS[scale]
        lines += [
            f"Where it stands: Set14 {s14['model']['psnr']:.2f} dB against the project's floor of {floor:.2f}, "
            f"the paper's {PAPER[scale]['Set14'][0]:.2f} and IMDN's {IMDN_SET14[scale]:.2f}. "
            + (
                "The floor is reached."
                if s14["model"]["psnr"] >= floor
                else (
                    f"Below the floor: it is trained further in long campaigns (`python scripts/train_weights.py "
                    f"--campaign --scales {scale}`, each resumed across sessions, on a fast CPU or a GPU); "
                    "docs/results.md extrapolates the training hours to the floor."
                    if history and history[-1].get("campaign")
                    else "Below the floor: these weights come from short CPU rounds; continue them with "
                    "`scripts/train_weights.py` (on a GPU when one is at hand)."
                )
            ),
            "",
        ]
    skip = (
        "with the image-level skip (a bicubic upscale of the input added to the output, so the network "
        "learns the residual)"
        if hparams.get("image_skip")
        else "without the image-level skip"
    )
    kernels = " / ".join(f"{h}x{w}" for h, w in hparams.get("kernels", []))
    gff, rsc = ("on" if hparams.get(k) else "off" for k in ("gff", "rsc"))
    total_steps = sum(int(h["steps"]) for h in history)
    total_min = sum(float(h["minutes"]) for h in history)
    lines += [
        "## How it was made",
        "",
        f"Architecture: the paper's configuration (G = {hparams.get('features')}, N = {hparams.get('blocks')}, "
        f"kernels {kernels}, GFF {gff}, RSC {rsc}), {skip}. 32-bit weights, "
        f"{'two x2 stages' if scale == 4 else 'one sub-pixel stage'} for x{scale}.",
        "",
        f"Compute in total: {total_steps:,} training steps in {total_min / 60:.2f} hours over {len(history)} "
        + ("round" if len(history) == 1 else "rounds")
        + " (below"
        + (", counting only this model's own rounds, not those of the model it was fine-tuned from" if photo else "")
        + (
            ", not counting the training of the mlrn-x2 body a round started from"
            if any(_start(h["init"]) != h["init"] for h in history)
            else ""
        )
        + ").",
        "",
        (
            "Data (recent rounds): `../shared/data/train/{OpenPhotos,Photos15,BSD200,T91,General100}`, patches "
            "drawn in proportion to each image's area, the validation photographs excluded. "
            + (
                "Earlier rounds (see below) used T91, BSD200, General100 and Photos15 only, and selected on Set5. "
                if set5_rounds
                else ""
            )
            if new_rounds
            else "Data: `../shared/data/train/{T91,BSD200,General100,Photos15}`; every round of these weights "
            "predates the validation split and selected its checkpoint on Set5 (so Set5 is not an independent "
            "test for them; Set14 is). The validation split figure is measured on them afterwards. "
        )
        + "DIV2K, the paper's data, is not available here."
        + (
            " LR inputs: "
            + CAMERA.describe()
            + " (a round whose command says `--clean-share S` left that fraction of its samples clean, "
            "MATLAB bicubic only, so lossless inputs keep their detail)."
            if photo
            else ""
        ),
        "",
        "Credits: Photos15 is CC-BY / CC-BY-SA 4.0 photographs whose authors are in the file names "
        "(`../shared/data/SOURCES.md`)"
        + (
            "; OpenPhotos is CC0 / CC-BY / CC-BY-SA photographs (`../shared/data/train/OpenPhotos/SOURCES.md`), "
            "and its CC-BY and CC-BY-SA photographs are by:"
            if new_rounds or photo
            else "."
        ),
        "",
    ]
    if new_rounds or photo:
        lines += [f"- {c}" for c in credit_lines]
    if len(curve) > 1:
        lines += [
            "",
            "## Validation against training hours",
            "",
            "The validation split's PSNR during the last round, against the training hours and steps of all rounds "
            f"(`python scripts/training_curve.py {name}` prints every validation). The first row is the start of "
            f"the last round, before its first step: {_start(history[-1]['init'])}.",
            "",
            *curve_table(curve, at_most=12),
        ]
    lines += ["", "## Training rounds (each continues from the previous weights)", ""]
    for i, h in enumerate(history, 1):
        lines += [
            f"### Round {i}: {h['date']}"
            + (
                f" (one training campaign since {h['campaign']['since']}, {h['campaign']['sessions']} "
                + ("session" if h["campaign"]["sessions"] == 1 else "sessions")
                + " so far; the figures are its totals)"
                if h.get("campaign")
                else ""
            ),
            "",
            f"- Command: `{h['command']}`",
            f"- Hardware: {h['device']}; {h['steps']} steps in {h['minutes']:.1f} min",
            f"- Start: {_start(h['init'])}",
        ]
        if h.get("val_psnr") is not None:
            lines.append(f"- Validation split after this round: {h['val_psnr']:.3f} dB")
        if h.get("set5_psnr") is not None:
            lines.append(
                f"- Set5 after this round: {h['set5_psnr']:.3f} dB"
                + (f", Set14 {h['set14_psnr']:.3f} dB" if h.get("set14_psnr") is not None else "")
            )
        lines.append("")
    return "\n".join(lines) + "\n"
