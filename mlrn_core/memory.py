"""How much memory upscaling a picture takes, and whether this computer has it: asked before the work starts.

A picture the pixel limit lets through can still need more memory than a laptop has: a 20000 x 20000 gray
PNG is 450 KB on disk and 400 megapixels, whose float32 RGB pixels alone take 4.8 GB, and x2 makes a 1.6
gigapixel output. Reading it and upscaling would push the computer into swap or get the program killed. So
the batch (``mlrn upscale``, Batch Export) and the app compare what a picture will need, from the size its
header declares, with the memory available now, and say so before they start instead.

What is counted (the measured model in ``benchmarks/memory.py``): the decoded picture (float32 RGB, 12 bytes
a pixel, 16 with alpha) and the uint8 result (3 or 4 bytes an output pixel); the app also keeps the input's
display pyramid and a pyramid per view of the output (a third more than their level 0). Tiles, the network
and the libraries are already in memory or bounded (:data:`WORKING_BYTES`).
"""

from __future__ import annotations

import ctypes
import os
import sys

WORKING_BYTES = 64 << 20  # tiles, their overlaps and the encoder's buffers: bounded whatever the picture
_PYRAMID = 4 / 3  # a display pyramid holds its level 0 and the halvings below it


def available_bytes() -> int | None:
    """Memory the system can give this process now without swapping (Linux MemAvailable, macOS and
    Windows their equivalents), or None when it cannot be told."""
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        if sys.platform == "win32":

            class _Status(ctypes.Structure):
                _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
                    (name, ctypes.c_ulonglong)
                    for name in ("total", "avail", "total_page", "avail_page", "total_virtual", "avail_virtual", "x")
                ]

            status = _Status()
            status.length = ctypes.sizeof(_Status)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
                return int(status.avail)
            return None
        pages = os.sysconf("SC_AVPHYS_PAGES")  # macOS: free pages (a lower bound: caches not counted)
        return int(pages) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def upscale_bytes(width: int, height: int, scale: int, alpha: bool = False) -> int:
    """What upscaling a ``width`` x ``height`` picture ``scale`` x adds to a process (batch, command line)."""
    pixels = width * height
    return pixels * (16 if alpha else 12) + pixels * scale * scale * (4 if alpha else 3) + WORKING_BYTES


def view_bytes(width: int, height: int, scale: int, alpha: bool = False) -> int:
    """What the app holds to show a picture upscaled ``scale`` x beside its bicubic view."""
    pixels = width * height
    output = pixels * scale * scale * 3 * _PYRAMID
    return int(pixels * (16 if alpha else 12) + pixels * 3 * _PYRAMID + 2 * output + WORKING_BYTES)


def shortfall(need: int, width: int, height: int, scale: int, available: int | None = None) -> str | None:
    """Why a picture should not be started (what it needs, what is free, what to do), or None when it fits
    or the free memory cannot be told."""
    free = available_bytes() if available is None else available
    if free is None or need <= free:
        return None
    return (
        f"upscaling this {width} x {height} picture x{scale} needs about {need / 1e9:.1f} GB of memory, and "
        f"{free / 1e9:.1f} GB are free: close other programs, choose a smaller scale, or split the picture"
    )
