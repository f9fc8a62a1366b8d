"""XMP and IPTC through pyexiv2 (libexiv2): the lock its XMP toolkit needs and reading a file's packets."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

try:
    import pyexiv2

    pyexiv2.set_log_level(4)  # exiv2 prints warnings on stderr otherwise; failures still raise
except ImportError:  # pragma: no cover - a dependency; without it XMP/IPTC are not carried over
    pyexiv2 = None

log = logging.getLogger("mlrn_core.imageio")
_exiv2_lock = threading.Lock()  # libexiv2's XMP toolkit is not safe to use from two threads at once


def _exiv2_path_ok(p: Path) -> bool:
    """pyexiv2 opens files by UTF-8 name (avoids a copy of the bytes); odd byte names go through memory."""
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return p.is_file()


def _read_xmp_iptc(p: Path, data: bytes) -> tuple[str | None, dict[str, object] | None]:
    """The XMP packet and the IPTC datasets of a file (None, None without pyexiv2 or when absent)."""
    if pyexiv2 is None:
        return None, None
    try:
        with _exiv2_lock:
            meta = pyexiv2.Image(str(p)) if _exiv2_path_ok(p) else pyexiv2.ImageData(data)
            try:
                xmp = meta.read_raw_xmp() or None
                iptc = meta.read_iptc() or None
            finally:
                meta.close()
    except Exception as exc:  # noqa: BLE001 - damaged metadata must not make the photo unreadable
        log.warning("%s: XMP/IPTC metadata could not be read and is not kept (%s)", p.name, exc)
        return None, None
    return xmp, iptc
