#!/usr/bin/env python3
"""Dropout (issue 11): flashjit against SDPA flash and SDPA cuDNN with the same dropout_p,
in one process on identical inputs, and against itself without dropout (the cost of it).

    python bench/bench_dropout.py --out DIR [--quick]

- seeds: the seeds' experiment, forward only: fp16, B 32, H 8, N 2048, D 64, dropout 0.2;
- grid: forward+backward with dropout 0.1 on the PEERS grid (bf16, D 64 and 128, N 1024 /
  4096 / 16384, causal and not, B = 16384 // N, H = 2048 // D).
Times are triton do_bench medians; a step is the forward (inputs requiring grad) then
o.backward(dO). Masks differ between implementations (each draws its own), so outputs are
not compared here: tests/gpu and python/tests check flashjit's against float64. Writes
DIR/dropout.json; markdown tables print last.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable, Dict, List

# The benchmarks time the tuned steady state: tune inside the first call, not in the
# background (bench/bench_first_call.py measures the default mode).
os.environ.setdefault("FLASHJIT_TUNE_MODE", "blocking")


def log(*a: Any) -> None:
    print(*a, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--quick", action="store_true", help="N 4096 rows of the grid only")
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--rep", type=float, default=100.0)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    import flashjit

    def bench(fn: Callable[[], Any], grads: List[Any]) -> float:
        return float(do_bench(fn, warmup=args.warmup, rep=args.rep, grad_to_none=grads, return_mode="median"))

    def impl(name: str, p: float, causal: bool) -> Callable:
        if name == "flashjit":
            return lambda q, k, v: flashjit.attention(q, k, v, causal=causal, dropout_p=p)
        backend = SDPBackend.FLASH_ATTENTION if name == "sdpa_flash" else SDPBackend.CUDNN_ATTENTION

        def fn(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)
        return fn

    names = ["flashjit", "sdpa_flash", "sdpa_cudnn"]
    out: Dict[str, Any] = {"env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}}

    # -- the seeds' experiment, forward only
    b, h, n, d, p = 32, 8, 2048, 64, 0.2
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, generator=gen) for _ in range(3))
    seeds: Dict[str, Any] = {}
    for name in names:
        for pp in (p, 0.0):
            key = f"{name}{'' if pp else '_nodrop'}"
            try:
                fn = impl(name, pp, False)
                t0 = time.perf_counter()
                fn(q, k, v)
                torch.cuda.synchronize()
                first = (time.perf_counter() - t0) * 1e3
                ms = bench(lambda: fn(q, k, v), [])
                seeds[key] = {"ms": ms, "tflops": 4 * b * h * n * n * d / (ms * 1e-3) / 1e12, "first_ms": first}
            except Exception as e:  # a backend that refuses (e.g. cuDNN without dropout support)
                seeds[key] = {"error": f"{type(e).__name__}: {e}"[:200]}
            log("seeds", key, seeds[key])
    out["seeds"] = seeds

    # -- forward+backward with dropout 0.1 on the PEERS grid
    grid: List[Dict[str, Any]] = []
    for d in (64, 128):
        for n in ((4096,) if args.quick else (1024, 4096, 16384)):
            for causal in (False, True):
                b, h = 16384 // n, 2048 // d
                flops = 4 * b * h * n * n * d * (0.5 if causal else 1.0)
                gen = torch.Generator(device="cuda").manual_seed(n + d)
                q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_(True)
                           for _ in range(3))
                dout = torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
                row: Dict[str, Any] = {"case": "causal" if causal else "full", "D": d, "N": n, "B": b, "H": h, "results": {}}
                for name in names:
                    for pp in (0.1, 0.0):
                        if pp == 0.0 and name != "flashjit":
                            continue
                        key = f"{name}{'' if pp else '_nodrop'}"
                        try:
                            fn = impl(name, pp, causal)

                            def step():
                                fn(q, k, v).backward(dout)
                            step()
                            torch.cuda.synchronize()
                            ms = bench(step, [q, k, v])
                            row["results"][key] = {"ms": ms, "tflops": 3.5 * flops / (ms * 1e-3) / 1e12}
                        except Exception as e:
                            row["results"][key] = {"error": f"{type(e).__name__}: {e}"[:200]}
                        log(row["case"], d, n, key, row["results"][key])
                grid.append(row)
                del q, k, v, dout
                torch.cuda.empty_cache()
    out["grid"] = grid
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "dropout.json"), "w") as f:
        json.dump(out, f, indent=1)

    def ms(r: Dict[str, Any], key: str) -> float:
        return r.get(key, {}).get("ms", float("nan"))

    log("\ndropout: the seeds' experiment (fp16, B 32, H 8, N 2048, D 64, p 0.2), forward")
    log("| impl | ms with dropout | ms without | dropout cost | flashjit time / this |")
    log("|---|---|---|---|---|")
    fj = ms(seeds, "flashjit")
    for name in names:
        a, z = ms(seeds, name), ms(seeds, name + "_nodrop")
        log(f"| {name} | {a:.3f} | {z:.3f} | {a / z - 1:+.1%} | {fj / a:.2f} |")
    log("\ndropout 0.1, forward+backward, bf16 (TFLOP/s = 3.5 x forward FLOPs / step; ratio = peer time / flashjit)")
    log("| case | D | N | flashjit TFLOP/s | flashjit p=0 | dropout cost | SDPA flash | SDPA cuDNN | fj/FA2 | fj/cuDNN |")
    log("|---|---|---|---|---|---|---|---|---|---|")
    for row in grid:
        r = row["results"]
        f, f0, fa, cu = ms(r, "flashjit"), ms(r, "flashjit_nodrop"), ms(r, "sdpa_flash"), ms(r, "sdpa_cudnn")
        tf = lambda key: r.get(key, {}).get("tflops", float("nan"))  # noqa: E731
        log(f"| {row['case']} | {row['D']} | {row['N']} | {tf('flashjit'):.1f} | {tf('flashjit_nodrop'):.1f} | "
            f"{f / f0 - 1:+.1%} | {tf('sdpa_flash'):.1f} | {tf('sdpa_cudnn'):.1f} | {fa / f:.2f} | {cu / f:.2f} |")


if __name__ == "__main__":
    main()
