"""``mlrn upscale`` under torchrun: two CPU processes share a folder, and every file is written exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlrn_core import registry
from mlrn_core.batch import record_path
from mlrn_core.model import MLRN

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed"),
]


def test_two_processes_share_the_files(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"img{i}.png" for i in range(5)] + ["sub/deep.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(src / name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff")  # fails on whichever rank gets it
    model = registry.save_model(tmp_path / "tiny.pt", MLRN(scale=2, features=4, blocks=1), info={})
    out = tmp_path / "out"

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mlrn_core.cli",
        "upscale",
        str(src),
        "-r",
        "--out-dir",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log  # the broken file makes its rank exit with 1
    assert "[rank 0/2]" in log and "[rank 1/2]" in log, log

    rows = [json.loads(line) for line in record_path(out).read_text(encoding="utf-8").splitlines()]
    by_input = Counter(Path(r["input"]).relative_to(src).as_posix() for r in rows)
    assert by_input == Counter([*names, "broken.jpg"])  # every file handled once, by one rank
    assert {r["rank"] for r in rows} == {0, 1}
    ok = sorted(Path(r["output"]).relative_to(out).as_posix() for r in rows if r["status"] == "ok")
    assert ok == sorted(n.replace(".png", "_x2.png") for n in names)
    assert [r["status"] for r in rows if r["input"].endswith("broken.jpg")] == ["failed"]
    for name in ok:
        with Image.open(out / name) as im:
            assert im.size == (40, 32)
    assert not list(out.rglob("*.part"))
