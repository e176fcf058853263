#!/usr/bin/env bash
# On the GPU machine (after scripts/device_run.sh built ./build and installed the package):
# 1. `flashjit tune` fills a fresh cache directory for the PEERS grid (specs x shapes);
# 2. the directory is copied to a new location, as if shipped to another machine;
# 3. a new process runs the same shapes from the copy: it must report no compile and no
#    tuning (runtime_stats and the FLASHJIT_LOG trace show it).
set -u
OUT=${OUT:-/tmp/flashjit-out}
shapes='b=16,sq=1024;b=4,sq=4096;b=1,sq=16384'
rm -rf /tmp/fj-tuned /tmp/fj-shipped
time build/cli/flashjit tune --specs bench/peers_grid_specs.json --shapes "$shapes" --cache-dir /tmp/fj-tuned
build/cli/flashjit cache stats --cache-dir /tmp/fj-tuned
cp -r /tmp/fj-tuned /tmp/fj-shipped
cd /tmp && FLASHJIT_CACHE_DIR=/tmp/fj-shipped FLASHJIT_LOG=1 python3 - <<'PY'
import time, torch, flashjit
for d in (64, 128):
    for n in (1024, 4096, 16384):
        for causal in (False, True):
            b, h = 16384 // n, 2048 // d
            q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            t0 = time.perf_counter(); flashjit.attention(q, k, v, causal=causal); torch.cuda.synchronize()
            print(f"D={d} N={n} causal={causal}: first call {1e3 * (time.perf_counter() - t0):.1f} ms")
stats = flashjit.runtime_stats()
print("runtime_stats:", stats)
assert stats["compiles"] == 0 and stats["tunings"] == 0, "the shipped cache should need no compile and no tuning"
print("OK: no compile, no tuning in a fresh process using the copied cache")
PY
