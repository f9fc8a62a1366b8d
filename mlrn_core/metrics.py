"""Super-resolution quality metrics with the protocol every published number uses.

See ``docs/EVALUATION.md`` in the shared folder: MATLAB ``imresize`` bicubic (a = -0.5, antialiased
when shrinking, symmetric edge padding) as a weight matrix per axis, so a resize is two matrix
products; PSNR and SSIM on the BT.601 Y channel with ``scale`` pixels cropped from every side. Used
everywhere quality is reported: training validation, ``mlrn bench``, the wizard's hold-out and tests.
Arrays here are HxWxC (or HxW) numpy arrays; float images are RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def _resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense (out_len, in_len) float64 matrix of MATLAB's bicubic weights, mirror padding folded in."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based source positions
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if antialias else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # MATLAB's symmetric padding: index sequence 1..n, n..1 repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), taps), src.ravel()), w.ravel())
    return m


def imresize(img: np.ndarray, scale: float, out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')``.

    ``img`` is HxW or HxWxC, uint8 or float. uint8 input gives uint8 output rounded as MATLAB does;
    float input gives float64 output (not clamped). ``out_shape`` (h, w) overrides the size that
    ``ceil(in * scale)`` gives.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC array, got shape {img.shape}")
    h, w = img.shape[:2]
    oh, ow = out_shape if out_shape is not None else (int(np.ceil(h * scale)), int(np.ceil(w * scale)))
    src = img.astype(np.float64)
    mh = _resize_matrix(h, oh, float(scale if out_shape is None else oh / h))
    mw = _resize_matrix(w, ow, float(scale if out_shape is None else ow / w))
    # MATLAB resizes the rows (height) first, then the columns.
    out = np.tensordot(mh, src, axes=(1, 0))  # (oh, w, C)
    out = np.tensordot(mw, out, axes=(1, 1)).swapaxes(0, 1)  # (oh, ow, C)
    if img.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def degrade(hr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """The standard LR input: MATLAB bicubic downscale of a modcropped uint8 HR image (uint8 out)."""
    return imresize(modcrop(hr_uint8, scale), 1.0 / scale)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] from RGB; uint8 input is read as [0, 255], float input as [0, 1]."""
    x = img.astype(np.float64)
    if img.dtype == np.uint8:
        x = x / 255.0
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8 with clamping and rounding (the protocol's step 4)."""
    if img.dtype == np.uint8:
        return img
    return np.clip(np.round(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border > 0 else y


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR on Y after removing ``border`` pixels on every side. Inputs uint8 RGB (or float in [0,1])."""
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {sr.shape} vs {hr.shape}")
    a = _crop(rgb_to_y(to_uint8(sr)), border)
    b = _crop(rgb_to_y(to_uint8(hr)), border)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


@lru_cache(maxsize=1)
def _gaussian_window() -> np.ndarray:
    g = cv2.getGaussianKernel(11, 1.5)
    return g @ g.T


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    win = _gaussian_window()

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]  # 'valid' region only

    mu1, mu2 = filt(a), filt(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(a * a) - mu1_sq
    s2 = filt(b * b) - mu2_sq
    s12 = filt(a * b) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """SSIM (Wang et al.) on Y after removing ``border`` pixels on every side."""
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {sr.shape} vs {hr.shape}")
    a = _crop(rgb_to_y(to_uint8(sr)), border)
    b = _crop(rgb_to_y(to_uint8(hr)), border)
    return _ssim_single(a, b)


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float

    def as_dict(self) -> dict[str, float]:
        return {"psnr": round(self.psnr, 4), "ssim": round(self.ssim, 5)}


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> Score:
    """PSNR and SSIM of one image with the protocol's border (= scale)."""
    return Score(psnr_y(sr, hr, scale), ssim_y(sr, hr, scale))


def mean_score(scores: list[Score]) -> Score:
    if not scores:
        raise ValueError("no images to average")
    return Score(float(np.mean([s.psnr for s in scores])), float(np.mean([s.ssim for s in scores])))
