"""The start-up check for Qt's X11 libraries, driven by ldd output captured on a machine that lacked two."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import platform_check

# ldd output of PySide6's libqxcb.so on a Debian machine with libxcb-icccm4 and libxcb-keysyms1 missing
# (trimmed; ldd repeats a missing library for every library that needs it)
FAKE_LDD = """\
\tlinux-vdso.so.1 (0x00007f7962a7f000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f79629b1000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f7961daf000)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f7961da8000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f7961da0000)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-randr.so.0 => /lib/x86_64-linux-gnu/libxcb-randr.so.0 (0x00007f7961d87000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7960c1e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f7962a81000)
"""
ALL_FOUND = "\n".join(line for line in FAKE_LDD.splitlines() if "not found" not in line)


@pytest.fixture
def fake_ldd(monkeypatch):
    """Make the check see FAKE_LDD (or what the test sets) for a plugin at a fake path, with apt-get present."""
    seen = {"output": FAKE_LDD, "calls": 0}

    def run_ldd(path: Path) -> str:
        seen["calls"] += 1
        return seen["output"]

    monkeypatch.setattr(platform_check, "xcb_plugin", lambda: Path("/venv/libqxcb.so"))
    monkeypatch.setattr(platform_check, "run_ldd", run_ldd)
    monkeypatch.setattr(platform_check.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(platform_check.os, "geteuid", lambda: 1000)
    return seen


def test_missing_libraries_are_listed_once_in_order():
    assert platform_check.missing_libraries(FAKE_LDD) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert platform_check.missing_libraries(ALL_FOUND) == []


def test_the_message_names_the_missing_libraries_and_the_one_apt_command(fake_ldd):
    message = platform_check.startup_problem({"DISPLAY": ":0"}, "linux")
    assert message is not None
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in message
    assert "    sudo apt-get install libxcb-icccm4 libxcb-keysyms1\n" in message
    assert "cursor" not in message  # Qt's own hint names libxcb-cursor0, which is installed here


def test_unknown_libraries_are_named_and_root_needs_no_sudo(fake_ldd, monkeypatch):
    monkeypatch.setattr(platform_check.os, "geteuid", lambda: 0)
    fake_ldd["output"] = FAKE_LDD + "\tlibfoo.so.3 => not found\n"
    message = platform_check.startup_problem({"DISPLAY": ":0"}, "linux")
    assert "    apt-get install libxcb-icccm4 libxcb-keysyms1\n" in message
    assert "provide: libfoo.so.3" in message


def test_without_apt_the_libraries_are_still_named(fake_ldd, monkeypatch):
    monkeypatch.setattr(platform_check.shutil, "which", lambda name: None)
    message = platform_check.startup_problem({"DISPLAY": ":0"}, "linux")
    assert "libxcb-icccm.so.4" in message and "distribution's packages" in message


def test_no_message_when_qt_can_start_or_does_not_use_x11(fake_ldd):
    fake_ldd["output"] = ALL_FOUND
    assert platform_check.startup_problem({"DISPLAY": ":0"}, "linux") is None
    fake_ldd["output"] = FAKE_LDD
    calls = fake_ldd["calls"]
    assert platform_check.startup_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert platform_check.startup_problem({"DISPLAY": ":0"}, "win32") is None
    assert fake_ldd["calls"] == calls  # not even looked at
    # a Wayland session may not need X11: only logged
    assert platform_check.startup_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    # but an explicit xcb choice is checked
    assert platform_check.startup_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}, "linux")


def test_no_display_is_said_plainly(fake_ldd):
    fake_ldd["output"] = ALL_FOUND
    message = platform_check.startup_problem({}, "linux")
    assert message is not None and "no display" in message


def test_main_prints_the_message_and_exits_before_qt_starts(monkeypatch, capsys):
    from app import main as main_mod

    class NoQt:
        @staticmethod
        def instance():
            return None

        def __init__(self, *args):
            raise AssertionError("QApplication must not be created when Qt cannot start")

    monkeypatch.setattr(main_mod, "QApplication", NoQt)
    monkeypatch.setattr(platform_check, "startup_problem", lambda: "MLRN Studio cannot open its window: test")
    assert main_mod.main([]) == 1
    assert "cannot open its window: test" in capsys.readouterr().err


def test_the_real_plugin_is_found_and_readable():
    """On Linux the installed PySide6 has the plugin the check reads (else the check silently does nothing)."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("the xcb plugin exists on Linux only")
    plugin = platform_check.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    output = platform_check.run_ldd(plugin)
    assert output is not None and "libQt6XcbQpa" in output
