#!/usr/bin/env bash
# Prepares the git-ignored paths a device call carries (run(carry=[".deps", ".whl"])): the GPU
# image has no nlohmann-json or xxHash headers and no scikit-build-core, and no network.
#   .deps/include: nlohmann/json.hpp and xxhash.h from this machine's Debian packages
#   .whl:          scikit-build-core and its pure-Python dependencies for the image's Python 3.12
# Idempotent; run once per checkout before the first device call.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.deps/include" "$root/.whl"
cp -rp /usr/include/nlohmann "$root/.deps/include/"
for h in xxhash.h xxh3.h; do
  if [ -f "/usr/include/$h" ]; then cp -p "/usr/include/$h" "$root/.deps/include/$h"; fi
done
if ! ls "$root"/.whl/scikit_build_core-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --no-deps -d "$root/.whl" \
    scikit-build-core pathspec packaging
fi
du -sh "$root/.deps" "$root/.whl"
