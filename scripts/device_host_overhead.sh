#!/usr/bin/env bash
# On the GPU machine: host cost of the launch path, this tree against an older flashjit.
#   scripts/device_host_overhead.sh OLD_TAR [ROUNDS]
# OLD_TAR is `git archive <commit>` of the older version (carried, e.g. .old-src/*.tar).
# Builds the older library next to this one, links bench/host_overhead.cpp against both,
# warms each one's own cache and tuning database with one run, then alternates ROUNDS
# (default 5) measuring runs of each, so drift of the machine hits both alike. Every run
# is a new process: compile_hit_ms is a disk-cache hit, first_call_ms reads the tuning
# record. Prints one JSON line per run and a summary of medians; logs under $OUT.
set -euo pipefail
old_tar=$1
rounds=${2:-5}
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
root=$(pwd)
jobs=$(nproc)
log="$OUT/host_overhead.log"
inc="-DFLASHJIT_EXTRA_INCLUDE=$root/.deps/include"
lib_opts=(-DCMAKE_BUILD_TYPE=Release -DFLASHJIT_BUILD_TESTS=OFF -DFLASHJIT_BUILD_CLI=OFF -DFLASHJIT_BUILD_EXAMPLES=OFF)

rm -rf /tmp/fj-old && mkdir -p /tmp/fj-old && tar -xf "$old_tar" -C /tmp/fj-old
{
  cmake -S /tmp/fj-old -B /tmp/fj-old/build -G Ninja "${lib_opts[@]}" "$inc"
  ninja -C /tmp/fj-old/build flashjit
  cmake -S . -B build-host -G Ninja "${lib_opts[@]}" "$inc"
  ninja -C build-host flashjit flashjit_host_overhead
} >"$log" 2>&1 || { tail -30 "$log"; exit 1; }
# The older tree has no bench/: build the same source against its library and headers.
g++ -O2 -std=c++17 -o /tmp/fj-old/host_overhead bench/host_overhead.cpp \
  -I/tmp/fj-old/compiler/include -I/tmp/fj-old/runtime/include -I/usr/local/cuda/include \
  /tmp/fj-old/build/libflashjit.a -L/usr/local/cuda/lib64 -lnvrtc -lfmt -ldl -lpthread >>"$log" 2>&1

run() {  # run NAME BINARY
  FLASHJIT_CACHE_DIR=/tmp/fj-hostcache-$1 "$2" 20000 | sed "s/^{/{\"build\": \"$1\", /" | tee -a "$OUT/host_overhead.jsonl"
}
: >"$OUT/host_overhead.jsonl"
rm -rf /tmp/fj-hostcache-old /tmp/fj-hostcache-new
echo "warm-up (autotunes once, fills each cache):"
run old /tmp/fj-old/host_overhead >/dev/null
run new build-host/bench/host_overhead >/dev/null
: >"$OUT/host_overhead.jsonl"
for i in $(seq "$rounds"); do
  run old /tmp/fj-old/host_overhead
  run new build-host/bench/host_overhead
done
python3 - "$OUT/host_overhead.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["forward_us_median", "forward_us_p90", "compile_hit_ms", "first_call_ms", "process_start_to_first_result_ms"]
print(f"{'build':6} " + " ".join(f"{k:>34}" for k in keys))
for b in ("old", "new"):
    rs = [r for r in rows if r["build"] == b]
    print(f"{b:6} " + " ".join(f"{statistics.median(r[k] for r in rs):34.3f}" for k in keys))
PY
