"""The values a batch can be asked for: ``mlrn upscale``'s choices and Batch Export's lists.

Kept apart from :mod:`mlrn_core.batch` (which imports torch) so that the command line builds its ``upscale``
parser, and answers ``mlrn upscale --help`` or an argument error, without importing torch
(``tests/test_cli_startup.py``). :mod:`mlrn_core.batch` exports the same names.
"""

from __future__ import annotations

SCALES = (2, 3, 4)
RAW_COLOURS = ("srgb", "adobe", "prophoto")  # imageio.raw.COLOUR_SPACES, without importing LibRaw to plan
FORMATS = ("same", "png", "jpg", "tiff", "webp", "heic", "avif")
ON_EXISTS = ("skip", "rename", "overwrite")
