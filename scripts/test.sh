#!/usr/bin/env bash
# Builds (if needed) and runs every test that can run on this machine:
#   1. ctest: unit tests (Catch2; NVRTC compiles included), golden FileCheck tests, the
#      example, the docs checks (docs/cli.md's quoted outputs, README.md's pictures), and the
#      GPU tests (which skip, printing why, without a GPU);
#   2. the Python package: pip install, then pytest (GPU tests skip with a reason); then the
#      manylinux wheel (scripts/build_wheel.sh, incremental after the install) installed alone
#      into a fresh venv, where scripts/wheel_smoke.py compiles a kernel from outside the repo;
#   3. with clang-14: the C++ tests under ASan+UBSan (scripts/sanitize.sh, build-asan/);
#   4. with clang-14: the libFuzzer harnesses, FLASHJIT_FUZZ_SECONDS each (scripts/fuzz.sh, build-fuzz/).
# Exits non-zero if any step fails; prints a summary last.
# Needs the packages of scripts/bootstrap.sh --deps-only.
# Environment: FLASHJIT_BUILD_DIR (default: build), FLASHJIT_JOBS (default: nproc),
# FLASHJIT_FUZZ_SECONDS (default: 60), FLASHJIT_SKIP_SANITIZERS=1 (skip steps 3 and 4).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${FLASHJIT_BUILD_DIR:-build}
jobs=${FLASHJIT_JOBS:-$(nproc)}
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

summary=()
failed=0
step() {  # step NAME CMD...: runs CMD, records its status and time
  local name=$1; shift
  local t0=$SECONDS rc
  printf '\n== %s: %s\n' "$name" "$*"
  "$@"
  rc=$?
  summary+=("$(printf '%-14s %-6s %4ss' "$name" "$([ $rc -eq 0 ] && echo ok || echo "rc=$rc")" $((SECONDS - t0)))")
  [ $rc -eq 0 ] || failed=1
  return $rc
}

# ---- C++: configure, build, ctest -------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
  step configure cmake -S . -B "$build" -G Ninja
fi
if [ $failed -eq 0 ]; then
  step build cmake --build "$build" -j "$jobs"
fi
if [ $failed -eq 0 ]; then
  step ctest ctest --test-dir "$build" --output-on-failure
fi
# Passing tests' output is only in ctest's log: show why the GPU tests skipped, if they did.
gpu_note=$(grep -m1 -h "SKIPPED (no GPU)" "$build/Testing/Temporary/LastTest.log" 2>/dev/null || true)

# ---- Python: install, pytest ------------------------------------------------------------
# Debian's own python3 refuses pip installs (PEP 668) unless told; pyenv/venv pythons don't.
if python3 -c 'import os, sys, sysconfig; sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi
export CMAKE_BUILD_PARALLEL_LEVEL=$jobs
if python3 -c "import nanobind, scikit_build_core" 2>/dev/null; then
  pip_args=(--no-build-isolation .)  # build deps present: no network needed
else
  pip_args=(.)                       # pip fetches nanobind and scikit-build-core
fi
# pytest runs from the repository root: there is no flashjit/ folder here, so `import
# flashjit` finds the installed package, not the sources in python/flashjit.
step pip_install python3 -m pip install "${pip_args[@]}" &&
  step pytest python3 -m pytest -q -rs python/tests

# ---- the wheel, in a fresh virtual environment ---------------------------------------------
# The wheel must work where it was not built: only the wheel is installed (no --index, so
# nothing else can come with it) into a new venv, and the smoke test runs from a temporary
# folder, so neither the sources nor the build folder can stand in for the installed package.
wheel_dir=$(mktemp -d "${TMPDIR:-/tmp}/flashjit-wheel-test-XXXXXX")
wheel_venv() {  # wheel_venv: installs the built wheel into $wheel_dir/venv and runs the smoke test
  local whl=("$build"/wheelhouse/flashjit-*manylinux*.whl)
  [ -f "${whl[0]}" ] || { echo "no manylinux wheel in $build/wheelhouse"; return 1; }
  echo "wheel: $(basename "${whl[0]}")"
  "$wheel_dir/venv/bin/python" -m pip install -q --no-index --no-deps "${whl[0]}" || return 1
  cp scripts/wheel_smoke.py "$wheel_dir/"
  (cd "$wheel_dir" && env -u PYTHONPATH FLASHJIT_CACHE_DIR="$wheel_dir/cache" \
     "$wheel_dir/venv/bin/python" wheel_smoke.py)
}
if python3 -m venv "$wheel_dir/venv" >"$wheel_dir/venv.log" 2>&1; then
  step wheel scripts/build_wheel.sh "$build/wheelhouse" &&
    step wheel_venv wheel_venv
else
  why=$(tail -n 1 "$wheel_dir/venv.log")
  echo "wheel: skipped: python3 -m venv failed ($why); Debian: apt-get install python3-venv"
  summary+=("$(printf '%-14s %-6s' wheel "skipped (python3 -m venv failed: $why; apt-get install python3-venv)")")
fi
rm -rf "$wheel_dir"

# ---- sanitizers and fuzzing (need clang-14) ---------------------------------------------
# 3. scripts/sanitize.sh: the C++ tests again, built with ASan+UBSan in build-asan/;
# 4. scripts/fuzz.sh: each libFuzzer harness of tests/fuzz for FLASHJIT_FUZZ_SECONDS (default
#    60) in build-fuzz/. Together about 12-15 minutes from scratch on 2 cores (two more builds
#    of ~4 min each, ctest under ASan ~3-4 min, 3 fuzzers x 60 s); incremental reruns about 7.
#    FLASHJIT_SKIP_SANITIZERS=1 skips both (quick local runs).
if [ "${FLASHJIT_SKIP_SANITIZERS:-0}" = 1 ]; then
  summary+=("$(printf '%-14s %-6s' sanitize/fuzz "skipped (FLASHJIT_SKIP_SANITIZERS=1)")")
elif ! command -v clang++-14 >/dev/null; then
  summary+=("$(printf '%-14s %-6s' sanitize/fuzz "skipped (no clang++-14: scripts/bootstrap.sh --deps-only)")")
else
  step sanitize scripts/sanitize.sh
  step fuzz scripts/fuzz.sh "${FLASHJIT_FUZZ_SECONDS:-60}"
fi

# ---- summary ------------------------------------------------------------------------------
printf '\n== summary\n'
printf '%s\n' "${summary[@]}"
[ -n "$gpu_note" ] && echo "gpu tests: $gpu_note"
if [ $failed -eq 0 ]; then echo "all tests passed"; else echo "FAILED"; fi
exit $failed
