"""User-written variants: flashjit against compiled FlexAttention on the same functions.

    python3 bench/bench_variants.py [--out DIR] [--quick]

Cases (issue 9; H200, bf16, head_dim 128):
- sliding window 1024 + causal (N 8192, B 2, H 16);
- 4 documents + causal (N 8192);
- prefix-LM (prefix 2048, N 8192);
- ALiBi + causal (N 4096);
- softcap 30 + causal (N 4096);
- a random block mask of 25% density (blocks of 128, N 8192), written as a mask_mod reading a
  block table;
- the document mask again with a prebuilt flashjit block mask (block_mask=), as Flex runs it.

For each case, both implementations:
- get the same mask_mod / score_mod functions. FlexAttention also gets the BlockMask that
  `create_block_mask` builds for them;
- are checked against each other (relative error);
- are timed with triton's do_bench (median);
- report the effective TFLOP/s over the visible (q, k) pairs: 4 · B · H · D · visible.

Also reported: the cold compile time of a new expression variant, with a fresh cache and
the heuristic tile, and the time and peak memory of `create_block_mask`. Results go to
DIR/variants.json; a table prints last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import make_timer, peak_mem_mb  # noqa: E402

# The benchmarks time the tuned steady state: tune inside the first call, not in the
# background (bench/bench_first_call.py measures the default mode).
os.environ.setdefault("FLASHJIT_TUNE_MODE", "blocking")


def visible_pairs(torch: Any, mask_mod: Callable, n_q: int, n_k: int, device: str) -> int:
    """Exact count of visible (q, k) pairs of (b=0, h=0), in row chunks (no N^2 tensor)."""
    total = 0
    k_idx = torch.arange(n_k, device=device).view(1, n_k)
    zero = torch.zeros((), dtype=torch.int64, device=device)
    for q0 in range(0, n_q, 1024):
        q_idx = torch.arange(q0, min(q0 + 1024, n_q), device=device).view(-1, 1)
        total += int(mask_mod(zero, zero, q_idx, k_idx).sum().item())
    return total


def cases(torch: Any, quick: bool) -> List[Dict[str, Any]]:
    n_long, n_mid = (2048, 1024) if quick else (8192, 4096)
    dev = "cuda"
    docs = torch.arange(n_long, device=dev, dtype=torch.int32) // (n_long // 4)
    slopes = torch.exp2(-8.0 * torch.arange(1, 17, device=dev, dtype=torch.float32) / 16)

    def window(b, h, q, k):
        return (q >= k) & (q - k < 1024)

    def document(b, h, q, k):
        return (docs[q] == docs[k]) & (q >= k)

    def prefix_lm(b, h, q, k):
        return (k <= q) | (k < 2048)

    def causal(b, h, q, k):
        return q >= k

    def alibi(score, b, h, q, k):
        return score + slopes[h] * (k - q)

    def softcap(score, b, h, q, k):
        return 30.0 * torch.tanh(score / 30.0)

    gen = torch.Generator(device=dev).manual_seed(25)
    table = torch.rand(n_long // 128, n_long // 128, generator=gen, device=dev) < 0.25

    def block_sparse(b, h, q, k):
        return table[q // 128, k // 128]

    return [
        dict(name="window1024+causal", n=n_long, mask_mod=window, score_mod=None),
        dict(name="4 documents+causal", n=n_long, mask_mod=document, score_mod=None),
        dict(name="prefix-LM 2048", n=n_long, mask_mod=prefix_lm, score_mod=None),
        dict(name="ALiBi+causal", n=n_mid, mask_mod=causal, score_mod=alibi),
        dict(name="softcap30+causal", n=n_mid, mask_mod=causal, score_mod=softcap),
        dict(name="block-sparse 25%", n=n_long, mask_mod=block_sparse, score_mod=None),
        dict(name="4 docs+causal, block_mask", n=n_long, mask_mod=document, score_mod=None, prebuilt=True),
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch
    import flashjit
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 64))
    flex = torch.compile(flex_attention, dynamic=False)
    bench = make_timer(torch, 25, 100)
    B, H, D = 2, 16, 128
    rows = []
    for c in cases(torch, args.quick):
        n = c["n"]
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(3))
        bm = create_block_mask(c["mask_mod"], None, None, n, n, device="cuda")
        f_flex = lambda: flex(q, k, v, score_mod=c["score_mod"], block_mask=bm)  # noqa: E731
        if c.get("prebuilt"):
            fbm = flashjit.create_block_mask(c["mask_mod"], None, None, n, n, device="cuda")
            f_fj = lambda: flashjit.attention(q, k, v, block_mask=fbm, score_mod=c["score_mod"])  # noqa: E731
        else:
            f_fj = lambda: flashjit.attention(q, k, v, mask_mod=c["mask_mod"], score_mod=c["score_mod"])  # noqa: E731
        with torch.no_grad():
            ref, got = f_flex(), f_fj()  # also the first (compiling / tuning) calls
            err = ((got.float() - ref.float()).norm() / ref.float().norm()).item()
            ms_fj, ms_flex = bench(f_fj), bench(f_flex)
        flops = 4.0 * B * H * D * visible_pairs(torch, c["mask_mod"], n, n, "cuda")
        row = dict(case=c["name"], n=n, rel_err=err, flashjit_ms=ms_fj, flex_ms=ms_flex,
                   flashjit_tflops=flops / ms_fj / 1e9, flex_tflops=flops / ms_flex / 1e9,
                   speedup_vs_flex=ms_flex / ms_fj)
        print(json.dumps(row), flush=True)
        rows.append(row)

    # create_block_mask beside flashjit's need for none: time and peak memory at two lengths.
    masks = []
    for n in ([8192] if args.quick else [8192, 131072]):
        docs = torch.arange(n, device="cuda", dtype=torch.int32) // (n // 4)
        mm = lambda b, h, q, k: (docs[q] == docs[k]) & (q >= k)  # noqa: E731
        row = dict(n=n)
        t0 = time.perf_counter()
        flashjit.create_block_mask(mm, 1, 1, n, n, device="cuda")
        torch.cuda.synchronize()
        row["flashjit_first_ms"] = (time.perf_counter() - t0) * 1e3  # includes the builder's compile
        row["flashjit_ms"] = bench(lambda: flashjit.create_block_mask(mm, 1, 1, n, n, device="cuda"))
        row["flashjit_peak_mb"] = peak_mem_mb(torch, lambda: flashjit.create_block_mask(mm, 1, 1, n, n, device="cuda"))
        try:
            t0 = time.perf_counter()
            create_block_mask(mm, 1, 1, n, n, device="cuda")
            torch.cuda.synchronize()
            row["flex_first_ms"] = (time.perf_counter() - t0) * 1e3
            row["flex_peak_mb"] = peak_mem_mb(torch, lambda: create_block_mask(mm, 1, 1, n, n, device="cuda"))
            row["flex_ms"] = bench(lambda: create_block_mask(mm, 1, 1, n, n, device="cuda"))
        except Exception as e:  # e.g. out of memory at 131072
            row["flex_error"] = f"{type(e).__name__}: {str(e)[:120]}"
            torch.cuda.empty_cache()
        masks.append(row)
        print(json.dumps(masks[-1]), flush=True)

    # Cold compile of a new expression variant (fresh cache, heuristic tile).
    os.environ["FLASHJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="fj-cold-")
    spec = flashjit.Spec(dtype="bf16", head_dim=128, mask=lambda b, h, q, k: (q >= k) & ((q - k) % 7 != 3))
    t0 = time.perf_counter()
    info = flashjit.compile(spec)
    cold = dict(cold_compile_ms=(time.perf_counter() - t0) * 1e3, nvrtc_ms=info.compile_ms)
    print(json.dumps(cold), flush=True)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(dict(rows=rows, create_block_mask=masks, cold=cold, device=torch.cuda.get_device_name()), f, indent=1)
    print(f"\n{'case':27} {'N':>6} {'flashjit ms':>12} {'flex ms':>9} {'fj TF/s':>8} {'flex TF/s':>9} {'x flex':>7} {'rel err':>8}")
    for r in rows:
        print(f"{r['case']:27} {r['n']:6d} {r['flashjit_ms']:12.3f} {r['flex_ms']:9.3f} {r['flashjit_tflops']:8.1f} "
              f"{r['flex_tflops']:9.1f} {r['speedup_vs_flex']:7.2f} {r['rel_err']:8.1e}")
    for m in masks:
        flex = (f"{m['flex_ms']:.3f} ms, {m['flex_peak_mb']:.1f} MB" if "flex_ms" in m else m.get("flex_error", "?"))
        print(f"create_block_mask N={m['n']}: flashjit {m['flashjit_ms']:.3f} ms, {m['flashjit_peak_mb']:.1f} MB | flex {flex}")
    print(f"cold compile of a new variant: {cold['cold_compile_ms']:.0f} ms (NVRTC {cold['nvrtc_ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
