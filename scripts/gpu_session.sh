#!/usr/bin/env bash
# One prepared session on a lent CUDA GPU (issue 15, item 4). Everything it makes goes under $OUT.
#
#   scripts/gpu_session.sh train  [--dry-run]   # ~9.5 min: start or continue x2's second training campaign on the GPU
#   scripts/gpu_session.sh checks [--dry-run]   # ~3 min: CUDA tests, CUDA speed, fp16 vs fp32 Set14 PSNR
#   scripts/gpu_session.sh all    [--dry-run]   # both, for a machine without a per-command limit
#
# The lent machine allows 10 minutes per command and 15 minutes in all (start-up included), so run
# `train` and `checks` as two commands on the warm machine (order as you like; `checks` first costs
# nothing if the training then overruns). It needs torch (CUDA), numpy, Pillow and OpenCV; no PySide6 or
# platformdirs (MLRN_HOME points every per-user folder into $OUT/home) and no pytest (a small runner
# calls the test functions when pytest is missing). The benchmark images are looked for in
# $MLRN_SHARED_DATA, ./shared/data, then ../shared/data.
#
# --dry-run rehearses the whole script on a CPU in about two minutes: the same steps with a tiny
# budget (training a few steps on the CPU, the CUDA tests skip, the speed benchmark on the CPU with
# two Set14 images). Results: $OUT/SUMMARY.md, plus one log per step and the run folders.
#
# TRAIN_ARGS overrides the training command's options (default below; check scripts/train_weights.py
# --help, which may have moved on).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-all}
DRY=0
[ "${2:-}" = "--dry-run" ] || [ "${1:-}" = "--dry-run" ] && DRY=1
[ "$MODE" = "--dry-run" ] && MODE=all
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export MLRN_HOME="$OUT/home"
export PYTHONUNBUFFERED=1
for d in "${MLRN_SHARED_DATA:-}" "$PWD/shared/data" "$PWD/../shared/data"; do
  if [ -n "$d" ] && [ -d "$d/bench/Set14" ]; then export MLRN_SHARED_DATA="$d"; break; fi
done
SUMMARY="$OUT/SUMMARY.md"
note() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, note the outcome
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  note "- $name: exit $rc after $((SECONDS - t0)) s (limit $limit s): \`$*\`"
  return 0
}

note "# GPU session $(date -u +%FT%TZ) mode=$MODE dry_run=$DRY"
"$PY" - <<'PY' 2>&1 | tee -a "$SUMMARY"
import os, platform, torch
print(f"- python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, "
      f"bf16: {torch.cuda.is_bf16_supported() if torch.cuda.is_available() else '-'}, "
      f"data: {os.environ.get('MLRN_SHARED_DATA', 'NOT FOUND')}")
PY
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
if [ -z "${MLRN_SHARED_DATA:-}" ]; then
  note "- the shared data folder (bench/Set14, train/...) was not found: set MLRN_SHARED_DATA"
fi

if [ "$MODE" = train ] || [ "$MODE" = all ]; then
  # The next campaign (issue 23: one long run across sessions). x2, x3 and x4 finished their first campaigns'
  # schedules on 2026-12-04 and only x2 is still short of its Set14 floor, so this is x2's second campaign
  # (training/mlrn-x2-leg2/, from the shipped mlrn-x2, or continued from its committed checkpoint). It runs in a
  # copy under $OUT/training; bring it back with `cp -r FILES_AT/training/mlrn-x2-leg2 training/` and install it
  # with `python scripts/train_weights.py --install-run training/mlrn-x2-leg2/mlrn-x2-campaign --scales 2`.
  [ -d training ] && mkdir -p "$OUT/training" && cp -r training/. "$OUT/training/"
  if [ $DRY = 1 ]; then
    ARGS=${TRAIN_ARGS:---device cpu --campaign --scales 2 --minutes 0.5 --no-install}
    LIMIT=480
  else
    ARGS=${TRAIN_ARGS:---device cuda --campaign --scales 2 --minutes 8 --no-install}
    LIMIT=570
  fi
  # shellcheck disable=SC2086
  step train "$LIMIT" "$PY" scripts/train_weights.py $ARGS --runs "$OUT/runs" --campaigns "$OUT/training/mlrn-x2-leg2"
  tail -n 30 "$OUT/train.log" | sed 's/^/    /' >>"$SUMMARY"
fi

if [ "$MODE" = checks ] || [ "$MODE" = all ]; then
  if "$PY" -c "import pytest" 2>/dev/null; then
    step cuda_tests 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_tiling.py
  else
    step cuda_tests 240 "$PY" - <<'PY'
# pytest is not installed: call the test functions directly (tmp_path and monkeypatch made by hand)
import inspect, tempfile, traceback, pathlib, sys
sys.path.insert(0, ".")
import torch
import tests.test_cuda as t
if not torch.cuda.is_available():
    print("0 passed, 0 failed, all skipped (no CUDA GPU)"); sys.exit(0)
class MP:
    import os
    def setenv(self, k, v): self.os.environ[k] = v
passed = failed = 0
for name, fn in inspect.getmembers(t, inspect.isfunction):
    if not name.startswith("test_"): continue
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
    params = marks[0].args[1] if marks else [None]
    for p in params:
        kw = {}
        sig = inspect.signature(fn).parameters
        if "tmp_path" in sig: kw["tmp_path"] = pathlib.Path(tempfile.mkdtemp())
        if "monkeypatch" in sig: kw["monkeypatch"] = MP()
        if marks: kw[marks[0].args[0]] = p
        try:
            fn(**kw); passed += 1; print("PASS", name, p)
        except Exception:
            failed += 1; print("FAIL", name, p); traceback.print_exc()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
  fi
  tail -n 3 "$OUT/cuda_tests.log" | sed 's/^/    /' >>"$SUMMARY"
  if [ $DRY = 1 ]; then
    step speed 300 "$PY" benchmarks/precision.py --device cpu --variants fp32 bf16 --repeat 1 --size 160x120 \
      --set14-limit 2 --json "$OUT/speed.json"
  else
    # one run: fp32, fp16 and bf16 eager and fp16 after torch.compile, each with its MP/s and Set14 PSNR
    step speed 420 "$PY" benchmarks/precision.py --device cuda --variants fp32 fp16 bf16 compile-fp16 \
      --repeat 3 --size 2040x1148 --json "$OUT/speed.json"
  fi
  grep -A12 '^| variant' "$OUT/speed.log" | sed 's/^/    /' >>"$SUMMARY"
fi
note "- done $(date -u +%FT%TZ); files in $OUT"
