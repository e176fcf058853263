# Shared by the scripts/device_*.sh calls (sourced): $OUT with its steps log, run(), and the
# build of the C++ tree and the Python package that each call starts with.
OUT=${OUT:-/tmp/flashjit-out}
mkdir -p "$OUT"
root=$(pwd)
: >"$OUT/steps.txt"

run() {  # run NAME LIMIT CMD...: CMD's output in $OUT/NAME.log, its status and time in steps.txt
  local name=$1 limit=$2; shift 2
  local s=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "$name rc=$? $((SECONDS - s)) s" >>"$OUT/steps.txt"
}

build_all() {  # build_all [python]: configure + ninja; with "python", pip install . alongside
  run configure 120 cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHJIT_EXTRA_INCLUDE="$root/.deps/include"
  if [ "${1:-}" = python ]; then
    (python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >"$OUT/pip_deps.log" 2>&1
     PYTHONPATH=/tmp/site run pip_install 300 python3 -m pip install --no-build-isolation --no-deps --no-index . \
       --config-settings=cmake.define.FLASHJIT_EXTRA_INCLUDE="$root/.deps/include") &
  fi
  run build 300 ninja -C build
  wait
}
