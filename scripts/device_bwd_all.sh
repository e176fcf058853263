#!/usr/bin/env bash
# One device call for the backward (issue 10), ordered so that what matters most comes back
# even when the call is cut short: build; bench/bench_backward.py alone on the GPU (autotune
# on, as users run it); then in parallel the C++ [gpu][backward] cases (one process per test
# case: the float64 reference is CPU-bound), compute-sanitizer memcheck and racecheck on
# [sanitize][backward], and the Python package with its backward / torch.compile tests and
# the training example. Logs go to $OUT; a summary prints last.
# Usage: scripts/device_bwd_all.sh [all|bench|tests] [extra bench_backward.py args...]
#   bench: build, install, the benchmark only; tests: build, install, every test, no benchmark.
#   With the 528-case matrix and backward tuning in the benchmark, `all` may pass a 10-minute
#   call: run `tests`, then `bench`.
set -u
mode=all
case "${1:-}" in all|bench|tests) mode=$1; shift ;; esac
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1
root=$(pwd)
: >"$OUT/steps.txt"
run() {  # run NAME LIMIT CMD...: CMD's output in $OUT/NAME.log, its rc and time in steps.txt
  local name=$1 limit=$2; shift 2
  local s=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - s)) s" >>"$OUT/steps.txt"
}
summary() {
  echo "---- bench"
  sed -n '/^forward+backward/,$p' "$OUT/bench.log" 2>/dev/null
  echo "---- C++"
  grep -hE "cases checked|skipped\)|FAILED|test cases:|All tests passed|ERROR SUMMARY|RACECHECK SUMMARY" \
    "$OUT"/{preprocess,variants,random,mma_sync,deterministic,capture_grads,bwd_tuning,bwd_candidates,memcheck,racecheck}.log 2>/dev/null
  echo "---- pytest / training"
  tail -2 "$OUT/pytest.log" 2>/dev/null
  tail -4 "$OUT/train.log" 2>/dev/null
  tail -2 "$OUT/example_bwd.log" 2>/dev/null
  echo "---- steps"
  cat "$OUT/steps.txt"
  # Few files come back from a device call: the logs travel as one archive.
  (cd "$OUT" && tar czf logs.tar.gz --remove-files ./*.log ./*.txt 2>/dev/null)
}
trap summary EXIT
run configure 120 cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
(python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >"$OUT/pip_deps.log" 2>&1
 PYTHONPATH=/tmp/site run pip_install 300 python3 -m pip install --no-build-isolation --no-deps --no-index . \
   --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include") &
run build 300 ninja -C build
wait
if [ "$mode" != tests ]; then
  cd /tmp && run bench 400 python3 "$root/bench/bench_backward.py" --out "$OUT" "$@"; cd "$root"
fi
[ "$mode" = bench ] && exit 0

export FLASHJIT_AUTOTUNE=0
tests=./build/tests/flashjit_tests
run variants 420 $tests "backward: every variant against the float64 reference" &
run random 420 $tests "backward: random expressions against the float64 reference" &
run mma_sync 420 $tests "backward: the mma.sync skeleton on every arch against the float64 reference" &
run deterministic 420 $tests "backward: deterministic mode is bit-identical over 10 runs" &
run capture_grads 420 $tests "backward: gradients into captured tensors against the float64 reference" &
run bwd_tuning 420 $tests "backward: the bwd_dkdv tile is tuned once\\, stored and correct" &
run bwd_candidates 420 $tests "backward: every bwd_dkdv tuning candidate against the float64 reference" &
run example_bwd 120 ./build/examples/backward_bf16 &
(run preprocess 120 $tests "bwd_preprocess: D = rowsum*"
 run memcheck 200 compute-sanitizer --tool memcheck --error-exitcode 9 $tests "[sanitize][backward]"
 run racecheck 200 compute-sanitizer --tool racecheck --error-exitcode 9 $tests "[sanitize][backward]") &
(cd /tmp && run pytest 300 python3 -m pytest -q "$root/python/tests/test_backward_gpu.py" \
   "$root/python/tests/test_torch_compile_gpu.py" "$root/python/tests/test_gpu.py"
 cd /tmp && run train 200 python3 "$root/examples/train_tiny_lm.py" --out "$OUT") &
wait
