"""Terminal output and exit codes shared by the ``mlrn`` commands, and the one duration format.

No other ``mlrn_core`` module is imported here, so the CLI, batch and the app can all use it without
an import circle (``batch -> cli -> cli_upscale -> batch`` was one).
"""

from __future__ import annotations

import sys
import time

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Progress:
    """A one-line progress display on a terminal; occasional plain lines when redirected."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self._last > 0.1:
                pad = max(0, self._width - len(text))
                self.stream.write("\r" + text + " " * pad)
                self.stream.flush()
                self._width = len(text)
                self._last = now
        elif force or now - self._last > 10:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last = now

    def line(self, text: str) -> None:
        """A permanent line (ends the current progress line first)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def bar(fraction: float, width: int = 24) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def plural(n: int, word: str) -> str:
    """'1 file', '3 files', '0 files': a count with its noun in the right number."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_steps(n: float) -> str:
    """A step count for people: '12,500', or '1.2 M' from a million on."""
    return f"{int(n):,}" if n < 1e6 else f"{n / 1e6:.1f} M"
