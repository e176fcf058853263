#!/usr/bin/env python3
"""The README's benchmark figure, drawn from saved benchmark results (no GPU, needs matplotlib).

    python3 scripts/plot_perf.py [--fwd docs/perf/...-fwd-grid-....json]
                                 [--bwd docs/perf/...-backward-....json] [--out PNG]

Top panel: the forward PEERS grid (bench/bench_attention.py's results.json): TFLOP/s of
flashjit, SDPA flash (FlashAttention-2), SDPA cuDNN and compiled FlexAttention. Bottom panel:
forward+backward steps (bench/bench_backward.py's results.json): the same grid, and the
user-variant rows against FlexAttention. Above each group: flashjit's speed relative to the
first peer of that row (FA2 on the grid, Flex on the variants), a time ratio peer / flashjit
as in docs/performance.md. Every number comes from the JSON files; the bars are drawn by
bench/bench_attention.py's draw_bars, as its own plots are.

The output is saved as DATE-DEVICE-fwd-bwd.png beside the inputs by default (DATE from the
newer input's name); the README shows the newest docs/perf/*.png, which ctest
readme.images checks (scripts/check_readme_images.py). CI does not run this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench_attention import IMPLS as FWD_IMPLS, LABELS as FWD_LABELS, draw_bars  # noqa: E402

BWD_IMPLS = ["flashjit", "flashjit_det", "sdpa_flash", "sdpa_cudnn", "flex"]
LABELS = dict(FWD_LABELS, flashjit_det="flashjit deterministic", flex="FlexAttention (compiled)")
PERF = os.path.join(ROOT, "docs", "perf")
DEFAULT_FWD = os.path.join(PERF, "2026-12-02-h200-fwd-grid-session6.json")
DEFAULT_BWD = os.path.join(PERF, "2026-12-02-h200-backward-session9.json")


def date_of(path: str) -> str:
    m = re.match(r"(\d{4}-\d{2}-\d{2})-", os.path.basename(path))
    if not m:
        raise SystemExit(f"{path}: the name does not start with a date (YYYY-MM-DD-)")
    return m.group(1)


def annotate_ratios(ax, rows, xs) -> None:
    """flashjit's TFLOP/s over the row's first peer's (= the peer's time / flashjit's)."""
    for x, r in zip(xs, rows):
        res = r["results"]
        fj = res.get("flashjit", {}).get("tflops")
        peer = next((p for p in ("sdpa_flash", "flex") if res.get(p, {}).get("tflops")), None)
        if not fj or not peer:
            continue
        top = max(v.get("tflops") or 0.0 for v in res.values())
        name = "FA2" if peer == "sdpa_flash" else "Flex"
        ax.text(x, top * 1.01, f"{fj / res[peer]['tflops']:.2f}× {name}", ha="center", va="bottom", fontsize=7)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fwd", default=DEFAULT_FWD, help="bench_attention.py results (rows)")
    ap.add_argument("--bwd", default=DEFAULT_BWD, help="bench_backward.py results (grid, variants)")
    ap.add_argument("--out", default=None, help="PNG to write (default: docs/perf/DATE-DEVICE-fwd-bwd.png)")
    ap.add_argument("--dpi", type=int, default=100)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fwd = json.load(open(args.fwd))
    bwd = json.load(open(args.bwd))
    gpu = fwd["env"]["gpu"]
    if bwd["env"]["gpu"] != gpu:
        raise SystemExit(f"the inputs come from different GPUs: {gpu} and {bwd['env']['gpu']}")
    date = max(date_of(args.fwd), date_of(args.bwd))
    out = args.out or os.path.join(PERF, f"{date}-{gpu.split()[-1].lower()}-fwd-bwd.png")

    frows = fwd["rows"]
    brows = bwd["grid"] + bwd.get("variants", [])
    n = max(len(frows), len(brows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, 1.0 * n), 9))

    xs = draw_bars(top, frows, [p for p in FWD_IMPLS if any(p in r["results"] for r in frows)], LABELS)
    annotate_ratios(top, frows, xs)
    dtypes = sorted({r["dtype"] for r in frows})
    top.set_ylabel(f"TFLOP/s (forward, {'/'.join(dtypes)})")
    top.set_title(f"Forward, {date_of(args.fwd)}, {gpu}: batch × N = 16k tokens, heads × D = 2048 "
                  f"(FLOPs {fwd['env']['flops']})", fontsize=10)

    xs = draw_bars(bottom, brows, [p for p in BWD_IMPLS if any(p in r["results"] for r in brows)], LABELS)
    annotate_ratios(bottom, brows, xs)
    bottom.set_ylabel("TFLOP/s (forward+backward step)")
    var = bwd.get("variants", [])
    shape = f" (D {var[0]['D']}, N {var[0]['N']}, B {var[0]['B']}, H {var[0]['H']})" if var else ""
    bottom.set_title(f"Forward+backward step, {date_of(args.bwd)}, {bwd['env']['gpu']}: the same grid, then "
                     f"user variants{shape} vs FlexAttention; FLOPs 3.5 × forward's", fontsize=10)
    for ax in (top, bottom):
        ax.set_ylim(0, ax.get_ylim()[1] * 1.06)
    fig.suptitle(f"flashjit vs peers, {gpu}, torch {fwd['env']['torch']} (above the bars: flashjit's speed "
                 "relative to FA2 or Flex, = their time / flashjit's)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=args.dpi)
    plt.close(fig)
    print(f"{out}: {os.path.getsize(out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
