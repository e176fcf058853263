#!/usr/bin/env bash
# Builds the extension flashjit._C in place, without pip, for the python3 on PATH (the
# Python that will import it), e.g. on the GPU machine where scikit-build-core may be absent:
#
#   bash python/build_inplace.sh            # then: export PYTHONPATH=$PWD/build-python/python
#
# Needs cmake >= 3.22, ninja, the CUDA toolkit, fmt and nlohmann_json (point
# CMAKE_PREFIX_PATH at them if they are not installed system-wide) and nanobind importable
# from that python3. FLASHJIT_PY_BUILD overrides the build folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FLASHJIT_PY_BUILD:-$root/build-python}
py=$(command -v python3)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DFLASHJIT_BUILD_PYTHON=ON -DFLASHJIT_BUILD_TESTS=OFF -DFLASHJIT_BUILD_CLI=OFF \
    -DPython_EXECUTABLE="$py"
fi
cmake --build "$build" --target _C
echo "built: $(ls "$build"/python/flashjit/_C*.so)"
echo "use:   export PYTHONPATH=$build/python"
