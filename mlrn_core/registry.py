"""Model files and the model registry: built-in weights and the user's own models.

A model file describes itself (nanoGPT keeps ``model_args`` in its checkpoints): the architecture
name, its hyper-parameters, the scale, the weights and the provenance (data, steps, metrics), so the
file alone rebuilds its network. Files are read with ``torch.load(weights_only=True)`` and loaded with
strict key checking; anything that does not fit raises :class:`ModelError` naming the file and the
problem. The memory a file can make us spend is decided before anything is built: the zip archive's
declared size is checked before ``torch.load``, and the hyper-parameters are checked against sane bounds
and against the shapes of the stored weights (on PyTorch's ``meta`` device, which allocates nothing)
before the network is built, so a header saying ``features=20000`` is refused, not allocated. Weights
holding NaN or infinity are refused too (they would write black images). Built-in models ship in
``resources/models`` as ``mlrn-x{scale}.pt`` with a Markdown model card beside each; user models live
in the per-user data folder (see :mod:`mlrn_core.paths`); :func:`model_problems` lists the files there
that cannot be used, with the reason, instead of hiding them.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrn_core import atomic, known_models, paths
from mlrn_core.atomic import atomic_open
from mlrn_core.runs import RunFolder

if TYPE_CHECKING:  # torch is imported where weights are read or built: a cached OpenVINO run never needs it
    import torch

    from mlrn_core.model import MLRN

FORMAT = "mlrn-studio-model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".pt"
_NAME_RE = re.compile(r"^[\w][\w .+-]{0,63}$")

#: Sane bounds for the hyper-parameters a model file may declare (the shipped models use 32 / 8 / 5x5).
MAX_FEATURES = 512
MAX_BLOCKS = 128
MAX_KERNEL = 15
MAX_BYPASSES = 8
#: The most data a model file's archive may declare (the shipped ones hold ~4 MB).
MAX_MODEL_BYTES = 1 << 30


class ModelError(Exception):
    """A model name or file that cannot be used; the message says which and why."""


@dataclass
class ModelFile:
    """The contents of a model file, before the network is built."""

    path: Path | None
    hparams: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return int(self.hparams["scale"])


@dataclass
class ModelEntry:
    """One model the user can pick: built-in or user-trained."""

    name: str
    kind: str  # "built-in" | "user"
    path: Path
    scale: int
    info: dict[str, Any]

    @property
    def card_path(self) -> Path:
        return self.path.with_suffix(".md")

    @property
    def card(self) -> str:
        try:
            return self.card_path.read_text(encoding="utf-8")
        except OSError:
            return ""

    @property
    def psnr(self) -> float | None:
        value = self.info.get("metrics", {}).get("set5_psnr") or self.info.get("metrics", {}).get("val_psnr")
        return float(value) if value is not None else None


@dataclass
class LoadedModel:
    model: MLRN  # or a KnownModel (known_model): its file read before, run by OpenVINO without torch
    name: str
    path: Path | None
    info: dict[str, Any]

    @property
    def scale(self) -> int:
        return self.model.scale


def builtin_name(scale: int) -> str:
    return f"mlrn-x{scale}"


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of a (possibly DDP-wrapped or compiled) model, detached, on the CPU."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return {k: v.detach().to("cpu").clone() for k, v in inner.state_dict().items()}


def make_model_payload(
    hparams: dict[str, Any], state_dict: dict[str, torch.Tensor], info: dict[str, Any], half: bool = False
) -> dict[str, Any]:
    from mlrn_core.model import ARCH_NAME

    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state_dict.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": ARCH_NAME,
        "hparams": dict(hparams),
        "state_dict": sd,
        "info": dict(info),
    }


def atomic_torch_save(obj: Any, path: Path, overwrite: bool = True) -> Path:
    """``torch.save`` through the one atomic writer (:func:`mlrn_core.atomic.atomic_open`); with
    ``overwrite=False`` the file is created only if absent (FileExistsError otherwise)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb", overwrite=overwrite) as fh:
        torch.save(obj, fh)
    return path


def save_model(
    path: str | os.PathLike,
    model: MLRN,
    info: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    half: bool = False,
) -> Path:
    """Write a self-describing model file (atomically). ``state_dict`` overrides the model's own (EMA)."""
    inner = getattr(getattr(model, "module", model), "_orig_mod", getattr(model, "module", model))
    sd = state_dict if state_dict is not None else model_state(inner)
    info = dict(info or {})
    info.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return atomic_torch_save(make_model_payload(inner.hparams, sd, info, half=half), Path(path))


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and validate a model file (or a training checkpoint, whose ``model`` entry is used)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file '{path}' does not exist")
    if path.is_dir():
        candidate = RunFolder(path).model  # a training run folder: its best weights
        if candidate.exists():
            path = candidate
        else:
            raise ModelError(f"'{path}' is a folder without a model.pt in it")
    import torch

    from mlrn_core.model import ARCH_NAME

    _check_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsafe globals...
        raise ModelError(f"'{path.name}' cannot be used: {_load_failure(path, exc)}") from exc
    if isinstance(obj, dict) and obj.get("format") == "mlrn-studio-checkpoint" and "model" in obj:
        obj = obj["model"]
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelError(
            f"'{path.name}' is not an MLRN Studio model file (no '{FORMAT}' header); "
            "plain state dicts from other projects cannot be loaded"
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"'{path.name}' was written by a newer MLRN Studio (format {obj['format_version']})")
    if obj.get("arch") != ARCH_NAME:
        raise ModelError(f"'{path.name}' holds a {obj.get('arch')!r} network, expected {ARCH_NAME}")
    hparams, sd = obj.get("hparams"), obj.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(sd, dict) or "scale" not in hparams:
        raise ModelError(f"'{path.name}' lacks hyper-parameters or weights")
    return ModelFile(path=path, hparams=hparams, state_dict=sd, info=dict(obj.get("info") or {}))


def _check_archive(path: Path) -> None:
    """Refuse an archive that declares more data than a model can hold, before torch reads any of it."""
    try:
        if not zipfile.is_zipfile(path):
            return  # legacy (non-zip) files: torch.load's own checks apply
        with zipfile.ZipFile(path) as zf:
            declared = sum(max(0, info.file_size) for info in zf.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load reports the damage
    if declared > MAX_MODEL_BYTES:
        raise ModelError(
            f"'{path.name}' cannot be used: it declares {declared / 1e6:,.0f} MB of data, far more than any "
            f"MLRN model (limit {MAX_MODEL_BYTES / 1e6:,.0f} MB); it is damaged or not a model file"
        )


def _load_failure(path: Path, exc: BaseException) -> str:
    """A whole, readable reason for a torch.load failure (torch's own text is long, with the reason last)."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as os_exc:
        return f"it cannot be read ({os_exc.strerror or os_exc})"
    if not head or (head[:2] != b"PK" and head[:1] != b"\x80"):  # neither a zip nor a pickle
        return "it is not a PyTorch model file at all (random or foreign bytes); pick an MLRN model file (.pt)"
    unsafe = next((ln for ln in lines if "Unsupported global" in ln or "WeightsUnpickler error" in ln), None)
    if unsafe is not None:
        detail = unsafe.split("WeightsUnpickler error:", 1)[-1].strip()
        detail = re.sub(r"\s*(was not an allowed global|Please file an issue).*$", "", detail, flags=re.S)
        detail = detail.split(" This file can still")[0][:160]
        return (
            f"it contains program code or objects that are not plain weights ({detail}), so it was not loaded "
            "(loading it could run that code). Use model files only from sources you trust, or export the "
            "model again from MLRN Studio"
        )
    if head[:2] == b"PK":
        return "the file is damaged or incomplete (a broken archive); copy or download it again"
    last = lines[-1] if lines else type(exc).__name__
    return f"it is not a readable MLRN model file ({type(exc).__name__}: {last[:160]})"


_HPARAM_KEYS = frozenset(
    {"scale", "features", "blocks", "kernels", "gff", "rsc", "image_skip", "x4_two_stages", "rgb_mean"}
)


def check_hparams(hparams: dict[str, Any], name: str = "model") -> None:
    """Refuse hyper-parameters outside sane bounds (ModelError), before anything is built."""

    def bad(what: str) -> ModelError:
        return ModelError(f"'{name}' cannot be used: its hyper-parameters are invalid ({what}); the file is damaged")

    unknown = sorted(set(hparams) - _HPARAM_KEYS)
    if unknown:
        raise ModelError(f"'{name}' has hyper-parameters this version cannot build: unknown {unknown}")

    def integer(key: str, default: int, low: int, high: int) -> None:
        value = hparams.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(f"{key}={value!r}, expected an integer from {low} to {high}")

    integer("scale", 2, 2, 4)
    integer("features", 32, 1, MAX_FEATURES)
    integer("blocks", 8, 1, MAX_BLOCKS)
    kernels = hparams.get("kernels", [[3, 3]])
    if not isinstance(kernels, (list, tuple)) or not 1 <= len(kernels) <= MAX_BYPASSES:
        raise bad(f"kernels={kernels!r:.60}, expected 1 to {MAX_BYPASSES} kernel sizes")
    for k in kernels:
        pair = [k, k] if isinstance(k, int) else k
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_KERNEL for v in pair)
        ):
            raise bad(f"kernel size {k!r:.40}, expected odd sizes from 1 to {MAX_KERNEL}")
    for key in ("gff", "rsc", "image_skip", "x4_two_stages"):
        if key in hparams and not isinstance(hparams[key], bool):
            raise bad(f"{key}={hparams[key]!r:.40}, expected true or false")
    mean = hparams.get("rgb_mean", [0.0, 0.0, 0.0])
    if (
        not isinstance(mean, (list, tuple))
        or len(mean) != 3
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean)
    ):
        raise bad(f"rgb_mean={mean!r:.60}, expected three numbers")


def _check_weights(mf: ModelFile, name: str) -> None:
    """Compare the stored weights with the network the header describes, built on the meta device."""
    import torch

    from mlrn_core.model import MLRN

    try:
        with torch.device("meta"):
            reference = MLRN(**mf.hparams)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{name}' has hyper-parameters this version cannot build: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    sd = mf.state_dict
    missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"'{name}' does not fit the MLRN it describes: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for key, shape in expected.items():
        value = sd[key]
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"'{name}' cannot be used: weight '{key}' is not a tensor; the file is damaged")
        if tuple(value.shape) != shape:
            raise ModelError(
                f"'{name}' cannot be used: its header describes a network whose '{key}' is {list(shape)}, "
                f"but the stored weights are {list(value.shape)}; the file is damaged or was edited"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ModelError(
                f"'{name}' cannot be used: its weights contain NaN or infinite values (it would write black or "
                "broken images); the training diverged or the file is damaged: use another model"
            )


def build_model(mf: ModelFile) -> MLRN:
    """Build the network a model file describes and load its weights strictly (as float32).

    The hyper-parameters are checked against bounds and against the weights' shapes first, so a file
    cannot make this allocate more than its own weights."""
    from mlrn_core.model import MLRN

    name = mf.path.name if mf.path else "model"
    check_hparams(mf.hparams, name)
    _check_weights(mf, name)
    try:
        model = MLRN(**mf.hparams)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{name}' has hyper-parameters this version cannot build: {exc}") from exc
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in mf.state_dict.items()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise ModelError(
            f"'{name}' does not fit the MLRN it describes: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"'{name}' has weights of the wrong shape: {str(exc).splitlines()[-1]}") from exc
    return model.eval()


def _entry_for(path: Path, kind: str, problems: list[tuple[Path, str]] | None = None) -> ModelEntry | None:
    try:
        mf = read_model_file(path)
        check_hparams(mf.hparams, path.name)
    except ModelError as exc:
        if problems is not None:
            problems.append((path, str(exc)))
        return None
    return ModelEntry(name=path.stem, kind=kind, path=path, scale=mf.scale, info=mf.info)


def model_problems() -> list[tuple[Path, str]]:
    """Files in the model folders that cannot be used, with the reason: (path, message)."""
    return scan_models()[1]


def scan_models(scale: int | None = None) -> tuple[list[ModelEntry], list[tuple[Path, str]]]:
    """:func:`list_models` and :func:`model_problems` in one pass over the files."""
    problems: list[tuple[Path, str]] = []
    return _scan(scale, problems), problems


def list_models(scale: int | None = None) -> list[ModelEntry]:
    """Built-in models first, then the user's, optionally only those of one scale."""
    return _scan(scale, None)


def _model_files() -> Iterator[tuple[str, Path]]:
    """(kind, path) of every model file, built-in ones first, each folder in name order (nothing read)."""
    for kind, folder in (("built-in", paths.builtin_models_dir()), ("user", paths.user_models_dir())):
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")):
                yield kind, path


def _scan(scale: int | None, problems: list[tuple[Path, str]] | None) -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    for kind, path in _model_files():
        entry = _entry_for(path, kind, problems)
        if entry and (scale is None or entry.scale == scale):
            entries.append(entry)
    return entries


def find_model(name: str) -> ModelEntry | None:
    """The first usable model of :func:`list_models` called ``name``, reading only the files of that name
    (a model's name is its file's stem): reading every model file cost each model loaded by name or path
    ~0.1 s on a 2-core CPU (``benchmarks/startup.py``)."""
    for kind, path in _model_files():
        if path.stem == name:
            entry = _entry_for(path, kind)
            if entry is not None:
                return entry
    return None


def resolve_model_path(spec: str | os.PathLike | None, scale: int | None) -> tuple[str, Path]:
    """Turn a model name, a path or None (the built-in default for ``scale``) into (name, path)."""
    if spec is None or str(spec) == "":
        if scale is None:
            raise ModelError("no model given and no scale to pick the built-in model by")
        name = builtin_name(scale)
        path = paths.builtin_models_dir() / f"{name}{MODEL_SUFFIX}"
        if not path.exists():
            raise ModelError(
                f"no built-in weights for x{scale}: {path.name} is missing from this installation (reinstalling "
                "MLRN Studio restores it); pass a model file or a user model with --model"
            )
        return name, path
    text = str(spec)
    entry = find_model(text)
    if entry is not None:
        return entry.name, entry.path
    path = Path(text).expanduser()
    if path.exists():
        return path.stem if path.is_file() else path.name, path
    for folder in (paths.user_models_dir(), paths.builtin_models_dir()):
        broken = folder / f"{text}{MODEL_SUFFIX}"
        if broken.is_file():  # there, but not listed: say why instead of "no model named"
            check_hparams(read_model_file(broken).hparams, broken.name)
    known = ", ".join(e.name for e in list_models()) or "none installed"
    raise ModelError(f"no model named or at '{text}' (known models: {known})")


def load_model(spec: str | os.PathLike | None = None, scale: int | None = None) -> LoadedModel:
    """Load a model by name, path or default; checks that it upscales by ``scale`` when one is given."""
    name, path = resolve_model_path(spec, scale)
    mf = read_model_file(path)
    if scale is not None and mf.scale != scale:
        raise ModelError(f"model '{name}' upscales x{mf.scale}, but x{scale} was asked for")
    model = build_model(mf)
    if mf.path is not None:
        known_models.remember(mf.path, model, mf.info)
    return LoadedModel(model=model, name=name, path=mf.path, info=mf.info)


def network_of(model: MLRN | known_models.KnownModel) -> MLRN:
    """The torch network of ``model``: itself, or a :class:`~mlrn_core.known_models.KnownModel`'s file loaded
    (and checked to be the file it was known as)."""
    if not isinstance(model, known_models.KnownModel):
        return model
    net = load_model(model.path).model
    if known_models.key_of(net) != model.key:
        raise ModelError(f"model file '{model.path}' changed while it was in use; run again")
    return net


def known_model(spec: str | os.PathLike | None = None, scale: int | None = None) -> LoadedModel | None:
    """:func:`load_model`'s model without reading it, when its file was loaded before byte for byte
    (:mod:`mlrn_core.known_models`): a :class:`~mlrn_core.known_models.KnownModel` in place of the network,
    which the OpenVINO paths run without torch. None when the file is new or changed, when ``spec`` names
    nothing installed, or when it is not a model of ``scale``: :func:`load_model` then reads it (and says
    what is wrong)."""
    if spec is None or str(spec) == "":
        if scale is None:
            return None
        name = builtin_name(scale)
        path: Path | None = paths.builtin_models_dir() / f"{name}{MODEL_SUFFIX}"
    else:
        name = str(spec)
        # a name is looked up as find_model does: built-in models first, then the user's (each file's stem)
        path = next((p for _kind, p in _model_files() if p.stem == name), None)
        if path is None:
            path = Path(name).expanduser()
            name = path.stem
        if path.is_dir():
            path, name = RunFolder(path).model, path.name
    found = known_models.lookup(path)
    if found is None:
        return None
    model, info = found
    if scale is not None and model.scale != scale:
        return None
    return LoadedModel(model=model, name=name, path=path, info=info)


# --- user models -------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    name = name.strip()
    if name.lower() == "auto":
        raise ModelError("'auto' is not a valid model name: it is the automatic choice of a built-in model")
    if not _NAME_RE.match(name) or name.startswith("mlrn-x"):
        raise ModelError(
            f"'{name}' is not a valid model name: use letters, digits, spaces, '.', '+', '-' or '_' "
            "(at most 64, not starting with 'mlrn-x', which is reserved for built-in models)"
        )
    return name


def user_model_path(name: str) -> Path:
    return paths.user_models_dir() / f"{validate_name(name)}{MODEL_SUFFIX}"


def register_user_model(source: str | os.PathLike, name: str, card: str, overwrite: bool = False) -> ModelEntry:
    """The one way a model enters the user models folder (trainer, wizard, Manage Models > Import).

    The file is checked (readable, and its weights fit its architecture) before anything is written; the
    copy and its Markdown ``card`` are written atomically.
    """
    mf = read_model_file(source)
    build_model(mf)  # refuse files whose weights do not fit before copying them in
    dest = user_model_path(name)
    if dest.exists() and not overwrite:
        raise ModelError(f"a user model named '{name}' already exists")
    info = dict(mf.info, name=name)
    try:  # created only if absent unless asked: an import running at the same time is never replaced
        atomic_torch_save(make_model_payload(mf.hparams, mf.state_dict, info), dest, overwrite=overwrite)
    except FileExistsError:
        raise ModelError(f"a user model named '{name}' already exists") from None
    atomic.write_text(dest.with_suffix(".md"), card)
    return ModelEntry(name=name, kind="user", path=dest, scale=mf.scale, info=info)


def rename_user_model(old: str, new: str) -> ModelEntry:
    src = user_model_path(old)
    if not src.exists():
        raise ModelError(f"no user model named '{old}'")
    dest = user_model_path(new)
    if dest.exists():
        raise ModelError(f"a user model named '{new}' already exists")
    os.replace(src, dest)
    if src.with_suffix(".md").exists():
        os.replace(src.with_suffix(".md"), dest.with_suffix(".md"))
    entry = _entry_for(dest, "user")
    assert entry is not None  # it was valid a moment ago
    return entry


def delete_user_model(name: str) -> None:
    path = user_model_path(name)
    if not path.exists():
        raise ModelError(f"no user model named '{name}'")
    path.unlink()
    path.with_suffix(".md").unlink(missing_ok=True)


def export_user_model(name: str, dest: str | os.PathLike) -> Path:
    src = user_model_path(name)
    if not src.exists():
        raise ModelError(f"no user model named '{name}'")
    dest = Path(dest)
    for a, b in ((src, dest), (src.with_suffix(".md"), dest.with_suffix(".md"))):
        if a.exists():
            with open(a, "rb") as fh, atomic_open(b, "wb") as out:
                shutil.copyfileobj(fh, out)
    return dest


def import_user_model(source: str | os.PathLike, name: str | None = None) -> ModelEntry:
    source = Path(source)
    card_path = source.with_suffix(".md")
    card = card_path.read_text(encoding="utf-8") if card_path.exists() else f"# {name or source.stem}\n"
    return register_user_model(source, name or source.stem, card)
