#!/usr/bin/env bash
# A short development loop on the GPU machine: build, the GPU tests, the SASS of one
# wgmma kernel, then a quick benchmark. Logs in $OUT; a summary prints last.
# Usage: scripts/device_iter.sh [bench args...]
set -u
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1
root=$(pwd)
log=$OUT/iter.log
t0=$SECONDS
{ cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include" &&
  ninja -C build; } >"$log" 2>&1 || { tail -30 "$log"; exit 1; }
echo "build: $((SECONDS - t0)) s"
FLASHJIT_AUTOTUNE=0 timeout 400 ./build/tests/flashjit_tests "[gpu]~[sanitize]" >"$OUT/gpu_tests.log" 2>&1
echo "gpu tests rc=$? ($((SECONDS - t0)) s)"
grep -E "compiled|cases checked|variants checked|worst|candidates on|passed|failed" "$OUT/gpu_tests.log" | tail -12
grep -B3 -A12 "FAILED" "$OUT/gpu_tests.log" | head -60
spec='{"dtype":"bf16","head_dim":128,"mask":{"kind":"causal"},"tile":{"block_m":128,"block_n":128,"warps":8,"stages":2,"mma":"wgmma"}}'
./build/cli/flashjit emit --spec "$spec" --arch sm_90a >"$OUT/k128.cu"
nvcc -cubin -gencode arch=compute_90a,code=sm_90a -Itemplates -o "$OUT/k128.cubin" "$OUT/k128.cu" &&
  cuobjdump -sass "$OUT/k128.cubin" >"$OUT/k128.sass" &&
  echo "SASS: $(grep -c HGMMA "$OUT/k128.sass") HGMMA, $(grep -c 'LDL\|STL' "$OUT/k128.sass") LDL/STL, $(grep -c 'BAR' "$OUT/k128.sass") BAR"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-build-isolation --no-deps --no-index . \
  --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include" >"$OUT/pip.log" 2>&1 || { tail -20 "$OUT/pip.log"; exit 1; }
echo "pip: $((SECONDS - t0)) s"
cd /tmp && timeout 300 python3 "$root/bench/bench_attention.py" --out "$OUT" "$@" >"$OUT/bench.log" 2>&1
echo "bench rc=$? ($((SECONDS - t0)) s)"
tail -30 "$OUT/bench.log"
