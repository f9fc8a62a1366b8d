"""Saving the result from the main window: the name suggested, the save dialog, and what gets written.

The file-name and format rules are plain functions (no window needed); :func:`ask_save_path` is the
dialog loop that refuses a name that cannot be used before asking whether to replace an existing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.session import same_file
from mlrn_core.imageio import FORMAT_EXTENSIONS, ImageIOError, Picture, output_format_for, same_format

SAVE_FILTERS = {
    "png": "PNG image (*.png)",
    "jpg": "JPEG image (*.jpg *.jpeg)",
    "tiff": "TIFF image (*.tif *.tiff)",
    "webp": "WebP image (*.webp)",
    "bmp": "BMP image (*.bmp)",
    "heic": "HEIC image (*.heic)",
    "avif": "AVIF image (*.avif)",
}
_QUALITY_FORMATS = ("jpg", "webp", "heic", "avif")  # the formats the quality setting applies to
_SIXTEEN_BIT_FORMATS = ("png", "tiff")  # the formats that can keep a 16-bit photo 16-bit


class SaveOptions(NamedTuple):
    """What :meth:`app.session.RenderSession.save` is asked to write."""

    target: Path
    fmt: str
    quality: int | None  # None: the format has no quality setting
    bits: int


def export_format(choice: str, source: Picture | None) -> str:
    """The panel's format choice, with "same" resolved to the opened photo's format (PNG when none is open)."""
    if choice != "same":
        return choice
    return same_format(source.source_format) if source is not None else "png"


def export_controls(choice: str, source: Picture | None) -> tuple[bool, bool]:
    """Whether the quality setting and "keep 16 bit" apply when saving ``source`` as ``choice``."""
    fmt = export_format(choice, source)
    lossless = choice == "same" and source is not None and source.lossless_webp  # kept lossless: no quality
    return (
        fmt in _QUALITY_FORMATS and not lossless,
        source is not None and source.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS,
    )


def with_extension(target: Path, fmt: str) -> Path:
    """``target`` as typed, or with ``fmt``'s extension when the name has none."""
    return target if target.suffix else target.with_suffix(FORMAT_EXTENSIONS.get(fmt, ".png"))


def default_save_path(source: Path, last_folder: str, fmt: str, scale: int) -> Path:
    """``<stem>_x<scale>.<ext>`` (the suffix Batch Export and mlrn upscale use) in the last folder saved to,
    or next to the source when there is none (or it is gone)."""
    folder = Path(last_folder) if last_folder else source.parent
    if not folder.is_dir():
        folder = source.parent
    return folder / f"{source.stem}_x{scale}{FORMAT_EXTENSIONS.get(fmt, '.png')}"


def save_problem(source: Path, target: Path) -> str | None:
    """Why the result of ``source`` cannot be saved as ``target`` (the original, an unknown format), or None."""
    if same_file(source, target):
        return f"'{target.name}' is the photo you opened. Originals are never overwritten: choose another name."
    try:
        output_format_for(target)
    except ImageIOError as exc:
        return str(exc)
    return None


def save_options(path: Path, fmt: str, quality: int | None, keep_16bit: bool, source_bits: int) -> SaveOptions:
    """The file, format, quality and bit depth to write; the format follows the name (ImageIOError if unknown).

    ``fmt`` gives the extension of a name without one; quality only for formats that have it (None: the
    writer's default, which keeps a lossless WebP lossless); 16 bits only
    when asked for, the source has them and the format can hold them."""
    target = with_extension(path, fmt)
    out_fmt = output_format_for(target)
    sixteen = keep_16bit and source_bits == 16 and out_fmt in _SIXTEEN_BIT_FORMATS
    return SaveOptions(target, out_fmt, quality if out_fmt in _QUALITY_FORMATS else None, 16 if sixteen else 8)


def ask_save_path(parent: QWidget, source: Path, start: Path, fmt: str) -> Path | None:
    """The save dialog. A name that cannot be used (the original photo, an unknown format) is refused with
    the reason before anything is asked, and the dialog opens again; replacing a file is asked after."""
    start_name = str(start)
    filters, selected = ";;".join(SAVE_FILTERS.values()), SAVE_FILTERS.get(fmt, SAVE_FILTERS["png"])
    while True:
        name, _filter = QFileDialog.getSaveFileName(
            parent, "Save result", start_name, filters, selected, QFileDialog.Option.DontConfirmOverwrite
        )
        if not name:
            return None
        target = with_extension(Path(name), fmt)
        start_name = str(target)
        problem = save_problem(source, target)
        if problem is not None:
            QMessageBox.warning(parent, "Cannot save there", problem)
            continue
        if target.exists():
            question = f"'{target.name}' already exists in {target.parent}. Replace it?"
            if QMessageBox.question(parent, "Replace file", question) != QMessageBox.StandardButton.Yes:
                continue
        return target
