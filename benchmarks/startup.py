"""Start-up and overhead of the ``mlrn`` command line (issue 31 item 4): where the seconds around the network go.

Each measurement runs in a fresh child process (nothing imported or loaded yet; the OS file cache is warm,
after one untimed warm-up run of each) and is the median of ``--repeat`` runs, so a busy machine's outliers
drop out. Two tables:

- commands: the wall time of ``python -c pass`` (the interpreter alone, the floor), ``mlrn --help``,
  ``mlrn --version``, ``mlrn upscale --help``, ``mlrn models --help``, an argument error (``mlrn bench``
  without its folders) and ``python -c "import mlrn_core.cli"``. ``mlrn`` is the console script next to
  this Python (``pyproject.toml``'s ``mlrn = mlrn_core.cli:run``), else ``python -m mlrn_core.cli``;
- phases of one ``mlrn upscale`` (``mlrn_core.cli.main``, default options but ``--device cpu``: ``--model
  auto``, precision auto, tile auto, prefetch on) of a 1200x800 crop (top left) of
  ``train/Photos15/Bridge_by_Sander_Klootwijk.png``, saved as a JPEG (quality 92, so Auto picks the photo
  model) in a temporary folder, x2, written as JPEG. The first run meets empty per-user caches (a fresh
  ``MLRN_HOME``) and is reported on its own; the median is of the ``--repeat`` runs after it. The child
  times the real functions of the code path, wrapped from here (each phase counts its own time, nested
  phases subtracted):

  - import: ``mlrn_core.cli`` and what ``cli_upscale.cmd_upscale`` imports (cli_upscale, batch, auto,
    registry, tiling, distributed: numpy, OpenCV, Pillow, ...; torch is imported where a PyTorch path or a
    model's weights need it, inside the phases below: not at all when OpenVINO runs a known model);
  - plan: ``batch.plan_batch`` (scan, Auto's look at the file's real format);
  - model load: ``registry.load_model`` (also as ``auto.load_model``), ``registry.known_model`` (a model file
    read before, found by its bytes without torch: ``mlrn_core.known_models``) and ``batch.load_auto_models``;
  - runner setup: ``tiling.TileRunner.__init__`` (weights to the device, channels_last for bf16);
  - auto path choice: ``backends.choose`` (since 62fb1cc: Auto's cached answer for this machine and model:
    hashing the weights, importing OpenVINO, asking it for its devices);
  - auto measurement: ``backends.measure``, everything in it (only when nothing is cached: the first run);
  - openvino compile: ``openvino_backend.OpenVinoNetwork.__init__`` (IR converted or read, compiled);
  - decode: ``imageio.declared_size`` and ``imageio.read_image``;
  - probe: ``TileRunner.run`` outside a picture (``batch``'s 8x8 check that the model gives finite values);
  - network: ``TileRunner.run`` per tile;
  - blend/assemble: ``tiling.upscale_picture`` less its ``TileRunner.run`` calls (tile weights, blending
    the overlaps, conversion to uint8, ``finish_upscaled``);
  - encode/write: ``imageio.write_image`` (JPEG encode, metadata, atomic rename);
  - other in-process: the rest of ``cli.main`` (parsing, device and precision, progress, record);
  - interpreter start + exit: the child's wall time less its in-process time (Python start-up, the
    benchmark's own stdlib imports, and the exit: ``os._exit`` as the console script ends an upscale since
    2026-12-08, ``cli.run``; before, the teardown of torch, OpenVINO and the thread pools, about 0.5 s).

  Three more runs under ``python -X importtime`` (not timed) give the import time of the whole run (the
  lazy imports too) by top-level package.

Usage: ``python benchmarks/startup.py [--repeat 5] [--threads N] [--skip-upscale] [--json FILE]``. Prints the
CPU model and thread count, Markdown tables and one JSON line. (``--child-upscale SRC OUT`` is the child.)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLRN_SHARED_DATA", REPO.parent / "shared" / "data"))
PHOTO = "train/Photos15/Bridge_by_Sander_Klootwijk.png"
SIZE = (1200, 800)  # W, H of the crop
PHASES = (
    "import",
    "plan",
    "model load",
    "runner setup",
    "auto path choice",
    "auto measurement",
    "openvino compile",
    "decode",
    "probe",
    "network",
    "blend/assemble",
    "encode/write",
    "other in-process",
    "interpreter start + exit",
)
MARK = "STARTUP-PHASES "


# --- the child: one timed mlrn upscale --------------------------------------------------------------------


class Timer:
    """Self time per phase: a wrapped call's time less that of the wrapped calls inside it (per thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, phase, fn):
        """``phase``: a name, or a function of the enclosing phase (None outside any) giving one."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            name = phase(stack[-1][0] if stack else None) if callable(phase) else phase
            frame = [name, 0.0]  # [phase, seconds of the wrapped calls inside]
            stack.append(frame)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                stack.pop()
                with self._lock:
                    self.seconds[name] += dt - frame[1]
                    self.calls[name] += 1
                if stack:
                    stack[-1][1] += dt

        return timed


def child_upscale(src: str, out: str, threads: int) -> None:
    t0 = time.perf_counter()
    import importlib

    import mlrn_core.cli as cli
    from mlrn_core import auto, batch, cli_upscale, distributed, imageio, registry, tiling  # noqa: F401

    try:  # since 62fb1cc: Auto measures the paths (mlrn_core.backends), cmd_upscale imports it
        backends = importlib.import_module("mlrn_core.backends")
    except ImportError:
        backends = None
    t_import = time.perf_counter() - t0

    timer = Timer()
    runners: list = []
    init = tiling.TileRunner.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        runners.append(self)

    tiling.TileRunner.__init__ = functools.wraps(init)(keep)
    patches = [
        (batch, "plan_batch", "plan"),
        (registry, "load_model", "model load"),
        (auto, "load_model", "model load"),
        (registry, "known_model", "model load"),
        (auto, "known_model", "model load"),
        (batch, "load_auto_models", "model load"),
        (tiling.TileRunner, "__init__", measuring_or("runner setup")),
        (imageio, "declared_size", "decode"),
        (imageio, "read_image", "decode"),
        (
            tiling.TileRunner,
            "run",
            lambda outer: "network" if outer == "blend/assemble" else measuring_or("probe")(outer),
        ),
        (tiling, "upscale_picture", "blend/assemble"),
        (imageio, "write_image", "encode/write"),
    ]
    if backends is not None:
        ov = importlib.import_module("mlrn_core.openvino_backend")
        patches += [(backends, "choose", "auto path choice"), (backends, "measure", "auto measurement")]
        patches += [(ov.OpenVinoNetwork, "__init__", measuring_or("openvino compile"))]
    for owner, attr, phase in patches:
        setattr(owner, attr, timer.wrap(phase, getattr(owner, attr)))
    argv = ["upscale", src, "-o", out, "--device", "cpu"] + (["--threads", str(threads)] if threads else [])
    rc = cli.main(argv)
    total = time.perf_counter() - t0
    seconds = dict(timer.seconds, **{"import": t_import})
    seconds["other in-process"] = total - sum(seconds.values())
    result = {
        "rc": rc,
        "in_process_s": total,
        "seconds": seconds,
        "tiles": timer.calls.get("network", 0),
        # torch's threads, or those of a run that never imported torch (mlrn_core.tiling.HostCPU)
        "threads": sys.modules["torch"].get_num_threads()
        if "torch" in sys.modules
        else getattr(runners[-1].device, "threads", 0)
        if runners
        else 0,
        "imports_torch": "torch" in sys.modules,
        "path": runner_path(runners[-1]) if runners else "",  # Auto's measurement makes runners before it
    }
    print(MARK + json.dumps(result), flush=True)
    cli.exit_now(0)  # as the console script ends an upscale (cli.run): no interpreter teardown


def measuring_or(phase: str):
    """``phase``, or "auto measurement" for a call made while Auto times the paths (its runners and tiles)."""
    return lambda outer: "auto measurement" if outer == "auto measurement" else phase


def runner_path(runner) -> str:
    """The inference path a TileRunner took: its precision, and what Auto said when it chose."""
    auto = getattr(runner, "auto", None)
    return runner.precision + (f" (Auto: {auto.text()})" if auto is not None else "")


# --- the parent ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def mlrn_command() -> list[str]:
    script = Path(sys.executable).with_name("mlrn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlrn_core.cli"]


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["MLRN_HOME"] = str(home)  # no user settings or records of the real home
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    return time.perf_counter() - t, proc


def median_wall(cmd: list[str], env: dict[str, str], repeat: int, ok=(0,)) -> dict:
    wall(cmd, env)  # warm-up: the OS file cache
    times = []
    for _ in range(repeat):
        dt, proc = wall(cmd, env)
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        times.append(dt)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "rc": proc.returncode}


def torch_imported(cmd: list[str], env: dict[str, str]) -> bool:
    """Whether ``cmd`` (a Python program) imports torch: ``-X importtime`` lists every module imported."""
    proc = subprocess.run(cmd, env=dict(env, PYTHONPROFILEIMPORTTIME="1"), cwd=REPO, capture_output=True, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in proc.stderr.splitlines())


def by_package(importtime: str) -> dict[str, float]:
    """Self import time (s) per top-level package from ``-X importtime``'s lines."""
    per: dict[str, float] = defaultdict(float)
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cum, name = (part.strip() for part in line[len("import time:") :].split("|"))
        per[name.split(".")[0]] += int(self_us) / 1e6
    return per


def upscale_once(src: Path, out: Path, env: dict[str, str], threads: int, importtime: bool = False) -> dict:
    """One timed ``mlrn upscale`` in a child: its phases, and with ``importtime`` the import time by package of
    the whole run (lazy imports included; those runs are not timed)."""
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else [])
    cmd += [str(Path(__file__).resolve()), "--child-upscale", str(src), str(out)]
    cmd += ["--threads", str(threads)] if threads else []
    dt, proc = wall(cmd, env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"mlrn upscale child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(line[len(MARK) :])
    if res["rc"] != 0:
        raise SystemExit(f"mlrn upscale exited {res['rc']}:\n{proc.stderr[-3000:]}")
    res["seconds"]["interpreter start + exit"] = dt - res["in_process_s"]
    res["wall_s"] = dt
    if importtime:
        res["imports"] = by_package(proc.stderr)
    return res


def make_photo(folder: Path) -> Path:
    from PIL import Image

    w, h = SIZE
    src = folder / "bridge_1200x800.jpg"
    with Image.open(SHARED / PHOTO) as im:
        im.convert("RGB").crop((0, 0, w, h)).save(src, quality=92)
    return src


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each command (the median is reported)")
    ap.add_argument("--threads", type=int, default=0, help="mlrn upscale --threads (default: torch's choice)")
    ap.add_argument("--skip-upscale", action="store_true", help="only the start-up commands")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child-upscale", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_upscale:
        child_upscale(*args.child_upscale, args.threads)
        return

    tmp = Path(tempfile.mkdtemp(prefix="mlrn-startup-"))
    try:
        env = child_env(tmp / "home")
        py, mlrn = [sys.executable], mlrn_command()
        info = {
            "cpu": cpu_model(),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": sys.version.split()[0],
            "mlrn": " ".join(mlrn),
            "repeat": args.repeat,
            "loadavg_start": os.getloadavg(),
        }
        print(json.dumps(info), flush=True)
        commands = {
            "python -c pass": (py + ["-c", "pass"], (0,)),
            "mlrn --help": (mlrn + ["--help"], (0,)),
            "mlrn --version": (mlrn + ["--version"], (0,)),
            "mlrn upscale --help": (mlrn + ["upscale", "--help"], (0,)),
            "mlrn models --help": (mlrn + ["models", "--help"], (0,)),
            "mlrn bench (argument error)": (mlrn + ["bench"], (2,)),
            'python -c "import mlrn_core.cli"': (py + ["-c", "import mlrn_core.cli"], (0,)),
        }
        rows = []
        for name, (cmd, ok) in commands.items():
            row = {"command": name, **median_wall(cmd, env, args.repeat, ok)}
            # the console script is not a Python command line: the same through python -m
            as_python = cmd if cmd[0] == sys.executable else py + ["-m", "mlrn_core.cli"] + cmd[len(mlrn) :]
            row["imports_torch"] = torch_imported(as_python, env)
            rows.append(row)
            print(json.dumps(row), flush=True)

        phases = None
        if not args.skip_upscale:
            src = make_photo(tmp)
            # the first run meets empty per-user caches (a fresh MLRN_HOME): Auto's measurement, OpenVINO's
            # conversion; reported on its own, the median is of the runs after it
            first = upscale_once(src, tmp / "out0.jpg", env, args.threads)
            print(json.dumps({"upscale_run": 0, "wall_s": round(first["wall_s"], 3)}), flush=True)
            runs = []
            for k in range(1, args.repeat + 1):
                runs.append(upscale_once(src, tmp / f"out{k}.jpg", env, args.threads))
                print(json.dumps({"upscale_run": k, "wall_s": round(runs[-1]["wall_s"], 3)}), flush=True)
            med = {p: statistics.median(r["seconds"].get(p, 0.0) for r in runs) for p in PHASES}
            total = statistics.median(r["wall_s"] for r in runs)
            around = statistics.median(r["wall_s"] - r["seconds"].get("network", 0.0) for r in runs)
            imports = [upscale_once(src, tmp / f"imp{k}.jpg", env, args.threads, True)["imports"] for k in range(3)]
            packages = {n for r in imports for n in r}
            by_pkg = {n: statistics.median(r.get(n, 0.0) for r in imports) for n in packages}
            phases = {
                "image": f"{PHOTO} [0:{SIZE[1]}, 0:{SIZE[0]}] as JPEG q92",
                "scale": 2,
                "tiles": runs[0]["tiles"],
                "threads": runs[0]["threads"],
                "imports_torch": [r["imports_torch"] for r in runs],
                "path": runs[0]["path"],
                "first_path": first["path"],
                "median_s": med,
                "total_wall_s": total,
                "around_network_s": around,
                "first_s": {p: first["seconds"].get(p, 0.0) for p in PHASES},
                "first_wall_s": first["wall_s"],
                "first_around_network_s": first["wall_s"] - first["seconds"].get("network", 0.0),
                "walls_s": [r["wall_s"] for r in runs],
                "runs_s": [r["seconds"] for r in runs],
                "imports_by_package_s": sorted(by_pkg.items(), key=lambda kv: -kv[1])[:12],
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    threads = f"{phases['threads']} threads" if phases else "threads not asked (--skip-upscale)"
    print(f"\n{info['cpu']}, {info['cores']} cores, {threads}, Python {info['python']}, ", end="")
    print(
        f"median of {args.repeat} runs (load average at start {', '.join(f'{v:.2f}' for v in info['loadavg_start'])})"
    )
    print(f"mlrn = {info['mlrn']}\n")
    print("| command | median s | min s | max s | imports torch |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
            f"{'yes' if r['imports_torch'] else 'no'} |"
        )
    if phases:
        print(
            f"\n`mlrn upscale` of {phases['image']}, x2, --device cpu, {phases['tiles']} tiles, path {phases['path']}: "
            f"{phases['total_wall_s']:.2f} s, of which {phases['around_network_s']:.2f} s around the network "
            f"(the first run, with empty per-user caches: {phases['first_wall_s']:.2f} s, "
            f"{phases['first_around_network_s']:.2f} s around the network, path {phases['first_path']}); "
            f"torch imported in {sum(phases['imports_torch'])} of the {len(phases['imports_torch'])} runs after it\n"
        )
        print("| phase | median s | share | first run s |")
        print("|---|---|---|---|")
        for p in PHASES:
            v = phases["median_s"][p]
            print(f"| {p} | {v:.3f} | {v / phases['total_wall_s']:.0%} | {phases['first_s'][p]:.3f} |")
        print(f"| **total (wall)** | {phases['total_wall_s']:.3f} | 100% | {phases['first_wall_s']:.3f} |")
        print("\n| import during `mlrn upscale`, by top-level package (`-X importtime`, self time, median of 3) | s |")
        print("|---|---|")
        for name, v in phases["imports_by_package_s"]:
            print(f"| {name} | {v:.3f} |")
    result = {**info, "loadavg_end": os.getloadavg(), "commands": rows, "upscale": phases}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
