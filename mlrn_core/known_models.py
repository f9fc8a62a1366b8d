"""Model files read before: a network's weights key and hyper-parameters, found by the file's bytes without torch.

``mlrn upscale`` with a model whose OpenVINO network is cached, and whose path Auto measured before on this
machine, runs the network in OpenVINO only: it never needs torch, whose import is about 1.2 s of every run on a
2-core CPU (``benchmarks/startup.py``). What such a run needs from the model file is what
:func:`mlrn_core.model.weights_key` computes from the loaded network (the key of its OpenVINO network and of
Auto's measurement), its hyper-parameters and its provenance. :func:`remember` keeps them when
:func:`mlrn_core.registry.load_model` has read and checked a file, under the SHA-256 of the file's bytes:
a file changed in any way is unknown again, and is read with torch, checked and remembered once more.
:class:`KnownModel` stands in for the network in such a run; a path that needs the weights after all (an
OpenVINO failure falling back to PyTorch) loads them with :func:`mlrn_core.registry.network_of`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlrn_core import atomic, paths

log = logging.getLogger(__name__)

#: Bumped when what a remembered file stands for changes (the registry's checks of a model file, the weights key)
_VERSION = 1
#: Files larger than this are never looked up (hashing them would cost more than torch's import saves; the
#: shipped models are about 4 MB).
MAX_BYTES = 64 << 20
#: Entries kept (the oldest go first): every model file a user trains adds one.
MAX_ENTRIES = 256


@dataclass(frozen=True, eq=False)
class KnownModel:
    """A model file read and checked before: its weights key and hyper-parameters, no weights.

    It answers what the OpenVINO paths ask of a network (``scale``, ``hparams``, :func:`key_of`)."""

    path: Path
    key: str  # mlrn_core.model.weights_key of its network
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return int(self.hparams["scale"])


def key_of(model: Any) -> str:
    """:func:`mlrn_core.model.weights_key` of a network, or the key a :class:`KnownModel` was remembered with."""
    if isinstance(model, KnownModel):
        return model.key
    from mlrn_core.model import weights_key

    return weights_key(model)


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of the file's bytes, or None for a file that cannot be read or is over :data:`MAX_BYTES`."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_BYTES:
                return None
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
    except OSError:
        return None


def _cache_file() -> Path:
    return paths.cache_dir() / "model-keys.json"


def _read() -> dict[str, dict]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


_lock = threading.Lock()


def lookup(path: str | os.PathLike[str]) -> tuple[KnownModel, dict[str, Any]] | None:
    """(the model, its provenance ``info``) when the file at ``path``, byte for byte, was loaded before."""
    digest = file_digest(path)
    entry = _read().get(digest) if digest else None
    if not isinstance(entry, dict):
        return None
    try:
        hparams, key = dict(entry["hparams"]), str(entry["key"])
        int(hparams["scale"])
    except (KeyError, TypeError, ValueError):
        return None
    info = entry.get("info") if isinstance(entry.get("info"), dict) else {}
    return KnownModel(Path(path), key, hparams), info


def remember(path: str | os.PathLike[str], net: Any, info: dict[str, Any] | None = None) -> None:
    """Keep what :func:`lookup` answers for the file at ``path``, whose network ``net`` was just loaded from it
    and checked. A cache folder that cannot be written only means torch is imported next time."""
    digest = file_digest(path)
    if digest is None:
        return
    with _lock:
        files = _read()
        if digest in files:
            return
        files[digest] = {
            "key": key_of(net),
            "hparams": dict(getattr(net, "hparams", {})),
            "info": json.loads(json.dumps(info or {}, default=str)),
        }
        while len(files) > MAX_ENTRIES:
            files.pop(next(iter(files)))
        try:
            with atomic.atomic_open(_cache_file(), "w", encoding="utf-8") as f:
                json.dump({"version": _VERSION, "files": files}, f, indent=1)
        except OSError as exc:
            log.warning("could not remember model file '%s' in %s: %s", path, _cache_file(), exc)
