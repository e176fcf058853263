#!/usr/bin/env bash
# One device call for the warp-specialised forward (issue 13): build the C++ tests and the
# Python package, run the tma_ws correctness matrix ([gpu][tma_ws]) and the compute-sanitizer
# subset (which includes a tma_ws tile), then bench/bench_tma_ws.py alone on the GPU.
# Usage: scripts/device_tma_ws.sh [tests|bench|all] (default all). Logs in $OUT.
set -u
mode=${1:-all}
export PYTHONUNBUFFERED=1
source "$(dirname "$0")/device_lib.sh"
summary() {
  echo "---- tests"
  grep -hE "tma_ws matrix|variants on tma_ws|worst|FAILED|failed|test cases:|All tests passed|ERROR SUMMARY|RACECHECK SUMMARY" \
    "$OUT"/ws_tests.log "$OUT"/memcheck.log "$OUT"/racecheck.log 2>/dev/null | head -30
  grep -h -A12 "FAILED:" "$OUT"/ws_tests.log 2>/dev/null | head -40
  cat "$OUT/sass.log" 2>/dev/null | tail -3
  echo "---- pytest"
  for f in pytest_a pytest_b pytest_c; do grep -hE "passed|failed|error" "$OUT/$f.log" 2>/dev/null | tail -2; done
  grep -hE "^(FAILED|ERROR) " "$OUT"/pytest_*.log 2>/dev/null | head -12
  echo "---- bench"
  sed -n '/^| D/,$p' "$OUT/bench.log" 2>/dev/null
  grep -h "Error\|error" "$OUT/bench.log" 2>/dev/null | tail -5
  echo "---- steps"
  cat "$OUT/steps.txt"
  (cd "$OUT" && tar czf logs.tar.gz --remove-files ./*.log ./*.txt 2>/dev/null)
}
trap summary EXIT
# A warm machine that installed this very tree already (a 'tests' call before 'bench')
# only rebuilds the C++ side.
tree="$(git -C "$root" diff HEAD | md5sum)$(git -C "$root" rev-parse HEAD)"
if python3 -c "import flashjit" 2>/dev/null && [ "$(cat /tmp/fj-installed-tree 2>/dev/null)" = "$tree" ]; then
  run build 300 ninja -C build
else
  build_all python
  echo "$tree" >/tmp/fj-installed-tree
fi
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache
if [ "$mode" != bench ]; then
  run sass 60 scripts/sass_stats.sh build/cli/flashjit \
    '{"dtype":"bf16","head_dim":128,"mask":"causal","tile":{"block_m":128,"block_n":128,"warps":12,"stages":2,"mma":"wgmma","pipeline":"tma_ws","pingpong":true}}'
  # In parallel and bounded (correctness only; the bench below runs alone).
  FLASHJIT_AUTOTUNE=0 run ws_tests 170 build/tests/flashjit_tests "[gpu][tma_ws],[gpu][block_mask]" &
  FLASHJIT_AUTOTUNE=0 run memcheck 170 compute-sanitizer --tool memcheck --error-exitcode 9 build/tests/flashjit_tests "forward small subset (for compute-sanitizer)" &
  FLASHJIT_AUTOTUNE=0 run racecheck 170 compute-sanitizer --tool racecheck --error-exitcode 9 build/tests/flashjit_tests "forward small subset (for compute-sanitizer)" &
  if [ -n "${WITH_PYTEST:-}" ]; then  # the Python GPU files too (issue 12's checks), bounded alike
    (cd /tmp && run pytest_a 250 python3 -m pytest -q -x -rs "$root/python/tests/test_dropin_gpu.py" "$root/python/tests/test_block_mask_gpu.py") &
    (cd /tmp && run pytest_b 250 python3 -m pytest -q -rs "$root/python/tests/test_dropout_gpu.py" "$root/python/tests/test_torch_compile_gpu.py") &
    (cd /tmp && run pytest_c 250 python3 -m pytest -q -rs "$root/python/tests/test_variants_gpu.py" \
      "$root/python/tests/test_backward_gpu.py::test_repeated_calls_take_the_checked_fast_path_and_keep_gradients") &
  fi
  wait
fi
if [ "$mode" != tests ]; then
  trap 'exit 143' TERM
  cd /tmp && run bench "${BENCH_LIMIT:-200}" python3 "$root/bench/bench_tma_ws.py" --deadline "${BENCH_DEADLINE:-140}" \
    --out "$OUT/tma_ws.json"
  cd "$root"
fi
