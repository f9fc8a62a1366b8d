"""Start-up of the ``mlrn`` command line (issue 31 item 4): help, version and argument errors answer without
importing torch (about 2-4 s of a 2-core machine's start-up, ``benchmarks/startup.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

# what the console script does (pyproject.toml: mlrn = "mlrn_core.cli:main"), then which modules got imported
_RUN_MLRN = """
import json, sys
sys.argv = ["mlrn", *json.loads(sys.argv[1])]
try:
    from mlrn_core.cli import main
    rc = main()
except SystemExit as exc:
    rc = exc.code
print()
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules}))
"""


def _mlrn(*args: str) -> tuple[int, bool, str]:
    """Run ``mlrn ARGS`` in a fresh interpreter: its exit status, whether torch was imported, its output."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_MLRN, json.dumps(list(args))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip(), proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["rc"], result["torch"], proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "rc"),
    [
        (("--help",), 0),
        (("--version",), 0),
        (("models", "--help"), 0),
        (("bench", "--help"), 0),
        (("train", "--help"), 0),
        (("export", "--help"), 0),
        ((), 2),  # no command
        (("nosuch",), 2),  # an unknown command
        (("bench",), 2),  # a command's missing argument
        (("bench", "dir", "-s", "5"), 2),  # a value out of its choices
        (("-v", "train", "--kernels", "3x"), 2),  # a value its parser refuses
        (("upscale", "--help"), 0),  # the upscale parser's choices live in mlrn_core.batch_choices, without torch
        (("upscale", "photo.jpg", "-s", "5"), 2),
    ],
)
def test_help_version_and_argument_errors_do_not_import_torch(args: tuple[str, ...], rc: int) -> None:
    status, torch_imported, output = _mlrn(*args)
    assert status == rc, output
    assert not torch_imported, f"mlrn {' '.join(args)} imported torch"


def test_the_top_level_help_lists_every_command() -> None:
    status, _, output = _mlrn("--help")
    assert status == 0
    for command in ("upscale", "bench", "models", "train", "export"):
        assert command in output


def test_upscale_help_does_not_import_torch() -> None:
    status, torch_imported, output = _mlrn("upscale", "--help")
    assert status == 0, output
    assert not torch_imported


def test_the_light_parser_prints_the_same_help_as_the_full_one() -> None:
    """``mlrn --help`` and the other commands get a parser whose upscale entry is a stand-in (its module
    imports torch); what it prints must be what the full parser prints."""
    from mlrn_core.cli import build_parser

    light, full = build_parser(full=False), build_parser()
    assert light.format_help() == full.format_help()
    sub = next(a for a in full._actions if a.dest == "command")
    light_sub = next(a for a in light._actions if a.dest == "command")
    assert list(light_sub.choices) == list(sub.choices)
    for name, parser in sub.choices.items():
        if name != "upscale":
            assert light_sub.choices[name].format_help() == parser.format_help()


@pytest.mark.parametrize(
    "argv",
    [["upscale", "x.jpg"], ["-v", "upscale", "--help"], ["--verbose", "upscale"], ["--", "upscale"]],
)
def test_the_upscale_command_gets_the_full_parser(argv: list[str]) -> None:
    from mlrn_core.cli import _command_of

    assert _command_of(argv) == "upscale"


@pytest.mark.parametrize("argv", [[], ["--help"], ["-v"], ["models"], ["bench", "upscale"], ["-v", "train"]])
def test_other_commands_get_the_light_parser(argv: list[str]) -> None:
    from mlrn_core.cli import _command_of

    assert _command_of(argv) != "upscale"


def test_import_mlrn_core_does_not_import_torch_and_mlrn_still_resolves() -> None:
    code = (
        "import sys, mlrn_core, mlrn_core.cli\n"
        "before = 'torch' in sys.modules\n"
        "from mlrn_core import MLRN\n"
        "from mlrn_core.model import MLRN as direct\n"
        "print(before, MLRN is direct, mlrn_core.MLRN is direct, 'MLRN' in dir(mlrn_core))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "True", "True", "True"], proc.stderr


def test_an_unknown_attribute_of_mlrn_core_is_an_attribute_error() -> None:
    import mlrn_core

    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = mlrn_core.no_such_thing
    assert not hasattr(mlrn_core, "no_such_thing")


def test_the_console_script_ends_upscale_at_once_with_every_file_whole_and_every_line_out(tmp_path) -> None:
    """``mlrn`` (``cli.run``) ends an upscale with ``os._exit``, skipping the interpreter's teardown: the status,
    the outputs, the record and everything printed (stdout to a pipe is block-buffered) must still all be there."""
    from PIL import Image

    from tests.helpers import textured_image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(textured_image(30, 40, seed=1)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature and nothing more
    out = tmp_path / "out"

    def mlrn(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mlrn_core.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
        )

    plan = mlrn("upscale", str(folder), "--out-dir", str(out), "--model", "mlrn-x2", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "good.png" in plan.stdout and "broken.png" in plan.stdout and "2 files" in plan.stdout  # flushed

    done = mlrn("upscale", str(folder), "--out-dir", str(out), "--model", "mlrn-x2")
    assert done.returncode == 1, done.stderr  # one file failed: status 1, not 0 and not a crash
    assert "FAILED  " in done.stderr and "broken.png" in done.stderr
    assert "1 upscaled, 1 failed" in done.stderr  # the summary, the last thing printed
    with Image.open(out / "good_x2.png") as img:
        img.load()  # whole, not truncated
        assert img.size == (80, 60)
    assert not [p for p in out.iterdir() if ".part" in p.name]
    from mlrn_core.batch import record_path

    lines = [json.loads(line) for line in record_path(out).read_text(encoding="utf-8").splitlines()]
    assert sorted(line["status"] for line in lines) == ["failed", "ok"]  # the record, whole
