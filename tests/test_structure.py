"""Structure the code relies on: no import circle, and the one atomic writer leaves nothing half-written."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlrn_core import atomic
from tests.helpers import REPO


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file, type-checking imports included)."""
    modules = {}
    for pkg in ("mlrn_core", "app"):
        for f in (REPO / pkg).rglob("*.py"):  # packages inside too (mlrn_core/imageio/): __init__ is the package
            parts = f.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, file in modules.items():
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                # 'from pkg import sub' depends on the submodule; names that are not modules on the package
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in modules]
                if len(targets) < len(subs):
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle():
    graph = _import_graph()
    assert "mlrn_core.terminal" in graph["mlrn_core.batch"]  # the graph sees real imports
    assert "mlrn_core.imageio.base" in graph["mlrn_core.imageio.raw"]  # inside packages too
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # and finds a circle


def test_atomic_writer_replaces_whole_or_leaves_the_old_file(tmp_path: Path):
    target = tmp_path / "config.json"
    atomic.write_json(target, {"a": 1})
    assert target.read_text(encoding="utf-8") == '{\n  "a": 1\n}\n'
    with pytest.raises(RuntimeError, match="disk full"), atomic.atomic_open(target, "w") as fh:
        fh.write('{"a": 2, "b": ')
        raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == '{\n  "a": 1\n}\n'  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temporary file left
    with pytest.raises(ValueError, match="whole files"):
        atomic.atomic_open(target, "a").__enter__()


def test_imageio_modules_stay_small_and_tiff_is_written_by_tifffile():
    """Issue 35: the image I/O package has no module over 500 lines, and TIFF files are written by tifffile
    (EXIF by libexiv2), not by bytes built here."""
    sizes = {f.name: len(f.read_text(encoding="utf-8").splitlines()) for f in (REPO / "mlrn_core/imageio").glob("*.py")}
    assert len(sizes) >= 8 and max(sizes.values()) <= 500, sizes
    encoders = (REPO / "mlrn_core/imageio/encoders.py").read_text(encoding="utf-8")
    assert "tifffile.imwrite(" in encoders
    for f in (REPO / "mlrn_core/imageio").glob("*.py"):
        text = f.read_text(encoding="utf-8")
        assert "ImageFileDirectory_v2" not in text and "IFDRational" not in text, f.name  # no IFD built by hand
