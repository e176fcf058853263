#!/usr/bin/env bash
# One device call for dropout (issue 11): build, the C++ [gpu][dropout] tests (kernel masks
# against the host keep-mask, keep rates, the mean over seeds, every variant's forward and
# backward against float64), compute-sanitizer on the dropout sanitizer case, and, when the
# Python package builds, the dropout pytest and the dropout benchmark rows. Logs in $OUT.
# Usage: scripts/device_dropout.sh [cpp|all] [extra bench_dropout.py args]
#   all: the benchmark runs first, alone on the GPU; then the tests in parallel.
set -u
mode=${1:-all}; shift || true
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1
source "$(dirname "$0")/device_lib.sh"
summary() {
  echo "---- C++"
  grep -hE "GPU dropout|with dropout|cases checked|FAILED|test cases:|All tests passed|ERROR SUMMARY|RACECHECK SUMMARY|expansion|  [0-9.e+-]+ <" \
    "$OUT"/{dropout_masks,dropout_variants,memcheck,racecheck}.log 2>/dev/null | head -60
  echo "---- pytest / bench"
  tail -3 "$OUT/pytest.log" 2>/dev/null
  sed -n '/^dropout/,$p' "$OUT/bench.log" 2>/dev/null
  echo "---- SASS"
  cat "$OUT/sass.log" 2>/dev/null
  echo "---- steps"
  cat "$OUT/steps.txt"
  (cd "$OUT" && tar czf logs.tar.gz --remove-files ./*.log ./*.txt 2>/dev/null)
}
trap summary EXIT
if [ "$mode" = all ]; then build_all python; else build_all; fi
# The benchmark first and alone on the GPU (autotune on, as users run it), then the tests.
if [ "$mode" = all ]; then
  cd /tmp && FLASHJIT_AUTOTUNE=1 run bench 300 python3 "$root/bench/bench_dropout.py" --out "$OUT" "$@"; cd "$root"
fi
export FLASHJIT_AUTOTUNE=0
# The seeds' kernel's SASS with and without dropout (default tile): the instruction budget.
(for p in 0 0.2; do scripts/sass_stats.sh build/cli/flashjit "{\"dtype\":\"fp16\",\"head_dim\":64,\"dropout_p\":$p}"; done \
  >"$OUT/sass.log" 2>&1) &
tests=./build/tests/flashjit_tests
run dropout_masks 300 $tests "[gpu][dropout]~[backward]" &
run dropout_variants 400 $tests "dropout: forward and backward of every variant against the float64 reference" &
(run memcheck 200 compute-sanitizer --tool memcheck --error-exitcode 9 $tests "dropout under the sanitizers"
 run racecheck 200 compute-sanitizer --tool racecheck --error-exitcode 9 $tests "dropout under the sanitizers") &
if [ "$mode" = all ]; then
  (cd /tmp && run pytest 300 python3 -m pytest -q "$root/python/tests/test_dropout_gpu.py" "$root/python/tests/test_backward_gpu.py") &
fi
wait
