"""The main window's save rules on their own (no window): the suggested name, what is refused, what is written.

The dialog loop itself (refuse, reopen, ask to replace) is driven through the window in test_app.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.save_flow import default_save_path, export_controls, export_format, save_options, save_problem
from mlrn_core.imageio import ImageIOError, picture_from_array


def _picture(fmt: str, bits: int):
    dtype = np.uint16 if bits == 16 else np.uint8
    return dataclasses.replace(picture_from_array(np.zeros((4, 4, 3), dtype), bits), source_format=fmt)


def test_default_save_path_uses_the_last_folder_while_it_exists(tmp_path):
    source = tmp_path / "shoot" / "IMG_1.jpeg"
    source.parent.mkdir()
    last = tmp_path / "exports"
    last.mkdir()
    assert default_save_path(source, str(last), "tiff", 3) == last / "IMG_1_x3.tif"
    assert default_save_path(source, "", "jpg", 2) == source.parent / "IMG_1_x2.jpg"
    last.rmdir()  # a folder saved to before, gone since: next to the photo
    assert default_save_path(source, str(last), "webp", 4) == source.parent / "IMG_1_x4.webp"


def test_export_format_same_follows_the_photo_and_the_controls_follow_the_format():
    jpeg8, tiff16 = _picture("jpg", 8), _picture("tiff", 16)
    assert export_format("same", jpeg8) == "jpg" and export_format("same", None) == "png"
    assert export_format("webp", tiff16) == "webp"
    assert export_controls("same", jpeg8) == (True, False)  # quality for JPEG; an 8-bit photo has no 16 bits
    assert export_controls("same", tiff16) == (False, True)
    assert export_controls("jpg", tiff16) == (True, False)  # JPEG cannot hold 16 bits
    assert export_controls("png", None) == (False, False)
    lossless = dataclasses.replace(_picture("webp", 8), lossless_webp=True)  # kept lossless as the source: no quality
    assert export_controls("same", lossless) == (False, False) and export_controls("webp", lossless) == (True, False)


def test_save_problem_refuses_the_original_under_any_spelling_and_unknown_formats(tmp_path):
    source = tmp_path / "photo.png"
    source.write_bytes(b"original")
    (tmp_path / "sub").mkdir()
    assert "is the photo you opened" in save_problem(source, tmp_path / "sub" / ".." / "photo.png")
    link = tmp_path / "link.png"
    link.symlink_to(source)
    assert "is the photo you opened" in save_problem(source, link)
    assert "unsupported image format 'gif'" in save_problem(source, tmp_path / "out.gif")
    assert save_problem(source, tmp_path / "photo_x2.png") is None


def test_save_options_follow_the_name_and_what_the_format_can_hold(tmp_path):
    opts = save_options(tmp_path / "out", "tiff", 80, True, 16)  # no extension: the export format's
    assert opts == (tmp_path / "out.tif", "tiff", None, 16)
    # the typed extension wins over the panel's format; quality only where the format has one
    assert save_options(tmp_path / "out.jpg", "png", 80, True, 16) == (tmp_path / "out.jpg", "jpg", 80, 8)
    assert save_options(tmp_path / "out.png", "png", 80, True, 8).bits == 8  # an 8-bit photo stays 8-bit
    assert save_options(tmp_path / "out.png", "png", 80, False, 16).bits == 8  # not asked to keep 16 bits
    with pytest.raises(ImageIOError, match="gif"):
        save_options(tmp_path / "out.gif", "png", 80, False, 8)
