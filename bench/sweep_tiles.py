"""Times every legal tile config of flashjit's forward kernel on the PEERS grid rows, beside
SDPA's flash backend on the same tensors. Used to choose heuristics and to check the
autotuner's pick. Usage: python bench/sweep_tiles.py [--d 64 128] [--n 4096] [--out DIR]
"""
import argparse
import itertools
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

import flashjit


def tflops(b, h, n, d, causal, ms):
    flops = 4 * b * h * n * n * d / (2 if causal else 1)
    return flops / (ms * 1e-3) / 1e12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--n", type=int, nargs="+", default=[4096])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for d, n, causal in itertools.product(args.d, args.n, [False, True]):
        b, h = 16384 // n, 2048 // d
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fa2 = do_bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), warmup=10, rep=40,
                           return_mode="median")
        ref = None
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        print(f"-- D={d} N={n} causal={causal}: SDPA flash {tflops(b, h, n, d, causal, fa2):.1f} TFLOP/s", flush=True)
        for bm, bn, w, st in itertools.product([64, 128], [32, 64, 128], [4, 8], [2, 3]):
            tile = dict(block_m=bm, block_n=bn, warps=w, stages=st)
            try:  # configs that fail validation or the legality pass are skipped
                spec = flashjit.Spec(dtype="bf16", head_dim=d, num_heads_q=h, mask="causal" if causal else "none",
                                     tile=tile)
                info = flashjit.compile(spec)
            except Exception as e:  # illegal configs are rejected by the legality pass
                continue
            fn = lambda: flashjit.attention(q, k, v, causal=causal, tile=tile)
            try:
                err = (fn().float() - ref.float()).abs().max().item()
                ms = do_bench(fn, warmup=10, rep=40, return_mode="median")
            except Exception as e:
                print(f"   {tile}: failed: {e}")
                continue
            t = tflops(b, h, n, d, causal, ms)
            rows.append(dict(d=d, n=n, causal=causal, tile=tile, ms=ms, tflops=t, fa2_tflops=tflops(b, h, n, d, causal, fa2),
                             registers=info.registers, spill=info.spill_store_bytes, err=err))
            print(f"   bm={bm:3} bn={bn:3} w={w} st={st}: {t:6.1f} TFLOP/s ({t / tflops(b, h, n, d, causal, fa2):.2f}x FA2)"
                  f" regs={info.registers} spill={info.spill_store_bytes} err={err:.4f}", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "sweep.json"), "w") as f:
            json.dump(rows, f, indent=1)
    print("\nbest per row:")
    for key, group in itertools.groupby(rows, key=lambda r: (r["d"], r["n"], r["causal"])):
        best = max(group, key=lambda r: r["tflops"])
        print(f"  D={key[0]} N={key[1]} causal={key[2]}: {best['tflops']:.1f} TFLOP/s = {best['tflops'] / best['fa2_tflops']:.2f}x FA2 with {best['tile']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
