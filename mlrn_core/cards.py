"""The one builder of a user model's card (the Markdown file next to it, shown in Manage Models), and the
Markdown table renderer every model card uses (:func:`markdown_table`).

``mlrn train --save-as`` writes the trainer's card; the wizard writes the same card with its hold-out
tables and verdict added (:class:`CardTable`, ``notes``). The shipped models' cards (``resources/models``,
written by ``scripts/train_weights.py``) have their own builder, :mod:`release.cards`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlrn_core.metrics import Score
from mlrn_core.model_summary import card_lead


class TrainConfig(Protocol):
    """The fields of :class:`mlrn_core.trainer.TrainConfig` a card shows (no import: trainer imports cards)."""

    jpeg_quality: tuple[int, int] | None
    noise_sigma: float
    init: str | None
    batch: int
    patch: int
    lr: float
    schedule: str

    def degradation(self) -> Any: ...


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table's lines: the header, the rule and one line per row; cells as given (``""`` is empty)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


SCORE_HEADER = ("", "PSNR (Y)", "SSIM")  # the user card's score tables


@dataclass(frozen=True)
class CardTable:
    """A titled table of PSNR/SSIM rows: (label, score)."""

    title: str
    intro: str
    rows: Sequence[tuple[str, Score]]

    def markdown(self) -> str:
        rows = [(label, f"{s.psnr:.2f} dB", f"{s.ssim:.4f}") for label, s in self.rows]
        table = "\n".join(markdown_table(SCORE_HEADER, rows))
        return f"\n## {self.title}\n\n{self.intro}\n\n{table}\n"


def model_card(
    *,
    name,
    scale,
    base,
    data,
    steps,
    seconds,
    device,
    val_psnr,
    val_ssim,
    bicubic_psnr,
    base_psnr,
    config: TrainConfig,
    bicubic_ssim=None,
    degraded_inputs: bool | None = None,
    tables: Sequence[CardTable] = (),
    notes: Sequence[str] = (),
    lead: str | None = None,
) -> str:
    """The Markdown card written next to a user model (by ``mlrn train --save-as`` and by the wizard): a lead
    paragraph for photographers, then the technical details.

    ``degraded_inputs``: whether the scores were measured on LR inputs with the training degradation (what
    the trainer validates on when one is set); ``None`` means "as the trainer did", i.e. when ``config`` has one.
    ``tables`` (more score tables, e.g. the wizard's hold-out on clean and on camera-JPEG inputs) and
    ``notes`` (paragraphs, e.g. the verdict) follow the card's own table. ``lead``: the opening paragraph
    (default: :func:`mlrn_core.model_summary.card_lead` from these figures).
    """
    if degraded_inputs is None:
        degraded_inputs = config.degradation().active
    if lead is None:
        ref, ref_psnr = (config.init, base_psnr) if config.init else ("bicubic", bicubic_psnr)
        gain = val_psnr - ref_psnr if val_psnr is not None and ref_psnr is not None else None
        lead = card_lead(
            name=name,
            scale=scale,
            base=config.init,
            gain_db=gain,
            reference=str(ref),
            photos=int(data.get("images", 0)),
            held_out=int(data.get("val_images", 0)),
            degraded=config.degradation().active,
        )
    protocol = "MATLAB bicubic LR, Y channel, border = scale"
    if degraded_inputs:
        protocol = (
            "MATLAB bicubic LR, then the training degradation drawn once per image from a fixed seed, "
            "Y channel, border = scale"
        )

    def f(v, unit=" dB"):
        return "n/a" if v is None else f"{v:.2f}{unit}"

    verdict = ""
    if val_psnr is not None and base_psnr is not None:
        gain = val_psnr - base_psnr
        verdict = (
            f"\n**{'Better' if gain > 0 else 'Not better'} than the base model on the hold-out: {gain:+.2f} dB.**\n"
        )
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    scores = "\n".join(
        markdown_table(
            SCORE_HEADER,
            [
                ("bicubic", f(bicubic_psnr), "n/a" if bicubic_ssim is None else f"{bicubic_ssim:.4f}"),
                ("base model", f(base_psnr), ""),
                ("this model", f(val_psnr), "n/a" if val_ssim is None else f"{val_ssim:.4f}"),
            ],
        )
    )
    text = f"""# {name}

{lead}

## Technical details

MLRN x{scale}, fine-tuned with MLRN Studio on {when}.
{verdict}
{scores}

Measured on the hold-out/validation images ({data.get("val_images", 0)}) with the protocol of
EVALUATION.md ({protocol}).

- Base model: {base}
- Data: {", ".join(data.get("folders", []))} ({data.get("images", 0)} images,
  {len(data.get("skipped", []))} skipped, {len(data.get("excluded", []))} held out)
- LR inputs: {config.degradation().describe()}
- Steps: {steps} (batch {config.batch}, LR patch {config.patch} px, lr {config.lr}, {config.schedule})
- Time: {seconds / 60:.1f} min on {device}
"""
    for table in tables:
        text += table.markdown()
    for note in notes:
        text += f"\n{note}\n"
    return text
