#!/usr/bin/env bash
# Profiles the listed KV loop on the GPU machine: bench/probe_listed.py timed, then under
# Nsight Compute (per-kernel sections, and the SASS source page of the tensor-scanning
# document mask). Installs the package first if this machine has none. Logs in $OUT.
set -u
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
export FLASHJIT_CACHE_DIR=/tmp/flashjit-cache PYTHONUNBUFFERED=1
root=$(pwd)
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
  export PYTHONPATH=/tmp/site
fi
python3 -c "import flashjit" 2>/dev/null || python3 -m pip install -q --no-build-isolation --no-deps --no-index . \
  --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include" >"$OUT/pip.log" 2>&1
cd /tmp
timeout 200 python3 "$root/bench/probe_listed.py" --out "$OUT" "$@" >"$OUT/probe.log" 2>&1
tail -6 "$OUT/probe.log"
timeout 250 ncu --clock-control none --kernel-name regex:flashjit_fwd --launch-skip 0 --launch-count 10 \
  --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats --section InstructionStats \
  python3 "$root/bench/probe_listed.py" --once "$@" >"$OUT/ncu_sections.txt" 2>&1
echo "ncu sections rc=$?"
grep -E "flashjit_fwd|Duration|Compute \(SM\) Throughput|Warp Cycles Per Issued|Registers Per|Achieved Occupancy|Executed Ipc A" "$OUT/ncu_sections.txt" | head -80
timeout 120 ncu --clock-control none --kernel-name regex:custom --launch-skip 4 --launch-count 1 --set full \
  --import-source no -o "$OUT/docs" -f python3 "$root/bench/probe_listed.py" --once "$@" >"$OUT/ncu_full.log" 2>&1
echo "ncu full rc=$?"
ncu -i "$OUT/docs.ncu-rep" --page source --csv --print-source sass >"$OUT/docs_sass.csv" 2>&1
echo "sass rows: $(wc -l <"$OUT/docs_sass.csv")"
