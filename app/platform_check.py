"""Before Qt starts on Linux: are the system libraries of Qt's X11 (xcb) platform plugin installed?

When one is missing, Qt aborts with "Could not load the Qt platform plugin xcb" and a hint that names
``libxcb-cursor0`` whatever is actually missing. :func:`startup_problem` finds the missing libraries
itself (``ldd`` on the xcb plugin lists every unresolved library, transitively) and returns a message
with the one command that installs them (``apt-get`` on Debian/Ubuntu), or None when Qt can start. It
runs before the QApplication is made and imports only QtCore, which needs none of those libraries.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# shared library -> the Debian/Ubuntu package that installs it (what Qt's xcb plugin links against)
DEBIAN_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libpng16.so.16": "libpng16-16",
    "libz.so.1": "zlib1g",
}


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as "not found", each once, in the order listed."""
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def install_command(libraries: list[str]) -> tuple[str, list[str]]:
    """(the apt-get command for the libraries it knows, the libraries it does not know)."""
    packages, unknown = [], []
    for lib in libraries:
        pkg = DEBIAN_PACKAGES.get(lib)
        if pkg is None:
            unknown.append(lib)
        elif pkg not in packages:
            packages.append(pkg)
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return (f"{sudo}apt-get install " + " ".join(packages) if packages else ""), unknown


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt will (try to) use its X11 plugin: Linux, and no other platform chosen in QT_QPA_PLATFORM."""
    platform = env.get("QT_QPA_PLATFORM", "").strip()
    return not platform or platform.split(";")[0].split(":")[0] == "xcb"


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin of the installed PySide6 (None when this PySide6 has none)."""
    try:
        from PySide6.QtCore import QLibraryInfo  # QtCore needs none of the X11 libraries
    except ImportError:
        return None
    plugin = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def run_ldd(path: Path) -> str | None:
    """``ldd path`` output, or None when ldd is not available or fails."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("ldd failed: %s", exc)
        return None
    return done.stdout


def problem_message(missing: list[str], has_apt: bool) -> str:
    """What to tell the user when Qt's X11 plugin lacks ``missing`` libraries."""
    command, unknown = install_command(missing)
    lines = [
        "MLRN Studio cannot open its window: Qt's X11 support needs system libraries that are not installed:",
        "    " + ", ".join(missing),
        "",
    ]
    if has_apt and command:
        lines += ["Install them with this one command, then start mlrn-studio again:", "", "    " + command, ""]
        if unknown:
            lines.append("Also install the packages that provide: " + ", ".join(unknown))
    else:
        lines.append(
            "Install your distribution's packages that provide them (on Debian/Ubuntu: "
            f"{command or 'apt-file search ' + missing[0]}), then start mlrn-studio again."
        )
    lines.append("(The command line, mlrn, works without them.)")
    return "\n".join(lines)


def startup_problem(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """A message for the terminal when Qt's window system cannot start here, else None.

    Checks only what is certain to stop Qt: on Linux with the X11 plugin chosen, libraries the plugin
    cannot load; and no display at all (no DISPLAY and no WAYLAND_DISPLAY). With a Wayland session Qt
    may not need X11, so missing X11 libraries are then only mentioned in the log.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or not uses_xcb(env):
        return None
    plugin = xcb_plugin()
    output = run_ldd(plugin) if plugin is not None else None
    missing = missing_libraries(output) if output else []
    wayland = bool(env.get("WAYLAND_DISPLAY")) and not env.get("QT_QPA_PLATFORM")
    if missing:
        message = problem_message(missing, shutil.which("apt-get") is not None)
        if wayland or getattr(sys, "frozen", False):  # Qt may start on Wayland, or with the app folder's
            # own copies of the libraries (ldd need not see them): say it in the log only
            log.warning("%s", message)
            return None
        return message
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "MLRN Studio cannot open its window: there is no display (DISPLAY is not set). Start it from a "
            "desktop session, or use the command line (mlrn) on a server."
        )
    return None
