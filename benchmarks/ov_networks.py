"""Time OpenVINO networks (IR files) side by side on the CPU: one tile each, interleaved round by round.

For comparing two builds of an int8 network (``release/int8.py``), e.g. the shipped one against an older one
taken from git (``git show REV:resources/openvino/mlrn-x2.int8.xml > old.xml``, and its ``.bin``). Prints the
CPU (model and flags), then per network the median seconds of one tile, the number of FakeQuantize (int8)
operations, and with ``--profile`` OpenVINO's time per operation kind (convolutions in int8 or f32).
``--isa AVX2`` sets ``ONEDNN_MAX_CPU_ISA`` before OpenVINO loads (an *emulation* of an AVX2-only CPU).

Usage: ``python benchmarks/ov_networks.py A.xml B.xml [--tile 192] [--rounds 10] [--isa AVX2] [--profile]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("xml", nargs="+", type=Path)
    ap.add_argument("--tile", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA, e.g. AVX2 (an emulation; said so)")
    ap.add_argument("--profile", action="store_true", help="also OpenVINO's time per operation kind")
    args = ap.parse_args()
    if args.isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.isa
    import numpy as np

    from benchmarks.backends import cpu_facts
    from mlrn_core import openvino_backend

    print(json.dumps({**cpu_facts(), "isa_limit": args.isa, "emulated": bool(args.isa), "threads": args.threads}))
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": args.threads,
        "PERF_COUNT": args.profile,
    }
    core = openvino_backend.core()
    requests = [core.compile_model(str(x), "CPU", config).create_infer_request() for x in args.xml]
    x = np.random.default_rng(0).random((1, 3, args.tile, args.tile), dtype=np.float32)
    for r in requests:
        r.infer({0: x})
    times: list[list[float]] = [[] for _ in requests]
    for _ in range(args.rounds):
        for i, r in enumerate(requests):
            t = time.perf_counter()
            r.infer({0: x})
            times[i].append(time.perf_counter() - t)
    for path, r, ts in zip(args.xml, requests, times):
        fq = sum(1 for op in core.read_model(str(path)).get_ordered_ops() if op.get_type_name() == "FakeQuantize")
        print(f"{statistics.median(ts):.3f} s per {args.tile} px tile, {fq} FakeQuantize: {path}")
        if args.profile:
            spent: dict[tuple[str, str], float] = collections.defaultdict(float)
            for p in r.profiling_info:
                spent[(p.node_type, p.exec_type)] += p.real_time.total_seconds()
            for (kind, impl), s in sorted(spent.items(), key=lambda kv: -kv[1])[:8]:
                print(f"    {s * 1000:7.1f} ms  {kind} {impl}")


if __name__ == "__main__":
    main()
