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
    assert any("main is not mlrn_core.cli:main" in p for p in problems), problems


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


@pytest.mark.parametrize("name, target", [("entry_mlrn", "mlrn_core.cli"), ("entry_studio", "app.main")])
def test_entry_scripts_expose_the_installed_main_without_running_it(name, target, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--definitely-not-an-option"])  # would exit if main ran
    module = _load(name)
    assert module.main is importlib.import_module(target).main


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
