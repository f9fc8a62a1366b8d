"""The validation-PSNR curve of a shipped model against its total training hours (the weights issue asks for it).

``python scripts/training_curve.py mlrn-x2`` reads ``resources/models/mlrn-x2.history.json`` (every round:
steps and minutes) and ``mlrn-x2.events.jsonl`` (the validations of the last installed round, on the
validation split) and prints a Markdown table: total training hours so far, steps so far, validation PSNR
and the gain over bicubic on the split. Rounds from before the validation split (which selected on Set5)
only add to the hours; the first point is the start of the last round (its warm-start model's score).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a shipped model name, e.g. mlrn-x2")
    a = ap.parse_args()
    folder = REPO / "resources" / "models"
    history = json.loads((folder / f"{a.model}.history.json").read_text())
    events = [json.loads(line) for line in (folder / f"{a.model}.events.jsonl").read_text().splitlines() if line]
    before_h = sum(float(h["minutes"]) for h in history[:-1]) / 60
    before_steps = sum(int(h["steps"]) for h in history[:-1])
    vals = [e for e in events if e.get("event") == "validation"]
    elapsed = {e["step"]: e["elapsed_s"] for e in events if "elapsed_s" in e}
    last = history[-1]
    # the round's minutes are those of its installed checkpoint (step last["steps"]): scale the logged times to them
    at_install = [t for s, t in elapsed.items() if s <= int(last["steps"])]
    scale_h = float(last["minutes"]) / 60 / max(at_install) * 3600 if at_install and max(at_install) > 0 else 1.0
    print(
        f"{a.model}: {len(history)} rounds, {before_steps + int(last['steps']):,} steps, "
        f"{before_h + float(last['minutes']) / 60:.2f} h in total; last round: `{last['command']}`\n"
    )
    print("| training hours (total) | steps (total) | validation PSNR (dB) | gain over bicubic |")
    print("|---|---|---|---|")
    if vals and vals[0].get("base_psnr") is not None:  # where the last round started: its warm-start model
        base = vals[0]["base_psnr"]
        print(f"| {before_h:.2f} | {before_steps:,} | {base:.3f} | {base - vals[0]['bicubic_psnr']:+.2f} |")
    for e in vals:
        # hours of this round at this validation: the closest logged time at or before its step
        t = max((s for s in elapsed if s <= e["step"]), default=None)
        hours = before_h + (elapsed[t] / 3600 * scale_h if t is not None else 0.0)
        gain = e["psnr"] - e["bicubic_psnr"]
        print(f"| {hours:.2f} | {before_steps + e['step']:,} | {e['psnr']:.3f} | {gain:+.2f} |")


if __name__ == "__main__":
    main()
