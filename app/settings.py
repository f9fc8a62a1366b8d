"""What MLRN Studio remembers between runs, as a small JSON file in the per-user config folder.

``studio.json`` in :func:`mlrn_core.paths.config_dir` (so ``MLRN_HOME`` redirects it in tests). Unknown
keys are ignored and every value is checked on load: a hand-edited or half-written file falls back to
the defaults field by field instead of stopping the app. Writes are atomic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrn_core import atomic, paths
from mlrn_core.batch import RAW_COLOURS
from mlrn_core.tiling import PRECISIONS, QUALITIES

log = logging.getLogger(__name__)

SETTINGS_FILE = "studio.json"
MAX_RECENT = 10
COMPARE_MODES = ("side", "split", "single")
EXPORT_FORMATS = ("same", "png", "jpg", "tiff", "webp")


@dataclass
class Settings:
    geometry: str = ""  # QMainWindow.saveGeometry() as base64
    last_folder: str = ""
    scale: int = 2
    model: str = ""  # "auto", a registry name or a model file path; "" = the first choice (Auto when installed)
    device: str = "auto"
    tile: int = 0  # 0 = auto
    precision: str = "auto"  # "auto" (bf16 on CPUs with native bf16, fp16 on CUDA), "fp32", "bf16", "fp16"
    upscale_quality: str = "normal"  # "normal" or "best" (the 8-way self-ensemble, about 8x the time)
    raw_colour: str = "srgb"  # the colour space camera RAW files are developed into: "srgb", "adobe", "prophoto"
    left: str = "bicubic"  # "bicubic", "nearest" or a model name / path
    compare_mode: str = "side"
    recent_files: list[str] = field(default_factory=list)
    export_format: str = "same"
    quality: int = 95
    keep_16bit: bool = True
    cache_mb: int = 2048

    def add_recent(self, path: str | os.PathLike) -> None:
        text = str(Path(path).absolute())
        self.recent_files = [text] + [p for p in self.recent_files if p != text]
        del self.recent_files[MAX_RECENT:]


def settings_path() -> Path:
    return paths.config_dir() / SETTINGS_FILE


def _valid(name: str, value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        checks = {
            "scale": value in (2, 3, 4),
            "tile": value == 0 or 32 <= value <= 4096,
            "quality": 1 <= value <= 100,
            "cache_mb": 64 <= value <= 1_000_000,
        }
        return checks.get(name, True)
    if isinstance(default, str):
        if not isinstance(value, str):
            return False
        if name == "geometry":  # base64 of QMainWindow.saveGeometry(): anything else cannot be restored
            return re.fullmatch(r"[A-Za-z0-9+/=]*", value) is not None
        if name == "compare_mode":
            return value in COMPARE_MODES
        if name == "export_format":
            return value in EXPORT_FORMATS
        if name == "precision":
            return value in PRECISIONS
        if name == "upscale_quality":
            return value in QUALITIES
        if name == "raw_colour":
            return value in RAW_COLOURS
        if name == "device":
            return value in ("auto", "cpu", "mps") or value.startswith("cuda")
        return True
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    settings = Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return settings
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings file %s (%s)", path, exc)
        return settings
    if not isinstance(raw, dict):
        log.warning("ignoring settings file %s: expected a JSON object", path)
        return settings
    for f in dataclasses.fields(Settings):
        if f.name in raw:
            default = getattr(settings, f.name)
            if _valid(f.name, raw[f.name], default):
                setattr(settings, f.name, raw[f.name])
            else:
                log.warning("settings: ignoring %s=%r (not a valid value)", f.name, raw[f.name])
    del settings.recent_files[MAX_RECENT:]
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, dataclasses.asdict(settings))
    except OSError as exc:
        log.warning("could not save settings to %s (%s)", path, exc)
