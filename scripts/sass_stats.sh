#!/usr/bin/env bash
# The SASS opcode histogram of one forward kernel: emits SPEC with the CLI, compiles it with
# nvcc for sm_90a, disassembles it with cuobjdump (a GPU machine's toolkit has it; the CPU
# image's does not) and counts opcodes. For comparing instruction counts of two variants,
# e.g. with and without dropout:
#   scripts/sass_stats.sh build/cli/flashjit '{"dtype":"fp16","head_dim":64,"dropout_p":0.2}'
set -euo pipefail
cli=$1; spec=$2
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
"$cli" emit --kind fwd --arch sm_90a --spec "$spec" >"$tmp/k.cu"
nvcc -arch=sm_90a -cubin -std=c++17 -I"$root/templates" -diag-suppress 177 -o "$tmp/k.cubin" "$tmp/k.cu"
cuobjdump -sass "$tmp/k.cubin" >"$tmp/k.sass"
echo "spec $spec: $(grep -cE '^\s+/\*[0-9a-f]{4}\*/' "$tmp/k.sass") instructions"
grep -oE '^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P[0-9T] )?[A-Z0-9_.]+' "$tmp/k.sass" | awk '{print $NF}' | sed 's/\..*//' |
  sort | uniq -c | sort -rn | head -25 | awk '{printf "%s %s  ", $2, $1} END {print ""}'
rm -rf "$tmp"
