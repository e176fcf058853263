#!/usr/bin/env bash
# One device call for the backward (issue 10): build, then in parallel the C++ [gpu][backward]
# cases (one process per test case: the float64 reference is CPU-bound), compute-sanitizer
# memcheck and racecheck on [sanitize][backward], and the Python package with its backward and
# torch.compile tests; then, alone on the GPU, bench/bench_backward.py. Logs go to $OUT.
# Usage: scripts/device_bwd_all.sh [extra bench_backward.py args...]
set -u
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1 FLASHJIT_AUTOTUNE=0
root=$(pwd)
t0=$SECONDS
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include" >"$OUT/build.log" 2>&1
ninja -C build >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "build: $((SECONDS - t0)) s"
tests=./build/tests/flashjit_tests
run() {  # run NAME LIMIT CMD...
  local name=$1 limit=$2; shift 2
  local s=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - s)) s" >>"$OUT/steps.txt"
}
: >"$OUT/steps.txt"
run variants 420 $tests "backward: every variant against the float64 reference" &
run random 420 $tests "backward: random expressions against the float64 reference" &
run mma_sync 420 $tests "backward: the mma.sync skeleton on every arch against the float64 reference" &
(run preprocess 300 $tests "bwd_preprocess: D = rowsum(dO * O) against float64, dQ accumulator zeroed"
 run memcheck 300 compute-sanitizer --tool memcheck --error-exitcode 9 $tests "[sanitize][backward]"
 run racecheck 300 compute-sanitizer --tool racecheck --error-exitcode 9 $tests "[sanitize][backward]") &
(python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1
 PYTHONPATH=/tmp/site run pip_install 300 python3 -m pip install --no-build-isolation --no-deps --no-index . \
   --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
 cd /tmp && run pytest 300 python3 -m pytest -q "$root/python/tests/test_backward_gpu.py" \
   $(ls "$root"/python/tests/test_torch_compile_gpu.py 2>/dev/null) "$root/python/tests/test_gpu.py") &
wait
cd /tmp && run bench 400 python3 "$root/bench/bench_backward.py" --out "$OUT" "$@"
cd "$root"
echo "---- C++"
grep -hE "cases checked|skipped\)|FAILED|test cases:|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT"/{preprocess,variants,random,mma_sync,memcheck,racecheck}.log
echo "---- pytest"
tail -3 "$OUT/pytest.log"
echo "---- bench"
sed -n '/^forward+backward/,$p' "$OUT/bench.log"
echo "---- steps"
cat "$OUT/steps.txt"
