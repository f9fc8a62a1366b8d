"""PNG chunks: dropping damaged or oversized extras before Pillow sees them, the colour chunks, the size a
PNG's data must decode to, and the 16-bit encoder's metadata chunks (OpenCV encodes the pixels)."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from mlrn_core.imageio.formats import _DEFLATE_LEVEL

log = logging.getLogger("mlrn_core.imageio")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")


def _png_without_unreadable_extras(p: Path, data: bytes) -> bytes:
    """A PNG's bytes without the optional chunks that would make the whole file unreadable: a text or other
    ancillary chunk whose checksum is wrong (libpng itself only warns), or a text chunk over Pillow's limit
    (a 50 MB comment). The picture is whole without them; what is dropped is said. Other files: unchanged."""
    if data[:8] != _PNG_SIGNATURE:
        return data
    keep: list[bytes] = [data[:8]]
    dropped: list[str] = []
    pos = 8
    while pos + 12 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break  # a truncated chunk: the decoder says so
        if ctype[0] & 0x20:  # ancillary (lower-case first letter): the picture does not need it
            name = ctype.decode("latin-1")
            (crc,) = struct.unpack(">I", data[end - 4 : end])
            if zlib.crc32(data[pos + 4 : end - 4]) & 0xFFFFFFFF != crc:
                dropped.append(f"a {name} chunk whose checksum is wrong")
                pos = end
                continue
            if ctype in _PNG_TEXT and _png_text_too_big(ctype, data[pos + 8 : end - 4]):
                dropped.append(f"a {name} chunk holding more than {_PNG_TEXT_LIMIT >> 20} MB of text")
                pos = end
                continue
        keep.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            break
    if not dropped:
        return data
    log.warning("%s: %s dropped (the picture itself is whole)", p.name, "; ".join(dropped))
    return b"".join(keep) + data[pos:]


_PNG_TEXT_LIMIT = 1 << 20  # Pillow's PngImagePlugin.MAX_TEXT_CHUNK: a longer text makes it refuse the file


def _png_text_too_big(ctype: bytes, payload: bytes) -> bool:
    """Whether a tEXt/zTXt/iTXt payload holds more text than Pillow accepts (decompressed only up to the limit)."""
    if len(payload) > _PNG_TEXT_LIMIT and ctype == b"tEXt":
        return True
    keyword, _, rest = payload.partition(b"\0")
    if ctype == b"zTXt":
        compressed = rest[1:]
    elif ctype == b"iTXt" and rest[:1] == b"\1":
        compressed = rest[2:].split(b"\0", 2)[-1]
    else:
        return len(payload) > _PNG_TEXT_LIMIT
    try:
        return len(zlib.decompressobj().decompress(compressed, _PNG_TEXT_LIMIT + 1)) > _PNG_TEXT_LIMIT
    except zlib.error:
        return False  # Pillow skips a text it cannot decompress


_SRGB_GAMMA = 1 / 2.2  # gAMA's value for sRGB-like files (0.45455)


_SRGB_CHROMATICITY = (0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06)  # cHRM's white point and primaries


def _note_png_colour_chunks(p: Path, info: dict) -> None:
    """A PNG without an ICC profile may still describe its colours with gAMA and cHRM; the output does not carry
    them (its pixels are taken as sRGB, as most software takes them). Say so when they differ from sRGB, since
    a colour-managed viewer would then show the original and the result differently."""
    gamma, chroma = info.get("gamma"), info.get("chromaticity")
    odd = []
    if gamma is not None and abs(float(gamma) - _SRGB_GAMMA) > 0.01 * _SRGB_GAMMA:
        odd.append(f"gamma {float(gamma):g} (gAMA)")
    if chroma is not None and max(abs(float(a) - b) for a, b in zip(chroma, _SRGB_CHROMATICITY)) > 0.01:
        odd.append("non-sRGB primaries (cHRM)")
    if odd:
        log.warning(
            "%s describes its colours with %s and no ICC profile; the output does not keep that, so a "
            "colour-managed viewer may show it slightly differently from the original",
            p.name,
            " and ".join(odd),
        )


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file (stops quietly at the first damaged chunk)."""
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            break
        chunks.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if ctype == b"IEND":
            break
    return chunks


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_raw_size(width: int, height: int, bits: int, channels: int, interlaced: bool) -> int:
    """Bytes the decompressed image data of a PNG must hold: each row's filter byte plus its pixels."""

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * channels * bits + 7) // 8) if w and h else 0

    if not interlaced:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx if width > x0 else 0, (height - y0 + dy - 1) // dy if height > y0 else 0)
        for x0, y0, dx, dy in _ADAM7
    )


def _png_data_problem(data: bytes) -> str | None:
    """Why a PNG's image data is incomplete (it ends before the last row), or None when it is whole or the
    chunks cannot be followed (the decoder then says what is wrong).

    The IDAT stream is inflated in pieces of at most 1 MB that are counted and dropped, so the check costs
    one pass over the data and no memory, whatever size the header claims; it stops once the data is whole.
    """
    try:
        width, height, bits, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", data[16:29])
        expected = _png_raw_size(width, height, bits, _PNG_CHANNELS[colour], interlace == 1)
    except (struct.error, KeyError):
        return None
    inflate = zlib.decompressobj()
    got, pos, seen_idat = 0, 8, False
    try:
        while pos + 8 <= len(data) and got < expected:
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                seen_idat = True
                piece = data[pos + 8 : pos + 8 + length]
                while piece and got < expected:
                    got += len(inflate.decompress(piece, 1 << 20))
                    piece = inflate.unconsumed_tail
                if inflate.eof:
                    break
            elif seen_idat or kind == b"IEND":
                break  # the image data is one run of IDAT chunks
            pos += 12 + length
    except (zlib.error, struct.error):
        return None  # a damaged stream: the decoder reports it
    if not seen_idat or got >= expected:
        return None
    row = expected // max(1, height) if interlace != 1 else 0
    have = f"{got // row} of its {height} rows" if row else f"{100 * got // expected}% of its pixels"
    return (
        f"file is truncated: its image data ends after {have} (the rest would be black); copy or export it "
        "again from the original"
    )


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _png16_bytes(
    pixels: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None, exif_data: bytes | None
) -> bytes:
    """16-bit PNG: pixels via OpenCV (own encoder for gray+alpha), metadata chunks inserted here."""
    channels = pixels.shape[2]
    if channels == 2:
        png = _png_encode_gray_alpha16(pixels)
    else:
        if channels == 1:
            bgr = pixels[:, :, 0]
        elif channels == 3:
            bgr = pixels[:, :, ::-1]
        else:
            bgr = pixels[:, :, [2, 1, 0, 3]]
        params = [cv2.IMWRITE_PNG_COMPRESSION, _DEFLATE_LEVEL[16]]
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), params)
        if not ok:
            raise OSError("OpenCV could not encode the 16-bit PNG")
        png = buf.tobytes()

    extra: list[bytes] = []
    if icc:
        extra.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(v / 0.0254)) for v in dpi]
        extra.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif_data:
        body = exif_data[6:] if exif_data.startswith(b"Exif\x00\x00") else exif_data
        extra.append(_png_chunk(b"eXIf", body))

    replaced = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"pHYs", b"eXIf"}
    out = [png[:8]]
    for ctype, payload in _png_chunks(png):
        if ctype in replaced:
            continue
        out.append(_png_chunk(ctype, payload))
        if ctype == b"IHDR":
            out.extend(extra)
    return b"".join(out)


def _png_encode_gray_alpha16(pixels: np.ndarray) -> bytes:
    """Minimal PNG encoder for 16-bit gray+alpha (colour type 4), 'Sub' filter on every row."""
    h, w, _ = pixels.shape
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * 4)
    filtered = raw.copy()
    filtered[:, 4:] = raw[:, 4:] - raw[:, :-4]  # uint8 arithmetic wraps modulo 256 as PNG requires
    rows = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), _DEFLATE_LEVEL[16])),
            _png_chunk(b"IEND", b""),
        ]
    )
