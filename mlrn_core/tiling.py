"""Tiled inference: upscale an image of any size with bounded memory.

The image is cut into overlapping LR tiles on a regular grid; each tile runs through the network
(``torch.inference_mode``, fp16 and channels_last on CUDA) and is blended into the output with linear
ramps across the overlaps. Because the grid is a Cartesian product of row and column intervals the
blend weights are separable, so their sum is kept as two 1-D arrays rather than a full weight map:
the only full-size buffer is the output itself. Tiles can be taken in any order (the GUI computes the
visible ones first) and each finished region is handed to an optional callback. Progress and cancel
are plain callables, so the core stays free of Qt.

Alpha is upscaled with OpenCV's bicubic (a = -0.75) rather than the network: masks have no texture to
restore, bicubic keeps edges smooth (no jaggies) and it costs nothing next to the RGB pass.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 16
CPU_TILE = 192  # measured: on CPU small tiles run faster (cache) and use less memory than 384
MIN_TILE = 32

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised when the cancel callable returned True; nothing partial is returned."""


class DeviceError(Exception):
    """The requested device is not available."""


def pick_device(preference: str | torch.device | None = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for ``auto``; an explicit choice must be available."""
    pref = str(preference or "auto").lower()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available (is a CUDA build of torch installed?)")
    if pref == "mps" and not mps_ok:
        raise DeviceError("Apple MPS was requested but is not available on this machine")
    if not (pref == "cpu" or pref == "mps" or pref.startswith("cuda")):
        raise DeviceError(f"unknown device '{preference}': expected auto, cpu, cuda, cuda:N or mps")
    return torch.device(pref)


def device_label(device: torch.device) -> str:
    """Human name of a device, e.g. 'NVIDIA GeForce RTX 4090 (CUDA)' or 'CPU (8 threads)'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"


@dataclass(frozen=True)
class Tile:
    """One LR tile ``[y0, y1) x [x0, x1)`` at grid position (row, col)."""

    index: int
    row: int
    col: int
    y0: int
    y1: int
    x0: int
    x1: int


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    n = math.ceil((length - tile) / step) + 1
    # spread the tiles evenly so every overlap is at least `overlap` and the last tile ends at `length`
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def plan_tiles(height: int, width: int, tile: int, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """The tile grid for an LR image of ``height`` x ``width``."""
    if tile < MIN_TILE:
        raise ValueError(f"tile size must be at least {MIN_TILE} px, got {tile}")
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    tiles = []
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            tiles.append(Tile(len(tiles), r, c, y, min(y + tile, height), x, min(x + tile, width)))
    return tiles


def _ramp_weights(starts_ends: list[tuple[int, int]], length: int, scale: int) -> list[np.ndarray]:
    """Per interval, a 1-D HR weight: linear ramps where it overlaps its neighbours, 1 elsewhere."""
    weights = []
    for i, (a, b) in enumerate(starts_ends):
        w = np.ones((b - a) * scale, np.float32)
        if i > 0:
            ov = (starts_ends[i - 1][1] - a) * scale
            if ov > 0:
                w[:ov] = (np.arange(ov, dtype=np.float32) + 0.5) / ov
        if i + 1 < len(starts_ends):
            ov = (b - starts_ends[i + 1][0]) * scale
            if ov > 0:
                w[-ov:] = np.minimum(w[-ov:], ((np.arange(ov, dtype=np.float32) + 0.5) / ov)[::-1])
        weights.append(w)
    return weights


def auto_tile_size(device: torch.device, features: int = 32, blocks: int = 8, scale: int = 2) -> int:
    """A tile size (LR px) that fits the device's free memory with room to spare."""
    if device.type != "cuda":
        return CPU_TILE if device.type == "cpu" else 512
    free, _total = torch.cuda.mem_get_info(device)
    # peak activations per LR pixel: the GFF concatenation, a few G-channel maps, the HR tail (fp16)
    bytes_per_px = 2 * (features * (blocks + 8) + 3 * features * scale * scale)
    budget = 0.4 * free
    side = int(math.sqrt(budget / bytes_per_px))
    return int(max(128, min(2048, side // 16 * 16)))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class TileRunner:
    """Runs single tiles through a model on a device (precision and memory format chosen once)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, half: bool | None = None) -> None:
        self.device = device
        self.scale = int(model.scale)
        self.half = device.type == "cuda" if half is None else bool(half and device.type == "cuda")
        self.channels_last = device.type == "cuda"
        m = model.to(device).eval()
        if self.half:
            m = m.half()
        if self.channels_last:
            m = m.to(memory_format=torch.channels_last)
        self.model = m

    @torch.inference_mode()
    def run(self, lr_hwc: np.ndarray) -> np.ndarray:
        """float32 HxWx3 in [0,1] -> float32 (H*s)x(W*s)x3, clamped to [0,1]."""
        x = torch.from_numpy(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1)))[None].to(self.device)
        if self.half:
            x = x.half()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.model(x).float().clamp_(0, 1)[0]
        return y.permute(1, 2, 0).contiguous().cpu().numpy()


def upscale_array(
    model: torch.nn.Module,
    lr: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    device: torch.device | str | None = "auto",
    half: bool | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    priority: Callable[[Tile], float] | None = None,
    on_tile: Callable[[Tile, np.ndarray], None] | None = None,
    runner: TileRunner | None = None,
) -> np.ndarray:
    """Upscale float32 HxWx3 RGB in [0,1] by ``model.scale``; returns float32 (sH)x(sW)x3 in [0,1].

    ``tile`` (LR px, None = from free device memory) is halved and the image restarted when the device
    runs out of memory. ``priority(tile)`` is asked before each tile is picked (lowest first), so the
    caller can re-prioritise while it runs. ``on_tile(tile, region)`` gets the blended HR region
    ``[y0*s, y1*s) x [x0*s, x1*s)`` of the output so far after each tile. Raises :class:`Cancelled`.
    """
    if lr.ndim != 3 or lr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {lr.shape}")
    runner = runner or TileRunner(model, pick_device(device), half)
    s = runner.scale
    if tile is None:
        hp = getattr(model, "hparams", {})
        tile = auto_tile_size(runner.device, hp.get("features", 32), hp.get("blocks", 8), s)
    while True:
        try:
            return _upscale_tiles(runner, lr, tile, overlap, progress, cancel, priority, on_tile)
        except Exception as exc:
            if not _is_oom(exc) or tile // 2 < MIN_TILE:
                raise
            if runner.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("out of memory at tile %d px on %s; retrying with %d px", tile, runner.device, tile // 2)
            tile //= 2


def _upscale_tiles(
    runner: TileRunner,
    lr: np.ndarray,
    tile: int,
    overlap: int,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    priority: Callable[[Tile], float] | None,
    on_tile: Callable[[Tile, np.ndarray], None] | None,
) -> np.ndarray:
    s = runner.scale
    h, w = lr.shape[:2]
    tiles = plan_tiles(h, w, tile, overlap)
    rows = sorted({(t.y0, t.y1) for t in tiles})
    cols = sorted({(t.x0, t.x1) for t in tiles})
    wy, wx = _ramp_weights(rows, h, s), _ramp_weights(cols, w, s)
    out = np.zeros((h * s, w * s, 3), np.float32)
    # Σ_tiles wy_r(y) wx_c(x) = (Σ_r wy_r(y)) (Σ_c wx_c(x)): the grid is a product of rows and columns
    sum_y = np.zeros(h * s, np.float32)
    sum_x = np.zeros(w * s, np.float32)
    for (a, b), wt in zip(rows, wy):
        sum_y[a * s : b * s] += wt
    for (a, b), wt in zip(cols, wx):
        sum_x[a * s : b * s] += wt
    norm_y, norm_x = 1.0 / sum_y, 1.0 / sum_x
    pending = list(tiles)
    done = 0
    if progress:
        progress(0, len(tiles))
    while pending:
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        if priority is not None:
            t = min(pending, key=priority)
            pending.remove(t)
        else:
            t = pending.pop(0)
        y = runner.run(lr[t.y0 : t.y1, t.x0 : t.x1])
        weight = (wy[t.row] * norm_y[t.y0 * s : t.y1 * s])[:, None, None] * (
            wx[t.col] * norm_x[t.x0 * s : t.x1 * s]
        )[None, :, None]
        region = out[t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s]
        region += y * weight
        done += 1
        if on_tile is not None:
            on_tile(t, region)
        if progress:
            progress(done, len(tiles))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale of a float32 HxW alpha channel in [0,1] (see the module docstring)."""
    h, w = alpha.shape
    up = cv2.resize(alpha.astype(np.float32), (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return np.clip(up, 0.0, 1.0)


def keep_gray(rgb: np.ndarray, grayscale: bool) -> np.ndarray:
    """The network may tint a gray picture slightly: for a grayscale source, the channel mean in all three."""
    if not grayscale:
        return rgb
    gray = rgb.mean(axis=2, keepdims=True, dtype=np.float32)
    return np.repeat(gray, 3, axis=2)


def finish_upscaled(source, rgb: np.ndarray, scale: int):
    """The one way an upscaled :class:`mlrn_core.imageio.Picture` is made from the network's RGB output.

    Used by batch, ``mlrn upscale`` and the app's Save: a grayscale source stays grayscale (see
    :func:`keep_gray`), alpha is upscaled with bicubic (:func:`upscale_alpha`), and the metadata is
    carried over unchanged (the writer updates what depends on the size, such as EXIF pixel dimensions).
    """
    alpha = upscale_alpha(source.alpha, scale) if source.alpha is not None else None
    return source.with_pixels(keep_gray(rgb, source.grayscale), alpha)


def upscale_picture(model: torch.nn.Module, picture, **kwargs):
    """Upscale an :class:`mlrn_core.imageio.Picture`: RGB with the network (tiled), then :func:`finish_upscaled`.

    Keyword arguments are those of :func:`upscale_array` (tile, overlap, device, half, progress,
    cancel, priority, on_tile, runner).
    """
    rgb = upscale_array(model, picture.rgb, **kwargs)
    return finish_upscaled(picture, rgb, int(model.scale))


def default_threads() -> int:
    """Threads for CPU inference: every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
