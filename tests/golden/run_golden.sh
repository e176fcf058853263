#!/usr/bin/env bash
# Usage: run_golden.sh <flashjit-cli> <FileCheck> <file.test>
# Runs the CLI with the arguments on the file's `RUN:` line and checks its output with
# FileCheck against the file's CHECK lines (LLVM lit style, without lit).
set -euo pipefail
cli=$1 filecheck=$2 golden=$3
args=$(grep -m1 '^# RUN:' "$golden" | sed 's/^# RUN: *//')
[ -n "$args" ] || { echo "no '# RUN:' line in $golden" >&2; exit 2; }
eval "\"$cli\" $args" | "$filecheck" --dump-input=fail "$golden"
