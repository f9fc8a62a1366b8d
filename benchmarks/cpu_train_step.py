"""Measure one MLRN training step on the CPU in each precision / memory-format variant.

Answers "what gives the most training steps per hour on this CPU" for the weights issue:
fp32 vs bf16 autocast (oneDNN uses AVX512-BF16/AMX where the CPU has them), NCHW vs channels_last.
Run: ``python benchmarks/cpu_train_step.py --scale 2 --batch 16 --patch 48 --steps 6``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mlrn_core import MLRN  # noqa: E402


def run(variant: str, scale: int, batch: int, patch: int, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = MLRN(scale=scale, image_skip=True).train()
    cl = "cl" in variant
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    lo = torch.rand(batch, 3, patch, patch)
    hi = torch.rand(batch, 3, patch * scale, patch * scale)
    if cl:
        lo = lo.contiguous(memory_format=torch.channels_last)
    bf16 = "bf16" in variant
    t0, loss = None, None
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(lo)
        loss = F.l1_loss(out.float(), hi)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0), float(loss.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--variants", default="fp32,fp32-cl,bf16,bf16-cl")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x{a.scale} batch {a.batch} patch {a.patch}")
    base = None
    for v in a.variants.split(","):
        sps, loss = run(v, a.scale, a.batch, a.patch, a.steps)
        base = base or sps
        print(f"{v:8s} {sps:6.3f} steps/s  ({sps / base:4.2f}x fp32)  loss {loss:.4f}")


if __name__ == "__main__":
    main()
