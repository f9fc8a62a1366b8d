"""The desktop bundle's spec checks out without building, and the check fails on a broken spec.

The build itself (``packaging/smoke.sh``) takes many minutes and is not part of the test suite.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build.spec"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_packaging_{name}", ROOT / "packaging" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_spec = _load("check_spec")


def mutated(tmp_path: Path, old: str, new: str) -> Path:
    text = SPEC.read_text(encoding="utf-8")
    assert old in text, f"the spec no longer contains {old!r}: update this test"
    path = tmp_path / "build.spec"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    return check_spec.check(path, specpath=ROOT, workpath=path.parent / "work")


def test_build_spec_checks_out():
    assert check_spec.check(SPEC) == []


def test_check_spec_command_line_passes(capsys):
    assert check_spec.main([]) == 0
    assert "OK" in capsys.readouterr().out


def test_a_missing_entry_script_fails_the_check(tmp_path):
    problems = problems_of(mutated(tmp_path, '"entry_mlrn.py"', '"entry_gone.py"'))
    assert any("entry_gone.py does not exist" in p for p in problems), problems


def test_an_entry_script_calling_the_wrong_main_fails_the_check(tmp_path):
    swapped = mutated(
        tmp_path,
        'ENTRY_MLRN = ROOT / "packaging" / "entry_mlrn.py"',
        'ENTRY_MLRN = ROOT / "packaging" / "make_icons.py"',
    )
    problems = problems_of(swapped)
    assert any("make_icons.py has no callable run" in p for p in problems), problems  # pyproject: mlrn_core.cli:run


def test_a_missing_data_file_fails_the_check(tmp_path):
    text = mutated(tmp_path, "return pairs  #", 'return pairs + [("resources/gone.pt", "mlrn_resources")]  #')
    assert any("gone.pt" in p and "does not exist" in p for p in problems_of(text))


def test_executables_must_match_pyproject(tmp_path):
    problems = problems_of(mutated(tmp_path, 'name="mlrn-studio"', 'name="studio"'))
    assert any("differ from pyproject" in p for p in problems), problems
    problems = problems_of(mutated(tmp_path, "console=False,", "console=True,"))
    assert any("should be windowed" in p for p in problems), problems


def test_an_uncommented_line_fails_the_check(tmp_path):
    problems = problems_of(mutated(tmp_path, "pyz = PYZ(a.pure)  #", "VERSION = 1\npyz = PYZ(a.pure)  #"))
    assert any("without a comment" in p and "VERSION = 1" in p for p in problems), problems


def test_excluding_a_module_the_app_imports_fails_the_check(tmp_path):
    problems = problems_of(mutated(tmp_path, '"PyQt5", "PyQt6"', '"PySide6.QtGui", "PyQt6"'))
    assert any("excludes 'PySide6.QtGui'" in p for p in problems), problems


def test_a_spec_that_raises_fails_the_check(tmp_path):
    problems = problems_of(mutated(tmp_path, "pyz = PYZ(a.pure)  #", "pyz = PYZ(a.nothing)  #"))
    assert any("running it failed" in p for p in problems), problems


@pytest.mark.parametrize(
    "name, target, function", [("entry_mlrn", "mlrn_core.cli", "run"), ("entry_studio", "app.main", "main")]
)
def test_entry_scripts_expose_the_installed_main_without_running_it(name, target, function, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--definitely-not-an-option"])  # would exit if main ran
    module = _load(name)
    assert getattr(module, function) is getattr(importlib.import_module(target), function)


def test_icons_are_shipped_and_can_be_redrawn(tmp_path):
    png = Image.open(ROOT / "resources" / "icons" / "mlrn-studio.png")
    assert png.size == (256, 256) and png.mode == "RGBA"
    ico = Image.open(ROOT / "resources" / "icons" / "mlrn-studio.ico")
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    make_icons = _load("make_icons")
    assert make_icons.main(["--out", str(tmp_path)]) == 0
    redrawn = Image.open(tmp_path / "mlrn-studio.png")
    assert redrawn.size == (256, 256) and redrawn.getpixel((128, 128))[3] == 255  # opaque inside
    assert redrawn.getpixel((0, 0))[3] < 64  # transparent corner (rounded square)


def test_the_bundle_carries_libexiv2_where_pyexiv2_loads_it(tmp_path):
    # pyexiv2/lib/__init__.py loads libexiv2 with ctypes from its own folder: PyInstaller's dependency scan
    # alone would put it beside the executables, and the app's XMP/IPTC keeping would fail to import
    import importlib.util

    spec = importlib.util.find_spec("pyexiv2")  # a dependency: missing must fail, not skip
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    recorded = check_spec.run_spec(SPEC, ROOT, tmp_path / "work")
    binaries = {(dest, src) for a in recorded.analyses for dest, src, _kind in a.binaries}
    expected = [n for n in ("libexiv2.so", "libexiv2.dylib", "exiv2.dll") if (lib / n).is_file()]
    assert expected, f"no libexiv2 in {lib}"
    for name in expected:
        assert (f"pyexiv2/lib/{name}", str(lib / name)) in binaries


OPENVINO_LIBS = check_spec.openvino_libs()  # the venv's openvino/libs, None without OpenVINO
needs_openvino = pytest.mark.skipif(OPENVINO_LIBS is None, reason="OpenVINO (pip wheel) not installed")


@needs_openvino
def test_the_bundle_carries_what_openvino_loads_at_run_time(tmp_path):
    # OpenVINO loads its device plugins, frontends and oneTBB's helpers by name from its own libs folder;
    # nothing links them, so PyInstaller's scan alone left the frozen app without any OpenVINO device
    recorded = check_spec.run_spec(SPEC, ROOT, tmp_path / "work")
    a = recorded.analyses[0]
    binaries = {dest: src for dest, src, _kind in a.binaries}
    for part in ("intel_cpu_plugin", "intel_gpu_plugin", "ir_frontend", "pytorch_frontend", "tbbbind", "tbbmalloc."):
        names = [p.name for p in OPENVINO_LIBS.iterdir() if part in p.name and "proxy" not in p.name]
        assert names, f"no {part} in {OPENVINO_LIBS}"
        for name in names:
            assert binaries.get(f"openvino/libs/{name}") == str(OPENVINO_LIBS / name)
    datas = {(Path(d) / Path(s).name).as_posix() for s, d in a.datas_in}
    if (OPENVINO_LIBS / "cache.json").is_file():  # the GPU plugin's tuned kernels
        assert "openvino/libs/cache.json" in datas
    unused = ("tensorflow", "jax", "paddle", "onnx", "gguf", "npu", "tbbmalloc_proxy")
    assert not [d for d in binaries if any(u in d for u in unused)]
    for module in ("openvino.frontend.tensorflow", "openvino.frontend.jax", "openvino.tools.benchmark"):
        assert module in a.excludes
    assert check_spec.openvino_problems("build.spec", a, ROOT) == []


@needs_openvino
@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('"*openvino_intel_cpu_plugin*",  #', '"*no_such_plugin*",  #', "without its CPU plugin"),
        ('"*openvino_ir_frontend*",  #', '"*no_such_frontend*",  #', "without its IR frontend"),
        ('"libOpenCL.so*",  #', '"libOpenCL.so*", "*/*openvino_intel_cpu*",  #', "without its CPU plugin"),
        ('"openvino.tools.benchmark",  #', '"openvino.tools",  #', "openvino.convert_model needs openvino.tools.ovc"),
    ],
)
def test_a_spec_leaving_out_what_openvino_needs_fails_the_check(tmp_path, old, new, expected):
    problems = problems_of(mutated(tmp_path, old, new))
    assert any(expected in p for p in problems), problems


@needs_openvino
def test_a_spec_leaving_out_the_int8_networks_fails_the_check(tmp_path):
    if not list((ROOT / "resources" / "openvino").glob("*.xml")):
        pytest.skip("no int8 network in resources/openvino")
    spec = mutated(
        tmp_path, 'OPENVINO_RESOURCE_SUFFIXES = {".xml", ".bin", ".json"}', "OPENVINO_RESOURCE_SUFFIXES = {}"
    )
    assert any("resources/openvino/" in p and "not bundled" in p for p in problems_of(spec))


def test_the_spec_builds_without_openvino_and_the_check_then_asks_nothing_of_it(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    recorded = check_spec.run_spec(SPEC, ROOT, tmp_path / "work")
    a = recorded.analyses[0]
    assert not [dest for dest, _src, _kind in a.binaries if dest.startswith("openvino/")]
    assert not [dest for _src, dest in a.datas_in if dest.startswith("openvino")]
    assert check_spec.openvino_libs() is None
    assert check_spec.openvino_problems("build.spec", a, ROOT) == []
