"""Where the listed (interval-classified) KV loop spends its time: the same tiles reached by
the closed-form band, by an index-only expression the band recogniser does not take, and by
a mask that scans a captured tensor, all with one forced tile (bf16, D 128, B 2, H 16).

    python3 bench/probe_listed.py [--n 8192] [--out DIR] [--once]

--once runs each case a single time after a warm-up (for ncu). Differences between rows are
the cost of one stage: band vs listed = listing; index docs vs tensor docs = the scans.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import make_timer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--out", default=".")
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--block-n", type=int, default=64)
    args = ap.parse_args()
    import torch
    import flashjit

    n, B, H, D = args.n, 2, 16, 128
    w = n // 4
    docs = torch.arange(n, device="cuda", dtype=torch.int32) // w
    tile = dict(block_m=128, block_n=args.block_n, warps=8, stages=2, mma="wgmma")
    q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    cases = {
        "window band": dict(causal=True, window=(1023, 0)),
        "window listed": dict(mask_mod=lambda b, h, qi, ki: (qi >= ki) & (qi - ki < 1024) & (b >= 0)),
        "docs index": dict(mask_mod=lambda b, h, qi, ki: (qi // w == ki // w) & (qi >= ki)),
        "docs tensor": dict(mask_mod=lambda b, h, qi, ki: (docs[qi] == docs[ki]) & (qi >= ki)),
        "causal band": dict(causal=True),
    }
    bench = make_timer(torch, 10, 50)
    rows = []
    with torch.no_grad():
        for name, kw in cases.items():
            f = lambda: flashjit.attention(q, k, v, tile=tile, **kw)  # noqa: E731
            f()
            torch.cuda.synchronize()
            if args.once:
                f()
                torch.cuda.synchronize()
                continue
            rows.append(dict(case=name, ms=bench(f)))
            print(json.dumps(rows[-1]), flush=True)
    if not args.once:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "probe_listed.json"), "w") as fh:
            json.dump(rows, fh, indent=1)
        for r in rows:
            print(f"{r['case']:<16} {r['ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
