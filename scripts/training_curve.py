"""The validation-PSNR curve of a shipped model against its total training hours (the weights issue asks for it).

``python scripts/training_curve.py mlrn-x2`` reads ``training/records/mlrn-x2.history.json`` (every round:
steps and minutes) and ``mlrn-x2.events.jsonl`` (the validations of the last installed round, on the
validation split) and prints a Markdown table: total training hours so far, steps so far, validation PSNR
and the gain over bicubic on the split. Rounds from before the validation split (which selected on Set5)
only add to the hours; the first point is the start of the last round (its warm-start model's score).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from release.cards import curve_table, validation_curve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a shipped model name, e.g. mlrn-x2")
    a = ap.parse_args()
    folder = REPO / "training" / "records"
    history = json.loads((folder / f"{a.model}.history.json").read_text())
    events = [json.loads(line) for line in (folder / f"{a.model}.events.jsonl").read_text().splitlines() if line]
    total_h = sum(float(h["minutes"]) for h in history) / 60
    print(
        f"{a.model}: {len(history)} rounds, {sum(int(h['steps']) for h in history):,} steps, "
        f"{total_h:.2f} h in total; last round: `{history[-1]['command']}`\n"
    )
    print("\n".join(curve_table(validation_curve(history, events))))


if __name__ == "__main__":
    main()
