#!/usr/bin/env bash
# One call on the GPU machine: build, CPU + GPU tests, compute-sanitizer on a small subset,
# the Python package and its tests, then the benchmark. Logs go to $OUT; a summary prints last.
# Usage: scripts/device_run.sh [all|tests|bench|variants|vcheck] [extra bench args...]
#   variants: build, install, then bench/bench_variants.py (user-written variants vs FlexAttention)
#   vcheck:   build, the C++ [gpu][variants] tests, install, the variant pytest, then bench_variants
#             (fits one 10-minute call; `tests` runs everything and may not)
#   vgpu:     build and the C++ [gpu][variants] tests only (block masks included)
#   bwd:      build, the C++ [gpu][backward] tests, memcheck + racecheck on [sanitize][backward]
#   vpy:      install, the variant and block-mask pytest, then bench_variants (no C++ build)
#   bwdpy:    install, the backward and core pytest, then bench/bench_backward.py (no C++ build)
#   bwdperf:  build, the C++ [gpu][backward] tests (no sanitizers), install, bench_backward.py
#   bwdbench: install, bench_backward.py (no C++ build, no tests)
set -u
mode=${1:-all}; shift || true
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1
root=$(pwd)
summary=()
step() {  # step NAME LOG TIMEOUT CMD...
  local name=$1 log=$2 limit=$3; shift 3
  local t0=$SECONDS
  echo "=== $name: $*" >>"$log"
  timeout "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  summary+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - t0)))")
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv >"$OUT/build_tests.log" 2>&1
if [ "$mode" != vpy ] && [ "$mode" != bwdpy ] && [ "$mode" != bwdbench ]; then
step configure "$OUT/build_tests.log" 300 cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
step build "$OUT/build_tests.log" 600 ninja -C build
fi

if [ "$mode" = vcheck ] || [ "$mode" = vgpu ]; then
  FLASHJIT_AUTOTUNE=0 step gpu_variants "$OUT/build_tests.log" 550 ./build/tests/flashjit_tests "[gpu][variants]~[sanitize]"
fi
if [ "$mode" = vgpu ]; then
  grep -E "checked|worst|equal to|FAILED|passed|failed" "$OUT/build_tests.log" | tail -30
  printf '%s\n' "${summary[@]}"
  exit 0
fi
if [ "$mode" = bwdperf ]; then
  FLASHJIT_AUTOTUNE=0 step gpu_backward "$OUT/build_tests.log" 480 ./build/tests/flashjit_tests "[gpu][backward]~[sanitize]"
  grep -E "checked|worst|skipped|FAILED|passed|failed|with expansion|REQUIRE|CHECK\(" "$OUT/build_tests.log" | tail -30
fi
if [ "$mode" = bwd ]; then
  FLASHJIT_AUTOTUNE=0 step gpu_backward "$OUT/build_tests.log" 480 ./build/tests/flashjit_tests "[gpu][backward]~[sanitize]"
  for tool in memcheck racecheck; do
    FLASHJIT_AUTOTUNE=0 step "$tool" "$OUT/build_tests.log" 240 compute-sanitizer --tool $tool --error-exitcode 9 \
      ./build/tests/flashjit_tests "[sanitize][backward]"
  done
  grep -E "checked|worst|skipped|FAILED|passed|failed|ERROR SUMMARY|RACECHECK SUMMARY|with expansion|REQUIRE|CHECK\(" "$OUT/build_tests.log" | tail -40
  printf '%s\n' "${summary[@]}"
  exit 0
fi
if [ "$mode" = all ] || [ "$mode" = tests ]; then
  step ctest_cpu "$OUT/build_tests.log" 600 ctest --test-dir build --output-on-failure -E '^gpu$'
  FLASHJIT_AUTOTUNE=0 step gpu_tests "$OUT/build_tests.log" 900 ./build/tests/flashjit_tests "[gpu]~[sanitize]"
  FLASHJIT_AUTOTUNE=0 step memcheck "$OUT/build_tests.log" 600 compute-sanitizer --tool memcheck --error-exitcode 9 \
    ./build/tests/flashjit_tests "[sanitize]"
  FLASHJIT_AUTOTUNE=0 step racecheck "$OUT/build_tests.log" 600 compute-sanitizer --tool racecheck --error-exitcode 9 \
    ./build/tests/flashjit_tests "[sanitize]"
fi

# Python: scikit-build-core is not on the image; it travels as wheels in .whl/.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >>"$OUT/python.log" 2>&1
  export PYTHONPATH=/tmp/site
fi
step pip_install "$OUT/python.log" 900 python3 -m pip install --no-build-isolation --no-deps --no-index -v . \
  --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
if [ "$mode" = vcheck ] || [ "$mode" = vpy ]; then
  cd /tmp; step pytest_variants "$OUT/python.log" 300 python3 -m pytest -q "$root/python/tests/test_variants_gpu.py" \
    "$root/python/tests/test_block_mask_gpu.py"; cd "$root"
fi
if [ "$mode" = bwdpy ]; then
  cd /tmp; step pytest_backward "$OUT/python.log" 300 python3 -m pytest -q "$root/python/tests/test_backward_gpu.py" \
    "$root/python/tests/test_gpu.py"; cd "$root"
fi
if [ "$mode" = all ] || [ "$mode" = tests ]; then
  cd /tmp; step pytest "$OUT/python.log" 900 python3 -m pytest -q "$root/python/tests"; cd "$root"
fi
if [ "$mode" = variants ] || [ "$mode" = vcheck ] || [ "$mode" = vpy ]; then
  cd /tmp; step bench_variants "$OUT/bench.log" 900 python3 "$root/bench/bench_variants.py" --out "$OUT" "$@"; cd "$root"
elif [ "$mode" = bwdpy ] || [ "$mode" = bwdperf ] || [ "$mode" = bwdbench ]; then
  cd /tmp; step bench_backward "$OUT/bench.log" 600 python3 "$root/bench/bench_backward.py" --out "$OUT" "$@"; cd "$root"
elif [ "$mode" != tests ]; then
  cd /tmp; step bench "$OUT/bench.log" 900 python3 "$root/bench/bench_attention.py" --out "$OUT" "$@"; cd "$root"
fi

echo "---- GPU test summary"
grep -E "compiled|cases checked|variants checked|worst|SKIPPED|FAILED|passed|failed" "$OUT/build_tests.log" | tail -20
grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/build_tests.log"
echo "---- pytest"
grep -E "passed|failed|error" "$OUT/python.log" | tail -5
echo "---- bench (tail)"
tail -40 "$OUT/bench.log" 2>/dev/null
echo "---- steps"
printf '%s\n' "${summary[@]}"
