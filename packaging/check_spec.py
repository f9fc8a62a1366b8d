"""Check ``build.spec`` without building: CI runs this (a real build takes many minutes).

    python packaging/check_spec.py [--spec build.spec]

Checks that the spec

* compiles, and every line of code in it carries a comment (on the line or the line above);
* runs: it is executed with stand-ins for PyInstaller's ``Analysis``/``PYZ``/``EXE``/``COLLECT`` (PyInstaller
  need not be installed), which record what the spec asks for;
* names entry scripts, ``pathex`` folders, data files and icons that exist, and bundles the package
  ``mlrn_resources`` (its ``__init__.py`` under ``mlrn_resources/``);
* builds one executable per script of ``pyproject.toml`` (``[project.scripts]`` as console programs,
  ``[project.gui-scripts]`` windowed), all in one ``COLLECT``, each running only its own entry script,
  whose function of that name is the very function pyproject names (the entry scripts are imported, not run);
* excludes no module that ``mlrn_core`` or ``app`` imports;
* where ``openvino`` is installed in the checking venv (and not excluded): bundles its CPU plugin and IR
  frontend from the venv's ``openvino/libs/`` into ``openvino/libs/``, where OpenVINO loads them at run time
  (PyInstaller's dependency scan never finds them: nothing links them), does not exclude what
  ``openvino.convert_model`` imports, and bundles the shipped int8 networks (``resources/openvino/``).

Exit status 0 when all is well, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import io
import re
import sys
import tokenize
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOSING = re.compile(r"^[\s)\]},]*$")  # a line of closing brackets only needs no comment of its own

#: Files OpenVINO loads by name from its own ``libs`` folder, without which the frozen app has no OpenVINO path
#: (name parts, so the Linux, macOS and Windows wheels' names all match), and what each one does
OPENVINO_NEEDED = {
    "openvino_intel_cpu_plugin": "its CPU plugin (device CPU)",
    "openvino_ir_frontend": "its IR frontend (reads the .xml networks)",
}
#: Modules ``openvino.convert_model`` of a torch module imports (its PyTorch frontend comes with the second)
OPENVINO_CONVERT_MODULES = ("openvino.tools.ovc", "openvino.frontend.pytorch")
OPENVINO_RESOURCES = ("openvino", (".xml", ".bin", ".json"))  # resources/openvino: the shipped int8 networks


@dataclass
class Recorded:
    """What the spec asked PyInstaller for."""

    analyses: list[_Analysis] = field(default_factory=list)
    exes: list[_Exe] = field(default_factory=list)
    collects: list[_Collect] = field(default_factory=list)


class _Analysis:
    def __init__(
        self, recorded: Recorded, scripts, pathex=(), binaries=(), datas=(), hiddenimports=(), excludes=(), **kwargs
    ) -> None:
        self.scripts_in = [str(s) for s in scripts]
        self.pathex = [str(p) for p in pathex]
        self.datas_in = [(str(src), str(dest)) for src, dest in datas]
        self.hiddenimports = list(hiddenimports)
        self.excludes = list(excludes)
        self.kwargs = kwargs
        # The shapes PyInstaller 6 gives the spec back: (name, path, typecode) lists.
        self.scripts = [("pyi_rth_stand_in", "<runtime hook>", "PYSOURCE")]
        self.scripts += [(Path(s).stem, s, "PYSOURCE") for s in self.scripts_in]
        self.pure: list = []
        self.binaries = [(str(Path(dest) / Path(src).name), str(src), "BINARY") for src, dest in binaries]
        self.datas = [(str(Path(dest) / Path(src).name), src, "DATA") for src, dest in self.datas_in]
        recorded.analyses.append(self)


class _Pyz:
    def __init__(self, *tocs, **kwargs) -> None:
        self.tocs = tocs


class _Exe:
    def __init__(self, recorded: Recorded, *args, **kwargs) -> None:
        self.args = args
        self.name = kwargs.get("name")
        self.console = kwargs.get("console", True)
        self.icon = kwargs.get("icon")
        self.exclude_binaries = kwargs.get("exclude_binaries", False)
        self.scripts = [entry for arg in args if isinstance(arg, list) for entry in arg]
        recorded.exes.append(self)


class _Collect:
    def __init__(self, recorded: Recorded, *args, **kwargs) -> None:
        self.args = args
        self.name = kwargs.get("name")
        recorded.collects.append(self)


def uncommented_lines(source: str) -> list[int]:
    """Line numbers of code lines with no comment on them and none on the line above."""
    comments: set[int] = set()
    code: set[int] = set()
    strings: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments.add(tok.start[0])
        elif tok.type == tokenize.STRING and tok.start[0] != tok.end[0]:
            strings.update(range(tok.start[0] + 1, tok.end[0] + 1))  # inside a multi-line string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code.add(tok.start[0])
    lines = source.splitlines()
    return sorted(
        n for n in code - strings if n not in comments and (n - 1) not in comments and not CLOSING.match(lines[n - 1])
    )


def project_scripts(pyproject: Path) -> dict[str, tuple[str, bool]]:
    """{executable name: ("module:function", console?)} from [project.scripts] and [project.gui-scripts]."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib

        project = tomllib.loads(text).get("project", {})
        tables = {"scripts": project.get("scripts", {}), "gui-scripts": project.get("gui-scripts", {})}
    except ModuleNotFoundError:  # Python 3.10: read the two small tables by hand
        tables = {}
        for table in ("scripts", "gui-scripts"):
            body = re.search(rf"^\[project\.{table}\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
            pairs = re.findall(r'^\s*"?([\w.-]+)"?\s*=\s*"([^"]+)"', body.group(1), re.M) if body else []
            tables[table] = dict(pairs)
    out = {name: (target, True) for name, target in tables["scripts"].items()}
    out.update({name: (target, False) for name, target in tables["gui-scripts"].items()})
    return out


@functools.lru_cache(maxsize=8)
def imported_modules(*packages: Path) -> frozenset[str]:
    """Every absolute module name imported anywhere in the given source folders."""
    names: set[str] = set()
    for package in packages:
        for path in package.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
    return frozenset(names)


def load_module_from(path: Path) -> types.ModuleType:
    """Import a script by path under a private name (its ``if __name__ == "__main__"`` part does not run)."""
    spec = importlib.util.spec_from_file_location(f"_checked_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def resolve(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def openvino_libs() -> Path | None:
    """The checking venv's ``openvino/libs`` folder (the pip wheel's), None without OpenVINO or that folder."""
    spec = importlib.util.find_spec("openvino")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = Path(list(spec.submodule_search_locations)[0]) / "libs"
    return libs if libs.is_dir() else None


def openvino_problems(name: str, a: _Analysis, specpath: Path) -> list[str]:
    """What the bundle's OpenVINO would lack at run time (nothing to check where it is not installed)."""
    libs = openvino_libs()
    if libs is None or any(ex == "openvino" for ex in a.excludes):
        return []
    problems = []
    bundled = {Path(dest).as_posix() for dest, _src, _kind in a.binaries}  # after the spec's own filtering
    for part, what in OPENVINO_NEEDED.items():
        installed = sorted(p.name for p in libs.iterdir() if part in p.name)
        if installed and not any(f"openvino/libs/{n}" in bundled for n in installed):
            problems.append(
                f"{name}: bundles openvino without {what}: {installed[0]} is not in openvino/libs/, "
                "where OpenVINO loads it at run time"
            )
    for module in OPENVINO_CONVERT_MODULES:
        hit = next((ex for ex in a.excludes if module == ex or module.startswith(ex + ".")), None)
        if hit:
            problems.append(f"{name}: excludes {hit!r}, but openvino.convert_model needs {module}")
    folder, suffixes = OPENVINO_RESOURCES
    dests = {(Path(d) / Path(s).name).as_posix() for s, d in a.datas_in}
    source = specpath / "resources" / folder
    shipped = sorted(p.name for p in source.glob("*") if p.suffix in suffixes) if source.is_dir() else []
    for file in shipped:
        if f"mlrn_resources/{folder}/{file}" not in dests:
            problems.append(f"{name}: resources/{folder}/{file} is not bundled (the int8 networks are read from there)")
    return problems


def run_spec(spec: Path, specpath: Path, workpath: Path) -> Recorded:
    """Execute the spec as PyInstaller would, with recording stand-ins for its classes."""
    recorded = Recorded()
    namespace = {
        "__file__": str(spec),
        "__name__": "__main__",
        "SPEC": str(spec),
        "SPECPATH": str(specpath),
        "specnm": spec.stem,
        "DISTPATH": str(specpath / "dist"),
        "workpath": str(workpath),
        "HOMEPATH": "",
        "WARNFILE": "",
        "Analysis": lambda *a, **k: _Analysis(recorded, *a, **k),
        "PYZ": _Pyz,
        "EXE": lambda *a, **k: _Exe(recorded, *a, **k),
        "COLLECT": lambda *a, **k: _Collect(recorded, *a, **k),
        "os": __import__("os"),
    }
    for unsupported in ("MERGE", "BUNDLE", "Tree", "Splash", "TOC"):
        namespace[unsupported] = _unsupported(unsupported)
    exec(compile(spec.read_bytes(), str(spec), "exec"), namespace)
    return recorded


def _unsupported(name: str):
    def fail(*args, **kwargs):
        raise RuntimeError(f"check_spec.py does not model {name}(); teach it before using it in the spec")

    return fail


def check(spec: Path, specpath: Path | None = None, workpath: Path | None = None) -> list[str]:
    """All problems found in ``spec`` (empty when it is fine). ``specpath`` stands in for its folder."""
    specpath = (specpath or spec.parent).resolve()
    source = spec.read_text(encoding="utf-8")
    try:
        compile(source, str(spec), "exec")
    except SyntaxError as exc:
        return [f"{spec.name}:{exc.lineno}: does not compile: {exc.msg}"]
    problems = [
        f"{spec.name}:{n}: code line without a comment: {source.splitlines()[n - 1].strip()}"
        for n in uncommented_lines(source)
    ]

    try:
        recorded = run_spec(spec, specpath, workpath or specpath / "build" / "check_spec")
    except Exception as exc:  # the spec itself failed: nothing below can be checked
        return [*problems, f"{spec.name}: running it failed: {type(exc).__name__}: {exc}"]

    if len(recorded.analyses) != 1:
        problems.append(f"{spec.name}: expected one Analysis shared by the executables, found {len(recorded.analyses)}")
    for a in recorded.analyses:
        for script in a.scripts_in:
            if not Path(script).is_file():
                problems.append(f"{spec.name}: entry script {script} does not exist")
        for folder in a.pathex:
            if not Path(folder).is_dir():
                problems.append(f"{spec.name}: pathex folder {folder} does not exist")
        for src, dest in a.datas_in:
            if not Path(src).exists():
                problems.append(f"{spec.name}: data file {src} (to {dest}) does not exist")
        dests = {(Path(d) / Path(s).name).as_posix() for s, d in a.datas_in}
        for needed in (
            "mlrn_resources/__init__.py",
            "mlrn_resources/models/__init__.py",
            "mlrn_resources/icons/__init__.py",
        ):
            if needed not in dests:
                problems.append(f"{spec.name}: {needed} is not bundled, so mlrn_resources is not importable frozen")
        imported = imported_modules(specpath / "mlrn_core", specpath / "app")
        for name in sorted(imported):
            hit = next((ex for ex in a.excludes if name == ex or name.startswith(ex + ".")), None)
            if hit:
                problems.append(f"{spec.name}: excludes {hit!r}, but the project imports {name}")
        problems += openvino_problems(spec.name, a, specpath)

    wanted = project_scripts(specpath / "pyproject.toml")
    exes = {exe.name: exe for exe in recorded.exes}
    if set(exes) != set(wanted):
        problems.append(f"{spec.name}: executables {sorted(exes)} differ from pyproject's scripts {sorted(wanted)}")
    if len(recorded.collects) != 1:
        problems.append(f"{spec.name}: expected one COLLECT (one shared folder), found {len(recorded.collects)}")
    else:
        collected = [arg for arg in recorded.collects[0].args if isinstance(arg, _Exe)]
        missing = [exe.name for exe in recorded.exes if exe not in collected]
        if missing:
            problems.append(f"{spec.name}: executables {missing} are not in the COLLECT")
    scripts_by_path = {str(Path(s).resolve()): s for a in recorded.analyses for s in a.scripts_in}
    for name, exe in exes.items():
        if not exe.exclude_binaries:
            problems.append(f"{spec.name}: EXE {name} needs exclude_binaries=True to share the COLLECT's libraries")
        if exe.icon and not Path(exe.icon).is_file():
            problems.append(f"{spec.name}: EXE {name} icon {exe.icon} does not exist")
        own = [path for _, path, _ in exe.scripts if str(Path(path).resolve()) in scripts_by_path]
        if len(own) != 1:
            problems.append(f"{spec.name}: EXE {name} runs {len(own)} entry scripts ({own}); it must run exactly one")
            continue
        if name not in wanted:
            continue
        target, console = wanted[name]
        if bool(exe.console) != console:
            kind = "a console program" if console else "windowed"
            problems.append(f"{spec.name}: EXE {name} should be {kind} like pyproject's {target}")
        if not Path(own[0]).is_file():
            continue  # reported above
        try:
            function = target.rpartition(":")[2]  # the entry script runs the function pyproject names
            main = getattr(load_module_from(Path(own[0])), function, None)
            expected = resolve(target)
        except Exception as exc:
            problems.append(f"{spec.name}: EXE {name}: importing {own[0]} or {target} failed: {exc!r}")
            continue
        if not callable(main):
            problems.append(f"{spec.name}: EXE {name}: {own[0]} has no callable {function}")
        elif main is not expected:
            problems.append(f"{spec.name}: EXE {name}: {Path(own[0]).name}'s {function} is not {target}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check build.spec without running PyInstaller.")
    parser.add_argument("--spec", type=Path, default=ROOT / "build.spec", help="the spec (default: build.spec)")
    parser.add_argument("--specpath", type=Path, help="the folder standing in for the spec's own (default: its folder)")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:  # the entry scripts import mlrn_core and app from this tree
        sys.path.insert(0, str(ROOT))
    problems = check(args.spec, args.specpath)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.spec.name}: OK (entry scripts, data files, executables and their main functions check out)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
