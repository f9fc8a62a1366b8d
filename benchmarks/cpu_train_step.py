"""Measure one MLRN training step on the CPU in each precision / memory-format variant.

Answers "what gives the most training steps per hour on this CPU" for the weights issue:
fp32 vs bf16 autocast (oneDNN uses AVX512-BF16/AMX where the CPU has them), NCHW vs channels_last.
Run: ``python benchmarks/cpu_train_step.py --scale 2 --batch 16 --patch 48 --steps 6``;
``--variants bf16-cl,bf16-cl-compile --rounds 3`` weighs torch.compile against eager (interleaved rounds).
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


class Variant:
    """One way to run a training step: precision (fp32/bf16), memory format (cl) and torch.compile."""

    def __init__(self, name: str, scale: int, batch: int, patch: int) -> None:
        torch.manual_seed(0)
        self.name = name
        self.model = MLRN(scale=scale, image_skip=True).train()
        self.cl = "cl" in name
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-4)
        self.net = torch.compile(self.model) if "compile" in name else self.model
        self.bf16 = "bf16" in name
        self.lo = torch.rand(batch, 3, patch, patch)
        self.hi = torch.rand(batch, 3, patch * scale, patch * scale)
        if self.cl:
            self.lo = self.lo.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        self.steps(2)  # warm-up (and, with torch.compile, compilation)
        self.warmup_s = time.perf_counter() - t0

    def steps(self, n: int) -> float:
        """Run ``n`` steps; return steps per second."""
        t0 = time.perf_counter()
        for _ in range(n):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                out = self.net(self.lo)
            loss = F.l1_loss(out.float(), self.hi)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--steps", type=int, default=6, help="steps per variant and round")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (the best round counts)")
    ap.add_argument(
        "--variants",
        default="fp32,fp32-cl,bf16,bf16-cl",
        help="comma-separated: fp32, fp32-cl, bf16, bf16-cl, and any of them with -compile",
    )
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x{a.scale} batch {a.batch} patch {a.patch}")
    variants = [Variant(v, a.scale, a.batch, a.patch) for v in a.variants.split(",")]
    best = {v.name: 0.0 for v in variants}
    for _ in range(a.rounds):  # interleaved, so a change in machine load hits every variant alike
        for v in variants:
            best[v.name] = max(best[v.name], v.steps(a.steps))
    base = best[variants[0].name]
    for v in variants:
        sps = best[v.name]
        print(
            f"{v.name:16s} {sps:6.3f} steps/s  ({sps / base:4.2f}x {variants[0].name})  "
            f"warm-up/compile {v.warmup_s:5.1f} s"
        )


if __name__ == "__main__":
    main()
