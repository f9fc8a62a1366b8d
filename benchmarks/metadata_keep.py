"""Which photographer metadata survives a write: Pillow alone against pyexiv2 (what mlrn_core.imageio uses).

    python benchmarks/metadata_keep.py

Makes a Lightroom-like JPEG (EXIF, ICC, XMP keywords/rating/copyright, IPTC keywords/by-line/caption),
then writes its pixels to JPEG, PNG, TIFF, WebP, HEIC and AVIF twice: (a) with what Pillow's own savers
accept (``exif=``, ``icc_profile=``, ``xmp=``; Pillow has no IPTC writer), and (b) with
:func:`mlrn_core.imageio.write_image`, which adds XMP and IPTC through pyexiv2. Every output is read back
with pyexiv2 and a table says, per format, whether the XMP keywords, the rating, the IPTC keywords and the
by-line (in IPTC, or in the XMP for formats without IPTC) survived, and how long the pyexiv2 step took.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from mlrn_core import imageio  # noqa: E402
from tests import hostile_corpus as corpus  # noqa: E402

FORMATS = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF", "webp": "WEBP", "heic": "HEIF", "avif": "AVIF"}


def survived(path: Path, ext: str) -> dict[str, str]:
    xmp, iptc = corpus.read_xmp_iptc(path)
    has_iptc_block = ext in ("jpg", "png", "tif")
    iptc_fields = (
        iptc.get("Iptc.Application2.Byline") == corpus.IPTC_BYLINE
        and iptc.get("Iptc.Application2.Caption") == corpus.IPTC_CAPTION
        if has_iptc_block
        else xmp.get("Xmp.dc.creator") == corpus.IPTC_BYLINE
        and xmp.get("Xmp.dc.description") == {'lang="x-default"': corpus.IPTC_CAPTION}
    )
    yes = {True: "yes", False: "no"}
    return {
        "XMP keywords": yes[xmp.get("Xmp.dc.subject") == corpus.KEYWORDS],
        "rating": yes[xmp.get("Xmp.xmp.Rating") == corpus.RATING],
        "copyright": yes[xmp.get("Xmp.dc.rights") == {'lang="x-default"': corpus.COPYRIGHT}],
        "IPTC by-line+caption": yes[iptc_fields] + ("" if has_iptc_block else "(xmp)"),
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = corpus.photo_with_xmp_iptc(folder / "lightroom.jpg", 400, 600)
        picture = imageio.read_image(src)
        with Image.open(src) as im:
            xmp_packet = im.info.get("xmp")
        rows = []
        for ext, pil_format in FORMATS.items():
            a = folder / f"pillow.{ext}"
            buf = io.BytesIO()
            kw = {"exif": picture.exif, "icc_profile": picture.icc_profile, "xmp": xmp_packet}
            Image.fromarray(imageio.picture_to_uint8_rgb(picture)).save(buf, pil_format, **kw)
            a.write_bytes(buf.getvalue())
            b = imageio.write_image(picture, folder / f"mlrn.{ext}")
            times = []
            for k in range(5):  # the pyexiv2 step alone, on a copy of Pillow's file
                copy = folder / f"copy{k}.{ext}"
                copy.write_bytes(a.read_bytes())
                t0 = time.perf_counter()
                imageio._write_xmp_iptc(copy, "tiff" if ext == "tif" else "jpg" if ext == "jpg" else ext, picture)
                times.append(time.perf_counter() - t0)
            ms = sorted(times)[2] * 1000 if ext not in ("heic", "avif") else None
            rows.append((ext, survived(a, ext), survived(b, ext), ms))
    keys = list(rows[0][1])
    print(f"{'format':<7}" + "".join(f"{k + ' (P/X)':>28}" for k in keys) + f"{'exiv2 ms':>10}")
    for ext, pil, ours, ms in rows:
        cells = "".join(f"{pil[k] + ' / ' + ours[k]:>28}" for k in keys)
        shown = f"{ms:.1f}" if ms is not None else "encoder"
        print(f"{ext:<7}{cells}{shown:>10}")
    print(
        "P = Pillow's savers alone (exif=, icc_profile=, xmp=), X = mlrn_core.imageio.write_image (pyexiv2);\n"
        "(xmp): the format has no IPTC block, the fields are carried in the XMP; exiv2 ms: median of 5 runs of\n"
        "the pyexiv2 step on a 600x400 file ('encoder': HEIC/AVIF get the merged XMP through the encoder)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
