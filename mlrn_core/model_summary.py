"""What a model's figures mean, in words a photographer can use: gains on named photos, and a card's lead.

A built-in model is scored on the Set5 benchmark, a fine-tuned model on its own hold-out photos: their
PSNRs come from different images and must never stand side by side (a hold-out of smooth photos scores
50 dB where Set5 scores 37). What is comparable is the gain each model brings over its reference on the
same images, so lists show ``+2.78 dB over bicubic on Set14`` or ``+0.42 dB over mlrn-x2 on your
hold-out photos``, and say which images in every label (:func:`quality`). :func:`card_lead` is the
paragraph that opens the card of a model the user trained: what it is for, how much sharper, on what
kind of photo; the technical table follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# dB of PSNR gain: how a photographer would describe the difference on screen (rough, by experience with
# 100%-crops; a gain below 0.1 dB is not visible)
VISIBLE_DB = 0.1
CLEAR_DB = 1.0


@dataclass(frozen=True)
class Quality:
    """A model's measured gain over a reference on named images."""

    gain_db: float
    reference: str  # "bicubic" or the base model's name
    images: str  # "Set5" or "your hold-out photos"
    psnr: float
    reference_psnr: float

    @property
    def short(self) -> str:
        return f"{self.gain_db:+.2f} dB over {self.reference} on {self.images}"

    @property
    def long(self) -> str:
        return (
            f"{self.psnr:.2f} dB PSNR on {self.images} against {self.reference_psnr:.2f} dB for "
            f"{self.reference} on the same images ({self.gain_db:+.2f} dB). PSNRs measured on different "
            "images cannot be compared with each other; the gains over a reference can, roughly."
        )


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def quality(info: dict[str, Any]) -> Quality | None:
    """The gain a model file's metrics show, or None when they hold no pair measured on the same images."""
    m = info.get("metrics", {}) or {}
    # a photo model is for camera JPEGs: its figure is the one on JPEG inputs (Set14 saved as JPEG q85)
    jpeg, jpeg_bicubic = _num(m.get("set14_jpeg85_psnr")), _num(m.get("set14_jpeg85_bicubic_psnr"))
    if jpeg is not None and jpeg_bicubic is not None:
        return Quality(jpeg - jpeg_bicubic, "bicubic", "Set14 as JPEG q85", jpeg, jpeg_bicubic)
    # a built-in paper model: Set14 (photos of varied content), the figure its card's first paragraph gives
    set14, set14_bicubic = _num(m.get("set14_psnr")), _num(m.get("set14_bicubic_psnr"))
    if set14 is not None and set14_bicubic is not None:
        return Quality(set14 - set14_bicubic, "bicubic", "Set14", set14, set14_bicubic)
    set5, set5_bicubic = _num(m.get("set5_psnr")), _num(m.get("set5_bicubic_psnr"))
    if set5 is not None and set5_bicubic is not None:
        return Quality(set5 - set5_bicubic, "bicubic", "Set5", set5, set5_bicubic)
    val = _num(m.get("val_psnr"))
    if val is None:
        return None
    base, bicubic = _num(m.get("val_base_psnr")), _num(m.get("val_bicubic_psnr"))
    prov = info.get("provenance", {}) or {}
    base_name = (prov.get("base") or {}).get("name") or (prov.get("config") or {}).get("init") or "the base model"
    if base is not None:
        return Quality(val - base, str(base_name), "your hold-out photos", val, base)
    if bicubic is not None:
        return Quality(val - bicubic, "bicubic", "your hold-out photos", val, bicubic)
    return None


def describe_gain(gain_db: float) -> str:
    """How visible a PSNR gain is, in words."""
    if gain_db >= CLEAR_DB:
        return "visibly sharper"
    if gain_db >= VISIBLE_DB:
        return "slightly sharper"
    if gain_db > -VISIBLE_DB:
        return "about as sharp as"
    return "less sharp than"


def _display_name(model: str) -> str:
    """A model name as people say it: a file path becomes its file name without the extension."""
    return Path(model).stem if model.endswith(".pt") or "/" in model or "\\" in model else model


def card_lead(
    *,
    name: str,
    scale: int,
    base: str | None,
    gain_db: float | None,
    reference: str,
    photos: int,
    degraded: bool,
    held_out: int,
) -> str:
    """The paragraph that opens a user model's card: what it is for, how much sharper, on what photos.

    ``gain_db``: the hold-out gain over ``reference`` (the base model, or bicubic from scratch), in the
    inputs the model was trained for (``degraded``: camera-JPEG-like inputs); None when not measured.
    """
    base = _display_name(base) if base else None
    reference = _display_name(reference)
    kind = (
        "camera JPEGs (compressed, slightly noisy)"
        if degraded
        else "clean, well-exposed originals (PNG/TIFF or high-quality JPEG)"
    )
    start = f"a fine-tune of {base}" if base else "a new network trained from scratch"
    lines = [
        f"**{name}** enlarges photos {scale}x (for example for a bigger print or a crop). It is {start} "
        f"on {photos} of your own photos, for {kind} like them."
    ]
    if gain_db is None:
        lines.append(f"It has not been measured on your photos yet, so it is not known whether it beats {reference}.")
    else:
        where = f"on {held_out} of your photos it never trained on"
        if gain_db >= VISIBLE_DB:
            lines.append(f"It is {describe_gain(gain_db)} than {reference} {where} ({gain_db:+.2f} dB).")
        elif gain_db > -VISIBLE_DB:
            lines.append(
                f"It is about as sharp as {reference} {where} ({gain_db:+.2f} dB): no visible "
                f"difference; keep using {reference}."
            )
        else:
            lines.append(f"It is less sharp than {reference} {where} ({gain_db:+.2f} dB): keep using {reference}.")
    other = "clean originals" if degraded else "heavily compressed JPEGs"
    lines.append(
        f"Use it on photos like the ones it learned from; on {other} {base or 'a built-in model'} may do better."
    )
    return " ".join(lines)
