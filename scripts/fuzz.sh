#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, -fsanitize=fuzzer,address,undefined)
# in build-fuzz/ and runs each for a bounded time:
#
#   scripts/fuzz.sh [SECONDS] [FUZZER...]    default: 60 s each; fuzz_spec_json fuzz_tuning_record fuzz_cache_entry
#                                            fuzz_expr fuzz_cli_args
#
# Each fuzzer runs on a copy of its seed corpus (tests/fuzz/corpus/<fuzzer>, never written)
# in build-fuzz/fuzz-work/<fuzzer>/corpus, which keeps growing from run to run; a crash, a
# sanitizer report, an input slower than -timeout or a blow-up past -rss_limit_mb is saved
# under build-fuzz/fuzz-work/<fuzzer>/artifacts/ (emptied at the start of each run) and its
# path printed. Reproduce one with: build-fuzz/tests/fuzz/<fuzzer> <artifact>.
# Exits non-zero if any fuzzer found something (or the build failed); prints one summary line
# per fuzzer last.
#
# Environment: FLASHJIT_FUZZ_BUILD_DIR (default: build-fuzz), FLASHJIT_FUZZ_CXX (default:
# clang++-14), FLASHJIT_JOBS (default: nproc), FLASHJIT_FUZZ_KEEP_GOING=1 (libFuzzer's fork
# mode: go on after a finding and collect all of them, e.g. to triage known bugs).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
case "${1:-}" in -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;; esac
seconds=${1:-60}
[ $# -gt 0 ] && shift
# (0 would be libFuzzer's "no time limit")
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS >= 1] [FUZZER...]" >&2; exit 2; }
all_fuzzers=(fuzz_spec_json fuzz_tuning_record fuzz_cache_entry fuzz_expr fuzz_cli_args)
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=("${all_fuzzers[@]}")
build=${FLASHJIT_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FLASHJIT_JOBS:-$(nproc)}
cxx=${FLASHJIT_FUZZ_CXX:-clang++-14}
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH  # FindCUDAToolkit: headers and NVRTC
fi
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

# ---- configure and build (both incremental) ---------------------------------------------
# -O1 -g without -DNDEBUG: asserts (nlohmann-json's included) stay on. Tests, CLI, examples
# and benchmarks are not needed here.
cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DFLASHJIT_FUZZ=ON -DFLASHJIT_BUILD_TESTS=OFF \
  -DFLASHJIT_BUILD_CLI=OFF -DFLASHJIT_BUILD_EXAMPLES=OFF -DFLASHJIT_BUILD_BENCH=OFF >/dev/null || exit 1
t_build=$SECONDS
cmake --build "$build" -j "$jobs" --target "${fuzzers[@]}" || exit 1
echo "fuzz: build took $((SECONDS - t_build)) s"

# ---- run ----------------------------------------------------------------------------------
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
failed=0
for f in "${fuzzers[@]}"; do
  case $f in
    fuzz_spec_json)     max_len=70000; dict=tests/fuzz/json.dict ;;  # > the 64 KiB spec limit
    fuzz_tuning_record) max_len=70000; dict=tests/fuzz/json.dict ;;  # a record embeds a spec
    fuzz_cache_entry)   max_len=8192;  dict=tests/fuzz/cache_entry.dict ;;
    fuzz_expr)          max_len=4200;  dict=tests/fuzz/expr.dict ;;  # > the 4096-byte text limit
    fuzz_cli_args)      max_len=4096;  dict=tests/fuzz/cli_args.dict ;;
    *) echo "fuzz: unknown fuzzer '$f' (have: ${all_fuzzers[*]})" >&2; exit 2 ;;
  esac
  work=$build/fuzz-work/$f
  mkdir -p "$work/corpus"
  rm -rf "$work/artifacts" && mkdir -p "$work/artifacts"
  cp -n tests/fuzz/corpus/"$f"/* "$work/corpus/"
  args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -dict="$dict"
        -artifact_prefix="$work/artifacts/" -print_final_stats=1)
  [ "${FLASHJIT_FUZZ_KEEP_GOING:-0}" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  printf '\n== %s: %s %s %s\n' "$f" "$build/tests/fuzz/$f" "${args[*]}" "$work/corpus"
  t0=$SECONDS
  # The outer timeout only guards against libFuzzer itself wedging: -timeout bounds one input.
  timeout --kill-after=30 $((seconds + 300)) "$build/tests/fuzz/$f" "${args[@]}" "$work/corpus" >"$work/log" 2>&1
  rc=$?
  elapsed=$((SECONDS - t0))
  # Show the end of the log (the finding and its stack, or the final stats).
  grep -v -e '^#[0-9]' -e '^INFO:' "$work/log" | grep -v -e '^"' -e '^###' | tail -n 40 | cut -c1-300
  last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -E -n 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -E -n 's/.*corp: ([0-9]+).*/\1/p' <<<"$last")
  mapfile -t found < <(find "$work/artifacts" -type f | sort)
  if [ $rc -eq 0 ] && [ ${#found[@]} -eq 0 ]; then
    result=ok
  else
    failed=1
    result="FOUND rc=$rc: ${found[*]:-(no artifact; see $work/log)}"
  fi
  summary+=("$(printf '%-19s %4ss  runs=%-9s cov=%-5s ft=%-6s corpus=%-5s %s' "$f" "$elapsed" "${runs:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")")
done

printf '\n== fuzz summary (%s s per fuzzer; logs in %s/fuzz-work/<fuzzer>/log)\n' "$seconds" "$build"
printf '%s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "fuzz: FOUND crashes/timeouts/leaks; reproduce with $build/tests/fuzz/<fuzzer> <artifact>"
fi
exit $failed
