"""Render MLRN Studio's main window with a real photo to a PNG (docs/screenshot.png), offscreen.

    python scripts/screenshot.py                       # Set14 baboon, the built-in x2 model if shipped
    python scripts/screenshot.py --model path/to/model.pt --zoom 200 --center 0.5,0.3
    python scripts/screenshot.py --empty docs/empty.png   # the empty state only
    python scripts/screenshot.py --quality best           # with Quality "Best" (the self-ensemble)

The window uses default settings in a throwaway MLRN_HOME, so the screenshot never depends on (or
changes) the user's own settings. The picture is taken once the MLRN result has fully rendered; with
no model for the scale it shows the "no weights yet" state, which is what a user would see. Exits 0
with a note when the image is not there (the shared data folder is optional).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "bench" / "Set14" / "baboon.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="photo to show (default: Set14 baboon)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png", help="PNG to write")
    parser.add_argument("--model", default=None, help="model name or file (default: the built-in one)")
    parser.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--mode", default="side", choices=("side", "split", "single"))
    parser.add_argument("--zoom", default="200", help="'fit' or a percentage (default 200)")
    parser.add_argument("--center", default="0.5,0.5", help="view centre as x,y fractions of the image")
    parser.add_argument("--size", default="1440x900", help="window size WxH")
    parser.add_argument("--empty", type=Path, default=None, help="only write the empty state to this PNG")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the render")
    parser.add_argument("--dark", action="store_true", help="use a dark palette (to check dark-mode legibility)")
    parser.add_argument("--quality", default="normal", choices=("normal", "best"), help="the Quality setting")
    parser.add_argument(
        "--open-list",
        choices=("precision", "device"),
        help="open that list of the side panel before the picture, and take the whole screen (under Xvfb with "
        "QT_QPA_PLATFORM=xcb: a list is a window of its own)",
    )
    return parser


def _dark_palette():
    """A dark palette like the one a dark system theme gives Fusion (offscreen has no system theme)."""
    from PySide6.QtGui import QColor, QPalette

    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.AlternateBase: "#2b2b2b",
        QPalette.ColorRole.ToolTipBase: "#3a3a2a",
        QPalette.ColorRole.ToolTipText: "#f0f0e0",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.Highlight: "#2f6ebf",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Mid: "#5a5a5a",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return pal


def _wait(app, condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["MLRN_HOME"] = tempfile.mkdtemp(prefix="mlrn-screenshot-")
    sys.path.insert(0, str(REPO))

    from PySide6.QtWidgets import QApplication

    from app.main import configure_torch_threads
    from app.main_window import MainWindow
    from app.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    if args.dark:
        app.setPalette(_dark_palette())
    configure_torch_threads()
    width, height = (int(v) for v in args.size.lower().split("x"))
    window = MainWindow(Settings(scale=args.scale, compare_mode=args.mode, upscale_quality=args.quality))
    window.resize(width, height)
    window.show()
    _wait(app, lambda: False, 0.3)

    if args.empty is not None:
        args.empty.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.empty))
        print(f"wrote {args.empty} (empty state)")
        window.close()
        return 0
    if not args.image.is_file():
        print(f"no screenshot: {args.image} is not there (pass --image)")
        window.close()
        return 0
    if args.model:
        if Path(args.model).expanduser().exists():
            if not window.add_model_file(Path(args.model).expanduser()):
                print(f"cannot use {args.model}: {window.messages.current}", file=sys.stderr)
                return 2
        elif not window.panel.select_model(args.model):
            print(f"no model named {args.model!r}", file=sys.stderr)
            return 2

    window.open_paths([args.image])
    if not _wait(app, lambda: window.current is not None or window.messages.errors, 120):
        print("timed out reading the image", file=sys.stderr)
        return 1
    if window.messages.errors:
        print(window.messages.errors[-1], file=sys.stderr)
        return 1
    t0 = time.monotonic()
    done = _wait(app, lambda: not window.busy and not window.right_image.pending, args.timeout)
    if not done:
        print("timed out waiting for the render", file=sys.stderr)
        return 1
    print(f"rendered in {time.monotonic() - t0:.1f} s")
    cx, cy = (float(v) for v in args.center.split(","))
    if args.zoom != "fit":
        window.set_zoom_percent(float(args.zoom))
        window.view_state.center_on(cx * window.view_state.image_w, cy * window.view_state.image_h)
    window.messages.clear()
    _wait(app, lambda: False, 0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.open_list:
        combo = window.panel.precision_combo if args.open_list == "precision" else window.panel.device_combo
        combo.showPopup()
        _wait(app, lambda: False, 0.5)
        app.primaryScreen().grabWindow(0).save(str(args.out))
        print(f"wrote {args.out}")
        window.close()
        return 0
    window.grab().save(str(args.out))
    print(f"wrote {args.out}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
