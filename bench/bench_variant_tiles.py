"""Where a variant's time goes: one mask, every forced tile, as a mask_mod and as a prebuilt
block mask, beside the band kernel over the same tensors (the floor the variant should
approach for its share of visible keys).

    python3 bench/bench_variant_tiles.py [--n 8192] [--docs 4] [--out DIR]

Used to find the per-CTA overhead of listed (interval-classified) loops: see
docs/performance.md, 2026-12-02. FLASHJIT_AUTOTUNE is irrelevant here: every tile is forced.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import make_timer  # noqa: E402

TILES = [
    dict(block_m=128, block_n=64, warps=8, stages=2, mma="wgmma"),
    dict(block_m=128, block_n=128, warps=8, stages=2, mma="wgmma"),
    dict(block_m=128, block_n=64, warps=4, stages=2, mma="mma_sync"),
    dict(block_m=64, block_n=64, warps=4, stages=3, mma="mma_sync"),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--docs", type=int, default=4)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    import torch
    import flashjit

    bench = make_timer(torch, 10, 50)
    n, B, H, D = args.n, 2, 16, 128
    docs = torch.arange(n, device="cuda", dtype=torch.int32) // (n // args.docs)

    def doc(b, h, q, k):
        return (docs[q] == docs[k]) & (q >= k)

    q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    bm = flashjit.create_block_mask(doc, None, None, n, n)
    rows = []
    with torch.no_grad():
        band_ms = bench(lambda: flashjit.attention(q, k, v, causal=True))
        for tile in TILES:
            for name, kw in (("mask_mod", dict(mask_mod=doc)), ("block_mask", dict(block_mask=bm))):
                f = lambda: flashjit.attention(q, k, v, tile=tile, **kw)  # noqa: E731
                try:
                    f()
                    rows.append(dict(tile=tile, form=name, ms=bench(f)))
                except Exception as e:  # a tile that does not fit this GPU
                    rows.append(dict(tile=tile, form=name, error=f"{type(e).__name__}: {str(e)[:100]}"))
                print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "variant_tiles.json"), "w") as fh:
        json.dump(dict(n=n, docs=args.docs, causal_band_ms=band_ms, rows=rows), fh, indent=1)
    share = 1.0 / args.docs
    print(f"\ncausal band, same tensors: {band_ms:.3f} ms; {args.docs} documents see {share:.0%} of its keys "
          f"(floor about {band_ms * share:.3f} ms)")
    print(f"{'tile':32} {'form':11} {'ms':>8}")
    for r in rows:
        t = r["tile"]
        label = f"{t['block_m']}x{t['block_n']} w{t['warps']} s{t['stages']} {t['mma']}"
        print(f"{label:32} {r['form']:11} {r.get('ms', float('nan')):8.3f}" + (f"  {r['error']}" if "error" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
