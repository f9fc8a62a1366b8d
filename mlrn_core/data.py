"""Training and validation data: HR images from folders, LR made by MATLAB bicubic, random patches.

Each HR image is read once with :mod:`mlrn_core.imageio`, modcropped, and its LR twin made with the
protocol's MATLAB bicubic (:func:`mlrn_core.metrics.degrade`), cached on disk by content hash so a
second run starts at once. Unreadable files, images smaller than a patch and duplicates (same pixels)
are skipped with a reason. A batch is a pure function of (seed, step): the same step always draws the
same patches, which makes resumed runs continue the exact data order, and under torch.distributed
each rank takes its own slice of the global batch (a distributed sampler without epochs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from mlrn_core import imageio
from mlrn_core.atomic import atomic_open
from mlrn_core.metrics import degrade, modcrop

log = logging.getLogger(__name__)


class DataError(Exception):
    """No usable training or validation data; the message says where and why."""


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class ImagePair:
    path: Path
    hr: np.ndarray  # uint8 HxWx3 RGB, modcropped
    lr: np.ndarray  # uint8 (H/s)x(W/s)x3 RGB


@dataclass
class ScanResult:
    """What a folder scan found: usable files, and what was skipped and why."""

    usable: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # path -> (w, h)


def iter_image_files(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Every supported image file under the folders (recursive, sorted, hidden files ignored)."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise DataError(f"'{folder}' is not a folder")
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith(".") and imageio.is_supported(path):
                files.append(path)
    return files


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()


def load_hr(path: Path) -> np.ndarray:
    """An image as uint8 HxWx3 RGB (orientation applied, alpha dropped, 16-bit reduced)."""
    return imageio.picture_to_uint8_rgb(imageio.read_image(path))


def scan_folders(
    folders: Sequence[str | os.PathLike],
    min_hr_size: int,
    exclude: Iterable[str | os.PathLike] = (),
    load: bool = False,
) -> tuple[ScanResult, list[np.ndarray]]:
    """Find usable images: readable, at least ``min_hr_size`` on both sides, not a duplicate.

    Returns the scan and, when ``load`` is true, the uint8 RGB arrays of the usable images.
    """
    excluded = {Path(p).resolve() for p in exclude}
    result = ScanResult()
    arrays: list[np.ndarray] = []
    seen: dict[str, Path] = {}
    for path in iter_image_files(folders):
        if path.resolve() in excluded:
            continue
        try:
            hr = load_hr(path)
        except imageio.ImageIOError as exc:
            result.skipped.append(Skipped(path, f"unreadable: {exc.reason}"))
            continue
        h, w = hr.shape[:2]
        if min(h, w) < min_hr_size:
            result.skipped.append(Skipped(path, f"too small ({w}x{h}, needs at least {min_hr_size} px a side)"))
            continue
        digest = _digest(hr)
        if digest in seen:
            result.skipped.append(Skipped(path, f"duplicate of {seen[digest].name}"))
            continue
        seen[digest] = path
        result.usable.append(path)
        result.sizes[path] = (w, h)
        if load:
            arrays.append(hr)
    for s in result.skipped:
        log.info("skipping %s: %s", s.path, s.reason)
    return result, arrays


def _lr_cached(hr: np.ndarray, scale: int, cache: Path | None) -> np.ndarray:
    if cache is None:
        return degrade(hr, scale)
    file = cache / f"{_digest(hr)}_x{scale}.npy"
    try:
        lr = np.load(file)
        if lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3) and lr.dtype == np.uint8:
            return lr
    except (OSError, ValueError):
        pass
    lr = degrade(hr, scale)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_open(file, "wb") as fh:
            np.save(fh, lr)
    except OSError as exc:  # a read-only cache is not a reason to stop training
        log.warning("cannot write the LR cache %s: %s", file, exc)
    return lr


def load_pairs(
    folders: Sequence[str | os.PathLike],
    scale: int,
    min_hr_size: int,
    exclude: Iterable[str | os.PathLike] = (),
    cache: Path | None = None,
    what: str = "training",
) -> tuple[list[ImagePair], ScanResult]:
    """Load HR images from folders and make their LR twins; raise DataError if none is usable."""
    scan, arrays = scan_folders(folders, min_hr_size, exclude, load=True)
    if not scan.usable:
        names = ", ".join(str(f) for f in folders)
        detail = (
            f"; skipped {len(scan.skipped)}: " + "; ".join(f"{s.path.name} ({s.reason})" for s in scan.skipped[:5])
            if scan.skipped
            else ""
        )
        raise DataError(f"no usable {what} image in {names}{detail}")
    pairs = []
    for path, hr in zip(scan.usable, arrays):
        hr = modcrop(hr, scale)
        pairs.append(ImagePair(path, np.ascontiguousarray(hr), _lr_cached(hr, scale, cache)))
    return pairs, scan


# degraded validation / hold-out LR image i draws from default_rng([EVAL_SEED, i]): the same every time
EVAL_SEED = 1234


RESIZE_KINDS = ("bicubic", "area", "mixed")


def jpeg_roundtrip(rgb: np.ndarray, quality: int, chroma_420: bool = True) -> np.ndarray:
    """Encode a uint8 RGB image as JPEG in memory at ``quality`` (4:2:0 chroma unless told) and decode it again:
    the JPEG step of :class:`Degradation` (OpenCV, which takes BGR)."""
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if chroma_420 else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise RuntimeError(f"JPEG encoding failed at quality {quality}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


@dataclass(frozen=True)
class Degradation:
    """How an LR input is made from its HR twin, in the order a camera does it (default: the clean protocol).

    1. ``blur``: a Gaussian blur of the HR image, sigma drawn from [0, blur] HR pixels (0 = off);
    2. downscale by the scale factor: ``"bicubic"`` (MATLAB bicubic, the benchmark protocol), ``"area"``
       (pixel averaging, like a sensor binning) or ``"mixed"`` (each image draws one of the two);
    3. sensor-like noise: Gaussian, sigma drawn from [0, noise_sigma] in 0-255 units (0 = off);
    4. JPEG at a quality drawn from ``jpeg_quality`` (inclusive range, None = off), with 4:2:0 chroma as
       cameras and phones write (``chroma_420=False``: 4:4:4).

    ``clean_share`` is a training mix, not a camera step: that fraction of the samples skips all four steps
    and gets the clean protocol's LR (MATLAB bicubic), so a model trained for camera JPEGs keeps its detail
    on lossless inputs. Evaluation uses :meth:`without_clean_share` (every image fully degraded).

    Every draw comes from the generator passed in, so a degradation is a pure function of its seed.
    """

    jpeg_quality: tuple[int, int] | None = None  # inclusive range, e.g. (70, 98)
    noise_sigma: float = 0.0  # maximum Gaussian noise sigma, in 0-255 units
    blur: float = 0.0  # maximum Gaussian blur sigma on the HR image, in HR pixels
    resize: str = "bicubic"  # bicubic | area | mixed
    chroma_420: bool = True
    clean_share: float = 0.0  # fraction of training samples left clean (MATLAB bicubic only)

    def __post_init__(self) -> None:
        if not 0.0 <= self.clean_share < 1.0:
            raise ValueError(f"clean_share must be in [0, 1), got {self.clean_share}")
        if self.resize not in RESIZE_KINDS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_KINDS)}, got {self.resize!r}")
        if self.noise_sigma < 0 or self.blur < 0:
            raise ValueError("noise_sigma and blur must not be negative")
        if self.jpeg_quality is not None:
            lo, hi = self.jpeg_quality
            if not 1 <= lo <= hi <= 100:
                raise ValueError(f"JPEG qualities must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")

    @property
    def active(self) -> bool:
        return self.jpeg_quality is not None or self.noise_sigma > 0 or self.needs_hr

    @property
    def needs_hr(self) -> bool:
        """Whether the LR must be made from the HR (a blur or a downscale other than the protocol's)."""
        return self.blur > 0 or self.resize != "bicubic"

    def without_clean_share(self) -> Degradation:
        """The same pipeline applied to every image (what evaluation and validation use)."""
        return replace(self, clean_share=0.0)

    def _draw_clean(self, rng: np.random.Generator) -> bool:
        # no draw at all without a clean share, so such pipelines keep their random streams
        return self.clean_share > 0 and rng.random() < self.clean_share

    def describe(self) -> str:
        if not self.active:
            return "clean MATLAB bicubic"
        if self.clean_share > 0:
            return f"{self.without_clean_share().describe()} ({self.clean_share:.0%} of samples left clean)"
        parts = []
        if self.blur > 0:
            parts.append(f"blur sigma 0-{self.blur:g} HR px")
        parts.append(
            {"bicubic": "MATLAB bicubic", "area": "area", "mixed": "bicubic or area"}[self.resize] + " downscale"
        )
        if self.noise_sigma > 0:
            parts.append(f"Gaussian noise sigma 0-{self.noise_sigma:g}")
        if self.jpeg_quality is not None:
            lo, hi = self.jpeg_quality
            parts.append(f"JPEG q{lo}-{hi} {'4:2:0' if self.chroma_420 else '4:4:4'}")
        return ", then ".join(parts)

    def make_lr(self, hr: np.ndarray, lr: np.ndarray | None, scale: int, rng: np.random.Generator) -> np.ndarray:
        """The degraded uint8 RGB LR of ``hr`` (``lr``: its clean MATLAB bicubic LR, if already made)."""
        if self._draw_clean(rng):
            return lr if lr is not None else degrade(hr, scale)
        if self.needs_hr:
            img = hr
            if self.blur > 0:
                sigma = rng.uniform(0, self.blur)
                if sigma > 0.05:
                    img = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
            kind = self.resize if self.resize != "mixed" else ("bicubic", "area")[int(rng.integers(0, 2))]
            h, w = img.shape[0] // scale, img.shape[1] // scale
            if kind == "area":
                out = cv2.resize(img[: h * scale, : w * scale], (w, h), interpolation=cv2.INTER_AREA)
            else:
                out = degrade(img, scale)
        else:
            out = lr if lr is not None else degrade(hr, scale)
        return self._lr_steps(out, rng)

    def apply_for_eval(
        self, lr: np.ndarray, index: int, seed: int = EVAL_SEED, hr: np.ndarray | None = None, scale: int | None = None
    ) -> np.ndarray:
        """Degrade evaluation image ``index`` the same way every time (validation and hold-out scoring).

        A degradation that starts from the HR image (blur, area downscale) needs ``hr`` and ``scale``.
        """
        if not self.active:
            return lr
        if self.clean_share > 0:
            return self.without_clean_share().apply_for_eval(lr, index, seed, hr, scale)
        rng = np.random.default_rng([seed, index])
        if self.needs_hr:
            if hr is None or scale is None:
                raise ValueError("this degradation starts from the HR image: pass hr and scale")
            return self.make_lr(hr, lr, scale, rng)
        return self.apply(lr, rng)

    def apply(self, lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The LR-side steps (noise, then JPEG) on one uint8 RGB LR image or patch (or, for the clean
        share, the patch unchanged)."""
        if self._draw_clean(rng):
            return lr
        return self._lr_steps(lr, rng)

    def _lr_steps(self, lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = lr
        if self.noise_sigma > 0:
            sigma = rng.uniform(0, self.noise_sigma)
            out = np.clip(out.astype(np.float32) + rng.normal(0, sigma, out.shape), 0, 255).astype(np.uint8)
        if self.jpeg_quality is not None:
            q = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            out = jpeg_roundtrip(out, q, self.chroma_420)
        return out


# "Match camera JPEGs": the photo models' training degradation and the wizard's camera setting
CAMERA = Degradation(jpeg_quality=(70, 98), noise_sigma=2.0, blur=0.8, resize="mixed")


class PatchSampler:
    """Draws aligned (LR, HR) patch batches as a pure function of (seed, step, rank)."""

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        scale: int,
        patch: int,
        batch: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        degradation: Degradation = Degradation(),
        by_area: bool = True,
    ) -> None:
        usable = [p for p in pairs if min(p.lr.shape[:2]) >= patch]
        if not usable:
            raise DataError(f"no training image is large enough for {patch} px LR patches at x{scale}")
        self.pairs = usable
        self.scale, self.patch, self.batch = scale, patch, batch
        self.seed, self.rank, self.world = seed, rank, world
        self.degradation = degradation
        # by_area: an image is drawn in proportion to its number of patch positions, so a 2040 px photograph
        # counts by its pixels, not as one file among many thumbnails; otherwise every file counts the same
        self.by_area = by_area
        sizes = np.array([(q.lr.shape[0] - patch + 1) * (q.lr.shape[1] - patch + 1) for q in usable], np.float64)
        self._cum = np.cumsum(sizes / sizes.sum())

    def image_shares(self) -> np.ndarray:
        """The probability of each image to be drawn for a patch."""
        return np.diff(self._cum, prepend=0.0) if self.by_area else np.full(len(self.pairs), 1 / len(self.pairs))

    def batch_arrays(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) float32 NCHW in [0, 1] for this rank at ``step``."""
        rng = np.random.default_rng([self.seed, step])
        n_total = self.batch * self.world
        if self.by_area:
            image_idx = np.minimum(np.searchsorted(self._cum, rng.random(n_total), side="right"), len(self.pairs) - 1)
        else:
            image_idx = rng.integers(0, len(self.pairs), n_total)
        u = rng.random((n_total, 2))
        flips = rng.integers(0, 8, n_total)
        noise_seeds = rng.integers(0, 2**63 - 1, n_total)
        p, s = self.patch, self.scale
        lo = np.empty((self.batch, p, p, 3), np.uint8)
        hi = np.empty((self.batch, p * s, p * s, 3), np.uint8)
        for j, i in enumerate(range(self.rank * self.batch, (self.rank + 1) * self.batch)):
            pair = self.pairs[image_idx[i]]
            h, w = pair.lr.shape[:2]
            y, x = int(u[i, 0] * (h - p + 1)), int(u[i, 1] * (w - p + 1))
            lr = pair.lr[y : y + p, x : x + p]
            hr = pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
            if self.degradation.active:
                lr = self.degradation.make_lr(hr, lr, s, np.random.default_rng(noise_seeds[i]))
            lo[j], hi[j] = _augment(lr, flips[i]), _augment(hr, flips[i])
        to_t = np.float32(1 / 255)
        return (
            np.ascontiguousarray(lo.transpose(0, 3, 1, 2), dtype=np.float32) * to_t,
            np.ascontiguousarray(hi.transpose(0, 3, 1, 2), dtype=np.float32) * to_t,
        )


def _augment(img: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 dihedral transforms: bit 0 horizontal flip, bit 1 vertical flip, bit 2 transpose."""
    if code & 1:
        img = img[:, ::-1]
    if code & 2:
        img = img[::-1]
    if code & 4:
        img = img.transpose(1, 0, 2)
    return img


class Prefetcher:
    """Makes batches for steps start, start+1, ... in a background thread (numpy releases the GIL)."""

    def __init__(self, sampler: PatchSampler, start: int, depth: int = 4) -> None:
        self.sampler = sampler
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._next = start
        self._thread = threading.Thread(target=self._run, args=(start,), daemon=True, name="mlrn-prefetch")
        self._thread.start()

    def _run(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = (step, self.sampler.batch_arrays(step))
            except BaseException as exc:  # surfaced in get()
                item = (step, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            step += 1

    def get(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        got, value = self._queue.get()
        if isinstance(value, BaseException):
            raise value
        if got != step:  # cannot happen unless misused; the data order would silently change
            raise RuntimeError(f"prefetcher out of order: expected step {step}, got {got}")
        return value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
