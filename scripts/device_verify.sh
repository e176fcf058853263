#!/usr/bin/env bash
# A short device call when little device time is left: the Python package and the CLI only,
# then, by priority, the host-overhead benchmark, `flashjit check` (its exit status), and the
# GPU pytest files that cover the eager paths (test_gpu, test_backward_gpu, test_dropin_gpu).
# At most 8 files come back: steps.txt and one log per step under $OUT.
set -u
export PYTHONUNBUFFERED=1
source "$(dirname "$0")/device_lib.sh"
run configure 120 cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
(python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
 PYTHONPATH=/tmp/site run pip_install 300 python3 -m pip install --no-build-isolation --no-deps --no-index . \
   --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include") &
run build_cli 300 ninja -C build flashjit_cli
wait
cd /tmp
FLASHJIT_CACHE_DIR=/tmp/fj-host run host 100 python3 "$root/bench/bench_host_overhead.py" --out "$OUT/host_overhead.json"
run cli_check 100 bash -c "'$root/build/cli/flashjit' check --spec '{\"dtype\":\"bf16\",\"head_dim\":64,\"num_heads_q\":6,\"num_heads_kv\":2,\"mask\":\"causal\"}' --shape 'b=2,sq=17,sk=1000;b=1,sq=300,sk=100'; echo \"exit status \$?\""
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache
run pytest 400 python3 -m pytest -q -x -rs "$root/python/tests/test_gpu.py" "$root/python/tests/test_backward_gpu.py" "$root/python/tests/test_dropin_gpu.py"
cat "$OUT/steps.txt"; tail -12 "$OUT/host.log"; tail -3 "$OUT/cli_check.log"; tail -5 "$OUT/pytest.log"
