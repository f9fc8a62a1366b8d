"""Screenshots of a real wizard run and of Manage Models: docs/wizard-result.png, docs/manage-models.png.

    python scripts/screenshot_wizard.py [--steps 30] [--photos ../shared/data/train/Photos15]

In a throw-away MLRN_HOME, the fine-tuning wizard is driven like a user would: a folder of photos (copies
of ``--photos`` at most 640 px long, so a CPU run stays short), the built-in x2 model as the base, a step
budget on the CPU, the automatic hold-out, training, then the Result page with its real hold-out scores
and before/after view (``docs/wizard-result.png``, and ``docs/wizard-result-diff.png`` with the difference
shown). Finish saves the model; Manage Models then lists it beside the built-in ones
(``docs/manage-models.png``). Nothing is faked: the figures are what the run measured. Run it under a
display (Xvfb) to see what a user sees, or offscreen.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "train" / "Photos15"


def _wait(app, condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def _small_copies(src: Path, dst: Path, long_side: int = 640) -> Path:
    import cv2

    from mlrn_core import data as data_mod
    from mlrn_core import imageio

    dst.mkdir(parents=True, exist_ok=True)
    for path in data_mod.iter_image_files([src]):
        hr = data_mod.load_hr(path)
        f = min(1.0, long_side / max(hr.shape[:2]))
        hr = cv2.resize(hr, (round(hr.shape[1] * f), round(hr.shape[0] * f)), interpolation=cv2.INTER_AREA)
        imageio.write_image(imageio.picture_from_array(hr), dst / f"{path.stem}.png", fmt="png")
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args(argv)
    if not args.photos.is_dir():
        print(f"no screenshots: {args.photos} is not there (pass --photos)")
        return 0
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="mlrn-wizard-shot-"))
    os.environ["MLRN_HOME"] = str(home)
    sys.path.insert(0, str(REPO))

    from PySide6.QtWidgets import QApplication, QWizard

    from app.main import configure_torch_threads
    from app.models_dialog import ModelsDialog
    from app.wizard import TrainingWizard

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    configure_torch_threads()
    photos = _small_copies(args.photos, home / "My landscapes")

    w = TrainingWizard(scale=2, base_model="mlrn-x2")
    w.show()
    w.photos_page.add_folders([photos])
    if not _wait(app, w.photos_page.isComplete, 300):
        print("the scan did not finish", file=sys.stderr)
        return 1
    w.next()
    sp = w.setup_page
    sp.device_combo.setCurrentIndex(sp.device_combo.findData("cpu"))
    sp.steps_radio.setChecked(True)
    sp.steps_spin.setValue(args.steps)
    sp.val_every_spin.setValue(max(1, args.steps // 3))
    _wait(app, lambda: not sp.measuring and "measured" in sp.estimate_label.text(), 300)
    w.next()  # hold-out: automatic
    w.button(QWizard.WizardButton.CommitButton).click()  # Start training
    t0 = time.monotonic()
    if not _wait(app, w.training_page.isComplete, 3600):
        print("training did not finish", file=sys.stderr)
        return 1
    print(f"trained {args.steps} steps in {time.monotonic() - t0:.0f} s")
    w.next()
    rp = w.result_page
    if not _wait(app, rp.isComplete, 1800) or rp.result is None:
        print("the hold-out could not be scored", file=sys.stderr)
        return 1
    _wait(app, lambda: False, 0.5)
    args.out.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(args.out / "wizard-result.png"))
    rp.compare.difference_check.setChecked(True)
    _wait(app, lambda: False, 0.3)
    rp.compare.grab().save(str(args.out / "wizard-result-diff.png"))
    rp.compare.difference_check.setChecked(False)
    print(rp.verdict_label.text())
    w.button(QWizard.WizardButton.FinishButton).click()
    _wait(app, lambda: False, 0.5)

    dlg = ModelsDialog(select=w.state.name)
    dlg.show()
    _wait(app, lambda: False, 0.5)
    dlg.grab().save(str(args.out / "manage-models.png"))
    print(
        f"wrote {args.out / 'wizard-result.png'}, {args.out / 'wizard-result-diff.png'}, "
        f"{args.out / 'manage-models.png'} (MLRN_HOME {home})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
