"""What every reader and writer of :mod:`mlrn_core.imageio` shares: the :class:`Picture` type, the one error
type (naming the file and the side), the pixel limit checked before anything is decoded, reading a file's
bytes safely (no FIFO, device or directory), the wording of OS errors, and EXIF orientation on arrays."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Largest image (in pixels) we agree to decode; photographers have big panoramas and scans.
MAX_IMAGE_PIXELS = 400_000_000


class ImageIOError(Exception):
    """One error type for every read/write failure.

    ``str(e)`` names the file and the reason, e.g. ``cannot read 'photo.jpg': file is truncated``;
    ``e.path`` is the full :class:`~pathlib.Path` and ``e.reason`` the human-readable reason.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, action: str = "read") -> None:
        self.path = Path(path)
        self.reason = reason
        self.action = action
        super().__init__(f"cannot {action} '{self.path.name}': {reason}")

    @property
    def side(self) -> str:
        """'input' for a file being read, 'output' for one being written."""
        return "output" if self.action == "write" else "input"

    def __reduce__(self) -> tuple[type[ImageIOError], tuple[Path, str, str]]:
        # Keeps the exception picklable (multiprocessing workers) despite the custom __init__.
        return (type(self), (self.path, self.reason, self.action))


class OutputExistsError(ImageIOError):
    """The output name was taken (by another program or run) while this one was being written."""


@dataclass(eq=False)
class Picture:
    """Pixels plus the metadata needed to write them back faithfully.

    ``rgb`` is float32 HxWx3 in [0, 1] (gray sources are replicated to three channels), ``alpha`` float32
    HxW in [0, 1] or None. EXIF orientation has already been applied to the pixels; ``exif`` still holds the
    original bytes (``write_image`` resets the orientation). Values outside [0, 1] are allowed while
    editing; they are clipped on write. An upscaled result may instead hold uint8/uint16 ``rgb`` and
    ``alpha`` (full scale = 1.0), which the writer encodes without a float copy: a big output then costs
    its own bytes only.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    grayscale: bool
    icc_profile: bytes | None
    exif: bytes | None
    dpi: tuple[float, float] | None
    source_format: str
    source_mode: str
    path: Path | None = None
    xmp: str | None = None  # the raw XMP packet
    iptc: dict[str, object] | None = None  # IPTC-IIM datasets as pyexiv2 reads them ('Iptc.Application2.X')
    lossless_webp: bool = False  # read from a lossless WebP: written back as WebP, it stays lossless by default

    def __post_init__(self) -> None:
        rgb = np.ascontiguousarray(self.rgb, dtype=_pixel_dtype(self.rgb))
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"Picture.rgb must be HxWx3, got shape {rgb.shape}")
        self.rgb = rgb
        if self.alpha is not None:
            alpha = np.ascontiguousarray(self.alpha, dtype=_pixel_dtype(self.alpha))
            if alpha.shape != rgb.shape[:2]:
                raise ValueError(f"Picture.alpha must be HxW {rgb.shape[:2]}, got shape {alpha.shape}")
            self.alpha = alpha
        if self.bit_depth not in (8, 16):
            raise ValueError(f"Picture.bit_depth must be 8 or 16, got {self.bit_depth}")
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None) -> Picture:
        """Same metadata, new pixels (possibly of another size)."""
        return dataclasses.replace(self, rgb=rgb, alpha=alpha)


def _pixel_dtype(a: np.ndarray) -> type:
    """uint8/uint16 pixels are kept as they are (upscaled outputs); anything else becomes float32."""
    dt = np.asarray(a).dtype
    return dt.type if dt in (np.dtype(np.uint8), np.dtype(np.uint16)) else np.float32


def not_a_regular_file(p: str | os.PathLike[str]) -> str | None:
    """Why ``p`` (links followed) is not a regular file that can be read as an image, or None.

    Asked before a file is opened: opening a FIFO blocks until something writes to it, and a device such as
    ``/dev/zero`` never ends. A file that cannot be looked at is left to the reader, which says why.
    """
    try:
        mode = os.stat(p).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"is {kind}, not an image file: only regular files are read"


def _read_file_bytes(p: Path) -> bytes:
    try:
        problem = not_a_regular_file(p)
        if problem:
            raise ImageIOError(p, problem)
        data = p.read_bytes()
    except ImageIOError:
        raise
    except FileNotFoundError:
        raise ImageIOError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageIOError(p, "is a directory, not an image file") from None
    except PermissionError as exc:
        raise ImageIOError(p, _os_reason(exc, "input")) from None
    except OSError as exc:
        raise ImageIOError(p, f"cannot open file ({exc.strerror or exc})") from None
    if not data:
        raise ImageIOError(p, "file is empty (0 bytes)")
    return data


def _too_large_reason(size: tuple[int, int] | None, pixels: int | None = None) -> str:
    limit = f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
    if size is None:
        what = f"{pixels / 1e6:.0f} megapixels, the limit is {limit}" if pixels else f"more than {limit}"
        return f"image is too large ({what}); nothing was decoded. Split or downscale it first"
    w, h = size
    return (
        f"image is too large ({w} x {h} = {w * h / 1e6:.0f} megapixels, the limit is {limit}); nothing was "
        "decoded. Split or downscale it first"
    )


def check_pixel_limit(p: Path, width: int, height: int) -> None:
    """Refuse (ImageIOError) a declared size over :data:`MAX_IMAGE_PIXELS` before anything is allocated."""
    if width <= 0 or height <= 0:
        raise ImageIOError(p, f"the file declares an empty image ({width} x {height} pixels)")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageIOError(p, _too_large_reason((width, height)))


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Same result as PIL.ImageOps.exif_transpose, on an HxW[xC] array (returns a view)."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


_EXISTS_REASON = "a file with this name already exists (it was not replaced): choose another name or folder"


def _os_reason(exc: BaseException, side: str = "output") -> str:
    """The reason for an OS error and what to do about it, for a file on ``side`` ('input'/'output')."""
    folder = "output folder" if side == "output" else "folder"
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno == errno.EACCES):
        if side == "output":
            return "permission denied: the output folder is not writable; choose another output folder"
        return "permission denied: the file is not readable; check its permissions"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return f"disk is full: free some space or choose an {folder} on another disk"
        if exc.errno == errno.EDQUOT:
            return f"disk quota exceeded: free some space or choose an {folder} on another disk"
        if exc.errno == errno.EROFS:
            return f"read-only file system: choose an {folder} on a writable disk"
        if exc.errno == errno.ENAMETOOLONG:
            return "file name too long for the file system: use a shorter name, suffix or folder"
        if exc.errno == errno.EISDIR or isinstance(exc, IsADirectoryError):
            return "a folder with that name exists: choose a file name"
        if exc.errno == errno.EEXIST or isinstance(exc, FileExistsError):
            return _EXISTS_REASON
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"
