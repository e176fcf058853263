#!/usr/bin/env bash
# Builds the library, CLI, example and unit tests with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan/ and runs ctest there:
#
#   scripts/sanitize.sh [CTEST ARGS...]     e.g. scripts/sanitize.sh -R unit
#
# Flags: -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# (a UBSan finding fails the test instead of scrolling by), -O1 -g without -DNDEBUG (asserts on,
# usable stacks). Python is off. Every test that runs in scripts/test.sh runs here too,
# the NVRTC compile matrix included: NVRTC itself is not instrumented, so ASan costs little
# there, but everything else (and ASan's allocator under NVRTC) is slower: on a 2-core machine
# the build takes about 4 minutes and ctest about 4 (the plain build's ctest: about 1).
#
# Leak checking stays on (detect_leaks=1). NVRTC is a prebuilt, uninstrumented library, but
# what it keeps until exit stays reachable from its globals, so LeakSanitizer reports nothing
# for it (checked with NVRTC 13.0: the whole ctest run, CLI and helper processes included,
# is leak-free). Should a later NVRTC report leaks from inside libnvrtc only, add a
# suppressions file (leak:libnvrtc) through LSAN_OPTIONS=suppressions=... rather than
# turning leak checking off.
#
# Environment: FLASHJIT_ASAN_BUILD_DIR (default: build-asan), FLASHJIT_ASAN_CXX (default:
# clang++-14 if present, else g++), FLASHJIT_JOBS (default: nproc); ASAN_OPTIONS and
# UBSAN_OPTIONS are used as given when set.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
case "${1:-}" in -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;; esac
build=${FLASHJIT_ASAN_BUILD_DIR:-build-asan}
jobs=${FLASHJIT_JOBS:-$(nproc)}
cxx=${FLASHJIT_ASAN_CXX:-$(command -v clang++-14 || echo g++)}
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
t0=$SECONDS
# (The top CMakeLists.txt links --as-needed, so clang builds start without libcuda.)
cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
  -DFLASHJIT_BUILD_TESTS=ON -DFLASHJIT_BUILD_CLI=ON -DFLASHJIT_BUILD_EXAMPLES=ON -DFLASHJIT_BUILD_PYTHON=OFF \
  >/dev/null || exit 1
cmake --build "$build" -j "$jobs" || exit 1
t_build=$((SECONDS - t0))

symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
# The tests fork CLI processes and race helpers: each inherits these. abort_on_error gives a
# core-style abort that ctest reports as a failure with the report above it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
t1=$SECONDS
ctest --test-dir "$build" --output-on-failure "$@"
rc=$?
echo "sanitize: build ${t_build} s, ctest $((SECONDS - t1)) s, exit status $rc (ASan+UBSan, $cxx, $build)"
exit $rc
