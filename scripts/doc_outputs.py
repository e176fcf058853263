#!/usr/bin/env python3
"""Checks (or rewrites) the command outputs quoted in a Markdown file, e.g. docs/cli.md.

    scripts/doc_outputs.py --cli build/cli/flashjit docs/cli.md            # check: exit 1 on a difference
    scripts/doc_outputs.py --cli build/cli/flashjit --update docs/cli.md   # rewrite the outputs in place

Checked blocks are the fenced blocks whose info string is exactly `console`. In them a line
starting with `$ ` is a command; the lines after it, up to the next `$ ` line or the end of the
block, are its output (stdout and stderr together). A command that exits with a status other
than 0 is followed by a line `[exit status N]`. Every other block (```, ```sh, ```text, ...) is
documentation only: commands that need a GPU, or a setup that a script cannot make, go there.

Each block runs in a fresh scratch directory (the working directory, where commands may
write files such as specs.jsonl) with a fresh, empty kernel cache (FLASHJIT_CACHE_DIR), the
built CLI first on PATH as `flashjit`, and no visible GPU (CUDA_VISIBLE_DEVICES=""), so the
outputs are the same on every machine of one NVRTC version. Commands of a block run one
after the other, in that directory and cache, each with `bash -c`.

Normalisation (kept small, and applied to both sides before comparing):
  - the block's cache directory is shown as /tmp/fj-cache and its working directory as
    /tmp/fj-work (they are fresh temporary directories);
  - a number followed by " ms" (compile and load times) compares equal to any number;
  - the NVRTC library in `flashjit --version`'s "(NVRTC X.Y, PATH)" compares equal to any path
    (where NVRTC was found differs between machines);
  - trailing spaces at the end of a line are ignored.

Registers, cubin sizes and cache keys depend on the NVRTC version. The file records the version
its outputs were made with (`<!-- doc-outputs: NVRTC X.Y -->`); when the built CLI links another
one, the check is skipped (exit status 77, which ctest reports as skipped) and --update rewrites
the outputs and the marker. `NVRTC any` marks outputs that depend on no NVRTC version (the
script's own test fixtures, tests/docs/). Python 3 standard library only.
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test
CACHE_SHOWN = "/tmp/fj-cache"
WORK_SHOWN = "/tmp/fj-work"
MARKER = re.compile(r"<!-- doc-outputs: NVRTC (\S+) -->")
FENCE = re.compile(r"^(\s*)(```+)(.*)$")
TIME = re.compile(r"\b\d+(\.\d+)? ms\b")
NVRTC_PATH = re.compile(r"(\(NVRTC [0-9.]+, )[^)]*\)")
COMMAND_TIMEOUT_S = 300


def parse_blocks(lines):
    """(start, end, indent) of every ```console block: lines[start] is the fence, lines[end] the closing one."""
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = m.group(1), m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(ticks) and lines[j].strip().strip("`") == ""):
            j += 1
        if j == len(lines):
            raise SystemExit(f"unclosed fenced block at line {i + 1}")
        if info == "console":
            blocks.append((i, j, indent))
        i = j + 1
    return blocks


def split_commands(body, where):
    """[(command, [expected output lines])] of a block's lines."""
    items = []
    for line in body:
        if line.startswith("$ "):
            items.append((line[2:], []))
        elif not items:
            raise SystemExit(f"{where}: a console block must start with a '$ ' command line, not {line!r}")
        else:
            items[-1][1].append(line)
    return items


def run_block(cli, commands):
    """The actual output lines of each command, paths shown as CACHE_SHOWN / WORK_SHOWN."""
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="flashjit-doc-"))
    try:
        cache, work = os.path.join(scratch, "cache"), os.path.join(scratch, "work")
        os.makedirs(work)
        bindir = os.path.join(scratch, "bin")
        os.makedirs(bindir)
        os.symlink(os.path.realpath(cli), os.path.join(bindir, "flashjit"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHJIT_")}
        env.update(FLASHJIT_CACHE_DIR=cache, CUDA_VISIBLE_DEVICES="", LC_ALL="C",
                   PATH=bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"))
        outputs = []
        for command in commands:
            p = subprocess.run(["bash", "-c", command], cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT_S)
            text = p.stdout.decode("utf-8", "replace").replace(cache, CACHE_SHOWN).replace(work, WORK_SHOWN)
            out = text.splitlines()
            if p.returncode != 0:
                out.append(f"[exit status {p.returncode}]")
            outputs.append([line.rstrip() for line in out])
        return outputs
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def normalised(lines):
    return [NVRTC_PATH.sub(r"\1PATH)", TIME.sub("N ms", line.rstrip())) for line in lines]


def nvrtc_version(cli):
    out = subprocess.run([cli, "--version"], stdout=subprocess.PIPE, check=True).stdout.decode()
    m = re.search(r"\(NVRTC ([0-9.]+)[,)]", out)
    if not m:
        raise SystemExit(f"cannot read the NVRTC version from '{cli} --version': {out!r}")
    return m.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True, help="the built flashjit CLI (build/cli/flashjit)")
    ap.add_argument("--update", action="store_true", help="rewrite the quoted outputs instead of checking them")
    ap.add_argument("doc", help="the Markdown file, e.g. docs/cli.md")
    a = ap.parse_args()
    if not os.access(a.cli, os.X_OK):
        raise SystemExit(f"--cli: '{a.cli}' is not an executable (build it first: ninja -C build)")
    with open(a.doc, encoding="utf-8") as f:
        lines = f.read().split("\n")

    nvrtc = nvrtc_version(a.cli)
    marker = next((MARKER.search(line) for line in lines if MARKER.search(line)), None)
    if not a.update and (marker is None or marker.group(1) not in (nvrtc, "any")):
        recorded = f"NVRTC {marker.group(1)}" if marker else "no '<!-- doc-outputs: NVRTC X.Y -->' marker"
        print(f"skipped: {a.doc}'s outputs were made with {recorded}; this CLI links NVRTC {nvrtc} "
              f"(its registers, sizes and keys differ). Refresh: {sys.argv[0]} --cli {a.cli} --update {a.doc}")
        return SKIP

    failures, out_lines, pos, ncommands = 0, [], 0, 0
    for start, end, indent in parse_blocks(lines):
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[start + 1:end]]
        items = split_commands(body, f"{a.doc}:{start + 1}")
        actual = run_block(a.cli, [c for c, _ in items])
        out_lines += lines[pos:start + 1]
        for (command, expected), got in zip(items, actual):
            ncommands += 1
            if not a.update and normalised(expected) != normalised(got):
                failures += 1
                print(f"{a.doc}:{start + 1}: output of '$ {command}' differs from the quoted one:")
                sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(
                    expected, got, "quoted in " + a.doc, "actual", lineterm=""))
            out_lines += [indent + "$ " + command] + [indent + line if line else line for line in got]
        out_lines.append(lines[end])
        pos = end + 1
    out_lines += lines[pos:]

    if a.update:
        text = "\n".join(out_lines)
        tag = f"<!-- doc-outputs: NVRTC {nvrtc} -->"
        if marker is not None and marker.group(1) == "any":
            pass  # outputs that depend on no NVRTC version keep saying so
        elif MARKER.search(text):
            text = MARKER.sub(tag, text, count=1)
        else:
            raise SystemExit(f"{a.doc} has no '{tag}' marker line: add one (where the docs explain their outputs)")
        with open(a.doc, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"updated {ncommands} command outputs in {a.doc} (NVRTC {nvrtc})")
        return 0
    if failures:
        print(f"{failures} of {ncommands} quoted outputs in {a.doc} differ. If the new output is right, refresh "
              f"them: {sys.argv[0]} --cli {a.cli} --update {a.doc}")
        return 1
    print(f"{ncommands} quoted command outputs in {a.doc} match (NVRTC {nvrtc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
