"""Metadata through pyexiv2 (libexiv2): the lock its XMP toolkit needs, reading a file's XMP and IPTC, writing
them into an encoded file, and EXIF into a TIFF (whose pixels tifffile wrote)."""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

from PIL import Image

from mlrn_core.imageio.base import Picture

try:
    import pyexiv2

    pyexiv2.set_log_level(4)  # exiv2 prints warnings on stderr otherwise; failures still raise
except ImportError:  # pragma: no cover - a dependency; without it XMP/IPTC are not carried over
    pyexiv2 = None

log = logging.getLogger("mlrn_core.imageio")
_NO_IPTC_FORMATS = frozenset({"webp", "heic", "avif"})  # no IPTC block: IPTC goes into the XMP there
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


def _iptc_as_xmp(iptc: dict[str, object], xmp_keys: set[str]) -> dict[str, object]:
    """IPTC fields exiv2 maps to XMP, for formats without an IPTC block; XMP values already there win."""
    try:
        mapped = pyexiv2.convert_iptc_to_xmp(iptc)
    except Exception as exc:  # noqa: BLE001
        log.warning("IPTC fields could not be converted to XMP (%s)", exc)
        return {}
    return {k: v for k, v in mapped.items() if k not in xmp_keys}


_BLANK_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _merged_xmp(picture: Picture) -> bytes | None:
    """One XMP packet holding the picture's XMP plus its IPTC fields (for HEIC/AVIF, written by the encoder:
    exiv2 cannot write those containers)."""
    if not (picture.xmp or picture.iptc):
        return None
    if pyexiv2 is None or not picture.iptc:
        return picture.xmp.encode("utf-8") if picture.xmp else None
    try:
        with _exiv2_lock:
            meta = pyexiv2.ImageData(_BLANK_PNG)
            try:
                if picture.xmp:
                    meta.modify_raw_xmp(picture.xmp)
                extra = _iptc_as_xmp(picture.iptc, set(meta.read_xmp()))
                if extra:
                    meta.modify_xmp(extra)
                packet = meta.read_raw_xmp()
            finally:
                meta.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("IPTC fields could not be added to the XMP (%s)", exc)
        return picture.xmp.encode("utf-8") if picture.xmp else None
    return packet.encode("utf-8") if packet else None


def _write_xmp_iptc(tmp: Path, fmt: str, picture: Picture) -> None:
    """Add the picture's XMP and IPTC to the encoded file ``tmp`` (in place)."""
    if fmt in ("heic", "avif"):
        return  # written by the encoder (_merged_xmp)
    if not (picture.xmp or picture.iptc) or fmt == "bmp":
        if fmt == "bmp" and (picture.xmp or picture.iptc):
            log.warning("%s: BMP cannot hold XMP/IPTC metadata; they are not written", tmp.name)
        return
    if pyexiv2 is None:
        log.warning("XMP/IPTC metadata not written: the pyexiv2 package is not installed")
        return
    try:
        with _exiv2_lock:
            meta = pyexiv2.Image(str(tmp))
            try:
                xmp_keys: set[str] = set()
                if picture.xmp:
                    meta.modify_raw_xmp(picture.xmp)
                    xmp_keys = set(meta.read_xmp())
                if picture.iptc:
                    if fmt in _NO_IPTC_FORMATS:
                        extra = _iptc_as_xmp(picture.iptc, xmp_keys)
                        if extra:
                            meta.modify_xmp(extra)
                    else:
                        meta.modify_iptc(picture.iptc)
            finally:
                meta.close()
    except Exception as exc:  # noqa: BLE001 - the pixels are fine; say what is missing
        log.warning("XMP/IPTC metadata could not be written (%s); the image is saved without it", exc)


def _write_exif_into_tiff(tmp: Path, exif_data: bytes) -> None:
    """Copy EXIF (``Exif\\0\\0`` + TIFF-structured bytes, as :func:`exif._exif_payload` makes them) into the
    TIFF ``tmp`` in place: libexiv2 writes IFD0's descriptive tags, the Exif sub-IFD (with its Interop IFD)
    and the GPS IFD, and leaves the tags that describe the pixels to the file tifffile wrote."""
    if pyexiv2 is None:
        log.warning("%s: EXIF not written: the pyexiv2 package is not installed", tmp.name)
        return
    carrier = io.BytesIO()  # the EXIF block in the smallest file exiv2 reads it from
    Image.new("L", (1, 1)).save(carrier, format="JPEG", exif=exif_data)
    try:
        with _exiv2_lock:
            source, target = pyexiv2.ImageData(carrier.getvalue()), pyexiv2.Image(str(tmp))
            try:
                source.copy_to_another_image(
                    target, exif=True, iptc=False, xmp=False, comment=False, icc=False, thumbnail=False
                )
            finally:
                source.close()
                target.close()
    except Exception as exc:  # noqa: BLE001 - the pixels are fine; say what is missing
        log.warning("%s: EXIF could not be written into the TIFF and is not kept (%s)", tmp.name, exc)
