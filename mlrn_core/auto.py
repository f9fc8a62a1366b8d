"""The "Auto" model choice: the built-in photo model for lossy camera files, the paper model for the rest.

The built-in paper models (``mlrn-x{s}``) are trained, as published super-resolution networks are, on
clean bicubic downscales; they gain little on camera JPEGs, whose 8x8 blocks, smeared 4:2:0 colour and
sensor noise they have never seen. The photo models (``mlrn-x{s}-photo``, same architecture) are
fine-tuned on camera-degraded inputs and lose a little on clean ones. :func:`choose_model` picks per
input file, from the file's real format (its first bytes, not its name: a JPEG saved as ``.png`` is a
JPEG):

* **photo model** for lossy camera formats: JPEG (and MPO), HEIC/HEIF, AVIF, lossy WebP and
  JPEG-compressed TIFF, except JPEGs saved at so high a quality that they are nearly lossless
  (:data:`PAPER_FROM_JPEG_QUALITY`: the quality is estimated from the file's luminance quantisation table);
* **paper model** for lossless ones: PNG, TIFF (uncompressed, LZW, Deflate, PackBits...), BMP, GIF,
  lossless WebP, and anything not recognised. Auto never picks the photo model for these.

When the photo model for a scale is not installed, lossy inputs fall back to the paper model and the
reason says so. The app (model "Auto", the viewer's caption), Batch Export and ``mlrn upscale --model
auto`` all use this one function; its ``reason`` is the text the user sees. No Qt here.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlrn_core import paths
from mlrn_core.imageio import RAW_EXTENSIONS
from mlrn_core.registry import MODEL_SUFFIX, LoadedModel, ModelError, builtin_name, known_model, load_model

AUTO = "auto"
#: Shown in menus; the tooltip (:func:`describe`) says what Auto does for this scale.
AUTO_LABEL = "Auto"

_HEAD_BYTES = 64
_MAX_CHUNKS = 64  # WebP chunks / TIFF entries / JPEG segments looked at before giving up

#: From this JPEG quality up (IJG scale, estimated from the file's quantisation table), Auto uses the paper
#: model: such a JPEG is nearly lossless, and the paper model is sharper on it than the photo model. Measured
#: on Set14 with ``mlrn bench ../shared/data/bench/Set14 -s S --degrade jpeg:Q --model M`` for both models
#: (docs/results.md, "Photo models and Auto"): the lowest of the measured qualities (88-97) at which the paper
#: model scores at least as well (x2, after the x2 photo campaign's install of 2026-12-07: the paper model
#: leads by 0.005 dB at q94 and 0.078 at q95, the photo model by 0.082 at q93; x4, after the photo campaign's
#: install of 2026-12-07: the paper model leads by 0.052 dB at q96, the photo model by 0.009 at q95).
PAPER_FROM_JPEG_QUALITY = {2: 94, 4: 96}

# The JPEG standard's example luminance table (Annex K), which IJG libjpeg (and most cameras, roughly)
# scale by the quality setting
_STD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def _ijg_table(quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sorted(min(255, max(1, (v * scale + 50) // 100)) for v in _STD_LUMA)


_IJG_TABLES = {q: _ijg_table(q) for q in range(1, 101)}


def jpeg_quality_of_table(table: Iterable[int]) -> int:
    """The IJG quality (1-100) whose luminance table is closest to ``table`` (64 values, any order): exact
    for files written by libjpeg, Pillow, OpenCV and most software, an equivalent for camera tables."""
    values = sorted(int(v) for v in table)
    return min(_IJG_TABLES, key=lambda q: (sum(abs(a - b) for a, b in zip(values, _IJG_TABLES[q])), -q))


# TIFF compression codes whose pixels went through a lossy codec
_LOSSY_TIFF = {6: "JPEG", 7: "JPEG", 34892: "JPEG", 34712: "JPEG 2000", 50001: "WebP", 50002: "JPEG XL"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heif"}
_AVIF_BRANDS = {b"avif", b"avis"}


def photo_name(scale: int) -> str:
    """The built-in photo model's name for ``scale``: ``mlrn-x2-photo``."""
    return f"{builtin_name(scale)}-photo"


def is_auto(spec: str | os.PathLike[str] | None) -> bool:
    """True for the model spec "auto" (any case), as typed on the command line or stored in settings."""
    return spec is not None and str(spec).strip().lower() == AUTO


@dataclass(frozen=True)
class SourceFormat:
    """What a file's first bytes say it is: ``label`` for people ("JPEG", "lossless WebP") and whether
    its pixels went through a lossy codec."""

    label: str
    lossy: bool
    quality: int | None = None  # JPEG: the estimated IJG quality of its luminance table

    @property
    def reason(self) -> str:
        """'JPEG input, quality 85', 'PNG input, lossless', 'unrecognised format'."""
        if self.label == UNKNOWN.label:
            return "format not recognised, treated as lossless"
        if self.quality is not None:
            return f"{self.label} input, quality {self.quality}"
        if self.lossy or "lossless" in self.label:
            return f"{self.label} input"
        return f"{self.label} input, lossless"


UNKNOWN = SourceFormat("unknown", False)
#: Camera RAW files (by extension: their containers are TIFF or vendor formats): developed losslessly.
CAMERA_RAW = SourceFormat("camera RAW", False)


def sniff_format(path: str | os.PathLike[str]) -> SourceFormat:
    """The real format of the file at ``path`` from its header bytes (a few hundred bytes at most are read
    for WebP and TIFF). Unreadable or unrecognised files are :data:`UNKNOWN` (lossless: the paper model)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open, a device would never end
            return UNKNOWN
        if Path(path).suffix.lower() in RAW_EXTENSIONS:
            return CAMERA_RAW
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
            if head[:3] == b"\xff\xd8\xff":
                try:
                    return SourceFormat("JPEG", True, _sniff_jpeg_quality(fh))
                except (OSError, struct.error, ValueError):  # damaged segments: the reader will say so
                    return SourceFormat("JPEG", True)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return SourceFormat("PNG", False)
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                try:
                    return _sniff_tiff(fh, head)
                except (OSError, struct.error):  # a damaged directory: the reader will say so
                    return SourceFormat("TIFF", False)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _sniff_webp(fh)
            if head[4:8] == b"ftyp":
                return _sniff_isobmff(head)
            if head[:2] == b"BM":
                return SourceFormat("BMP", False)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return SourceFormat("GIF", False)
    except (OSError, struct.error):
        pass
    return UNKNOWN


def _sniff_jpeg_quality(fh) -> int | None:
    """The quality of a JPEG's luminance table (id 0), from its DQT segments before the first scan: walks
    the segment headers, seeking over the rest (an EXIF thumbnail is skipped, not read)."""
    fh.seek(2)
    for _ in range(_MAX_CHUNKS):
        header = fh.read(4)
        if len(header) < 4 or header[0] != 0xFF:
            return None
        marker, length = header[1], struct.unpack(">H", header[2:4])[0]
        if marker in (0xDA, 0xD9) or length < 2:  # start of scan / end of image: no luminance table seen
            return None
        if marker != 0xDB:
            fh.seek(length - 2, os.SEEK_CUR)
            continue
        data = fh.read(length - 2)
        while data:
            precision, table_id = data[0] >> 4, data[0] & 15
            n = 128 if precision else 64
            values = data[1 : 1 + n]
            if len(values) < n:
                return None
            if table_id == 0:
                if precision:
                    return jpeg_quality_of_table(struct.unpack(">64H", values))
                return jpeg_quality_of_table(values)
            data = data[1 + n :]
    return None


def _sniff_tiff(fh, head: bytes) -> SourceFormat:
    """TIFF: lossy when the first image's Compression tag (259) names a lossy codec."""
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts, 20-byte entries
    if big:
        (offset,) = struct.unpack(order + "Q", head[8:16])
        fh.seek(offset)
        (count,) = struct.unpack(order + "Q", fh.read(8))
        entry, value_at = 20, 12
    else:
        (offset,) = struct.unpack(order + "I", head[4:8])
        fh.seek(offset)
        (count,) = struct.unpack(order + "H", fh.read(2))
        entry, value_at = 12, 8
    data = fh.read(min(count, 4 * _MAX_CHUNKS) * entry)
    for k in range(len(data) // entry):
        tag, typ = struct.unpack(order + "HH", data[k * entry : k * entry + 4])
        if tag == 259:
            raw = data[k * entry + value_at : k * entry + value_at + 4]
            code = struct.unpack(order + ("H" if typ == 3 else "I"), raw[: 2 if typ == 3 else 4])[0]
            codec = _LOSSY_TIFF.get(code)
            return SourceFormat(f"{codec}-compressed TIFF", True) if codec else SourceFormat("TIFF", False)
    return SourceFormat("TIFF", False)  # no Compression tag: uncompressed


def _sniff_webp(fh) -> SourceFormat:
    """WebP: the bitstream chunk says it: 'VP8 ' is lossy, 'VP8L' lossless (also inside animation frames)."""
    fh.seek(12)
    for _ in range(_MAX_CHUNKS):
        header = fh.read(8)
        if len(header) < 8:
            break
        fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
        if fourcc == b"VP8 ":
            return SourceFormat("lossy WebP", True)
        if fourcc == b"VP8L":
            return SourceFormat("lossless WebP", False)
        if fourcc == b"ANMF":  # an animation frame: 16 bytes of frame header, then its own chunks
            fh.seek(16, os.SEEK_CUR)
            continue
        fh.seek(size + (size & 1), os.SEEK_CUR)
    return SourceFormat("WebP", False)


def _sniff_isobmff(head: bytes) -> SourceFormat:
    """HEIF family (ISO base media file): the 'ftyp' box's brands tell HEIC and AVIF apart."""
    (size,) = struct.unpack(">I", head[:4])
    end = min(max(size, 16), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return SourceFormat("AVIF", True)
    if brands & _HEIC_BRANDS:
        return SourceFormat("HEIC", True)
    if brands & _HEIF_BRANDS:
        return SourceFormat("HEIF", True)
    return UNKNOWN  # a video, a Canon CR3 raw...


@dataclass(frozen=True)
class AutoChoice:
    """The model Auto picked for one input and why (``reason`` is shown to the user)."""

    name: str  # registry name of the built-in model
    path: Path
    scale: int
    source: SourceFormat
    photo: bool  # the photo model was picked
    fallback: bool  # a lossy input, but the photo model is not installed
    reason: str

    @property
    def caption(self) -> str:
        """'mlrn-x2-photo (Auto: JPEG input, quality 85)'."""
        return f"{self.name} (Auto: {self.reason})"


def installed(name: str) -> Path | None:
    """The built-in model file ``name`` when it is installed."""
    path = paths.builtin_models_dir() / f"{name}{MODEL_SUFFIX}"
    return path if path.is_file() else None


def choose_model(source: str | os.PathLike[str] | SourceFormat, scale: int) -> AutoChoice:
    """Auto's model for one input file (or an already sniffed format) at ``scale``.

    Lossy camera formats get the photo model ``mlrn-x{s}-photo`` when it is installed, else the paper model
    ``mlrn-x{s}`` with a reason that says so; lossless formats always get the paper model. Raises
    :class:`~mlrn_core.registry.ModelError` when the model Auto needs is not installed.
    """
    fmt = source if isinstance(source, SourceFormat) else sniff_format(source)
    photo, paper = photo_name(scale), builtin_name(scale)
    photo_path, paper_path = installed(photo), installed(paper)
    if near_lossless(fmt, scale) and paper_path is not None:
        return AutoChoice(paper, paper_path, scale, fmt, False, False, f"{fmt.reason}, nearly lossless")
    if fmt.lossy and photo_path is not None:
        return AutoChoice(photo, photo_path, scale, fmt, True, False, fmt.reason)
    if paper_path is None:
        if fmt.lossy:
            raise ModelError(f"Auto has no x{scale} model: neither {photo} nor {paper} is installed; choose a model")
        raise ModelError(
            f"Auto uses {paper} for lossless files (the photo model {photo} is only for lossy camera files), "
            f"and {paper} is not installed: choose a model"
        )
    if fmt.lossy:
        return AutoChoice(paper, paper_path, scale, fmt, False, True, f"{fmt.reason}; {photo} is not installed")
    return AutoChoice(paper, paper_path, scale, fmt, False, False, fmt.reason)


def near_lossless(fmt: SourceFormat, scale: int) -> bool:
    """A JPEG at or above :data:`PAPER_FROM_JPEG_QUALITY` for ``scale`` (the paper model is sharper there)."""
    limit = PAPER_FROM_JPEG_QUALITY.get(scale)
    return fmt.quality is not None and limit is not None and fmt.quality >= limit


def available(scale: int) -> bool:
    """True when Auto can run at ``scale`` for some input (the paper or the photo model is installed)."""
    return installed(builtin_name(scale)) is not None or installed(photo_name(scale)) is not None


def describe(scale: int) -> str:
    """What Auto does at ``scale`` with the models installed now (for tooltips and help)."""
    photo, paper = photo_name(scale), builtin_name(scale)
    has_photo, has_paper = installed(photo) is not None, installed(paper) is not None
    lossy = "JPEG, HEIC/HEIF, AVIF and lossy WebP files (camera and phone pictures)"
    lossless = "lossless files (PNG, TIFF, BMP, lossless WebP)"
    if has_photo and has_paper:
        limit = PAPER_FROM_JPEG_QUALITY.get(scale)
        near = f" and JPEGs of quality {limit} or more (nearly lossless)" if limit else ""
        return f"Picks the model per image: {photo} for {lossy}, {paper} for {lossless}{near}."
    if has_paper:
        return f"Uses {paper} for every image: the photo model {photo}, for {lossy}, is not installed."
    if has_photo:
        return f"Uses {photo} for {lossy}; {lossless} need {paper}, which is not installed."
    return f"Needs the built-in model {paper} or {photo}; neither is installed."


def camera_base(scale: int) -> str:
    """The model a "match camera JPEGs" fine-tune starts from: the photo model when installed, else the
    paper model."""
    photo = photo_name(scale)
    return photo if installed(photo) is not None else builtin_name(scale)


class ModelCache:
    """Loads each model Auto picks once (a batch needs at most the photo and the paper model).

    ``known``: a model file read before is not read again (:func:`mlrn_core.registry.known_model`), so that a
    run on OpenVINO does not import torch (``mlrn upscale``)."""

    def __init__(self, known: bool = False) -> None:
        self._loaded: dict[Path, LoadedModel] = {}
        self._known = known

    def get(self, choice: AutoChoice) -> LoadedModel:
        key = choice.path.resolve()
        if key not in self._loaded:
            found = known_model(choice.path, choice.scale) if self._known else None
            self._loaded[key] = found or load_model(choice.path, choice.scale)
        return self._loaded[key]

    def load_all(self, choices: Iterable[AutoChoice]) -> dict[str, LoadedModel]:
        """Name -> loaded model for every distinct choice (in the order first seen)."""
        return {c.name: self.get(c) for c in choices}
