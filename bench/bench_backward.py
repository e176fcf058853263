#!/usr/bin/env python3
"""flashjit forward+backward vs its peers, in one process on identical inputs (issue 10).

    python bench/bench_backward.py --out DIR [--quick] [--no-flex-grid] [--only grid|variants]

Peers: SDPA flash (FlashAttention-2), SDPA cuDNN, FlexAttention under torch.compile.
- grid: the PEERS grid (bf16, D 64 and 128, N 1024 / 4096 / 16384, causal and not,
  B = 16384 // N, H = 2048 // D), forward + backward (dO given, dQ/dK/dV produced);
- variants: sliding window 1024 + causal and 4 documents + causal (N 8192, B 2, H 16, D 128),
  the same mask_mod for flashjit and FlexAttention (Flex also gets its BlockMask).

One timed step = forward with inputs that require grad, then o.backward(dO); gradients are
reset to None before each step (do_bench's grad_to_none). FLOPs counted as FlashAttention
does: forward 4·B·H·N²·D (halved when causal; visible pairs for the variants), backward 2.5×
that, so one step = 3.5× the forward's FLOPs. Also: the backward alone (the step's time
minus the forward's, timed with grad on), peak memory of one step beyond the inputs, and
flashjit's gradients against SDPA's (relative Frobenius error; the variants against Flex).

Writes DIR/backward.json; a markdown table prints last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import LABELS as FWD_LABELS, short  # noqa: E402

# The benchmarks time the tuned steady state: tune inside the first call, not in the
# background (bench/bench_first_call.py measures the default mode).
os.environ.setdefault("FLASHJIT_TUNE_MODE", "blocking")

IMPLS = ["flashjit", "flashjit_det", "sdpa_flash", "sdpa_cudnn", "flex"]
LABELS = dict(FWD_LABELS, flashjit_det="flashjit deterministic")


def log(*a: Any) -> None:
    print(*a, flush=True)


def make_bench(torch: Any, warmup: float, rep: float):
    from triton.testing import do_bench

    def bench(fn: Callable[[], Any], grads: List[Any]) -> float:
        return float(do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grads, return_mode="median"))

    return bench


def step_peak_mb(torch: Any, fn: Callable[[], Any]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


class Peers:
    def __init__(self, torch: Any, flashjit: Any):
        self.torch, self.flashjit = torch, flashjit
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        self.SDPBackend, self.sdpa_kernel = SDPBackend, sdpa_kernel
        self.create_block_mask = create_block_mask
        cfg = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(cfg, name):
                setattr(cfg, name, max(getattr(cfg, name), 64))
        self.flex = torch.compile(flex_attention, dynamic=False)

    def forward(self, impl: str, causal: bool, mask_mod: Optional[Callable], n_q: int, n_k: int):
        """A function (q, k, v) -> o for impl; mask_mod given means a user variant."""
        torch, F = self.torch, self.torch.nn.functional
        if impl in ("flashjit", "flashjit_det"):
            det = impl == "flashjit_det"
            if mask_mod is not None:
                return lambda q, k, v: self.flashjit.attention(q, k, v, mask_mod=mask_mod, deterministic=det)
            return lambda q, k, v: self.flashjit.attention(q, k, v, causal=causal, deterministic=det)
        if impl in ("sdpa_flash", "sdpa_cudnn"):
            if mask_mod is not None:
                raise RuntimeError("SDPA has no user mask without a dense N² mask: not timed")
            backend = self.SDPBackend.FLASH_ATTENTION if impl == "sdpa_flash" else self.SDPBackend.CUDNN_ATTENTION

            def fn(q, k, v):
                with self.sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return fn
        if impl == "flex":
            mm = mask_mod
            if mm is None and causal:
                def mm(b, h, q_idx, kv_idx):
                    return q_idx >= kv_idx
            bm = None if mm is None else self.create_block_mask(mm, None, None, n_q, n_k, device="cuda")
            return lambda q, k, v: self.flex(q, k, v, block_mask=bm)
        raise ValueError(impl)


def rel(a: Any, b: Any) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def run_case(torch, peers: Peers, bench, row: Dict[str, Any], which: List[str], mask_mod=None,
             ref_impl: str = "sdpa_flash") -> None:
    b, h, n, d, causal = row["B"], row["H"], row["N"], row["D"], row.get("causal", False)
    gen = torch.Generator(device="cuda").manual_seed(n * 1000 + d)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_(True)
               for _ in range(3))
    dout = torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    fwd_flops = row["fwd_flops"]
    row["results"] = {}
    grads: Dict[str, Any] = {}
    for impl in which:
        res: Dict[str, Any] = {}
        try:
            fwd = peers.forward(impl, causal, mask_mod, n, n)

            def step():
                fwd(q, k, v).backward(dout)

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                step()  # the first call compiles (and, for flashjit's forward, tunes)
                torch.cuda.synchronize()
                res["first_step_ms"] = (time.perf_counter() - t0) * 1e3
            if any("without torch.compile" in str(w.message) for w in caught):
                raise RuntimeError("FlexAttention fell back to the unfused eager path")
            grads[impl] = tuple(t.grad.detach().clone() for t in (q, k, v))
            for t in (q, k, v):
                t.grad = None
            res["peak_mem_mb"] = step_peak_mb(torch, step)
            ms = bench(step, [q, k, v])
            res["ms"], res["tflops"] = ms, 3.5 * fwd_flops / (ms * 1e-3) / 1e12
            # The backward alone = step - forward (the forward timed with grad on, so it saves
            # what the backward needs); compiled Flex refuses retain_graph, so no direct timing.
            res["fwd_ms"] = bench(lambda: fwd(q, k, v), [q, k, v])
            res["bwd_ms"] = max(ms - res["fwd_ms"], 1e-6)
            res["bwd_tflops"] = 2.5 * fwd_flops / (res["bwd_ms"] * 1e-3) / 1e12
            log(f"   {LABELS[impl]:18s} fwd+bwd {ms:8.3f} ms {res['tflops']:6.1f} TFLOP/s | bwd {res['bwd_ms']:8.3f} ms "
                f"{res['bwd_tflops']:6.1f} TFLOP/s | peak {res['peak_mem_mb']:8.1f} MiB | first {res['first_step_ms']:7.0f} ms")
        except Exception as e:
            res = {"error": short(e)}
            log(f"   {LABELS[impl]:18s} n/a: {short(e)}")
            for t in (q, k, v):
                t.grad = None
        row["results"][impl] = res
        torch.cuda.synchronize()
    ref = ref_impl if ref_impl in grads else next((p for p in grads if p != "flashjit"), None)
    if "flashjit" in grads and ref is not None:
        errs = {name: rel(g, r) for name, g, r in zip(("dq", "dk", "dv"), grads["flashjit"], grads[ref])}
        nan = any(bool(torch.isnan(g).any()) for g in grads["flashjit"])
        row["verify"] = {"against": ref, **errs, "nan": nan, "ok": (not nan) and max(errs.values()) < 3e-2}
        log(f"   verify flashjit vs {ref}: " + " ".join(f"{k_} {e:.2e}" for k_, e in errs.items())
            + ("" if row["verify"]["ok"] else "   <-- MISMATCH"))
    if "flashjit" in grads and "flashjit_det" in grads:
        row["verify_det"] = {name: rel(g, r) for name, g, r in zip(("dq", "dk", "dv"), grads["flashjit_det"], grads["flashjit"])}
        log("   deterministic vs default: " + " ".join(f"{k_} {e:.2e}" for k_, e in row["verify_det"].items()))
    del q, k, v, dout, grads
    torch.cuda.empty_cache()


def grid_rows(quick: bool) -> List[Dict[str, Any]]:
    rows = []
    for d in (64, 128):
        for n in ((4096,) if quick else (1024, 4096, 16384)):
            for causal in (False, True):
                b, h = 16384 // n, 2048 // d
                rows.append({"case": "causal" if causal else "full", "D": d, "N": n, "causal": causal, "B": b, "H": h,
                             "fwd_flops": 4.0 * b * h * n * n * d * (0.5 if causal else 1.0)})
    return rows


def visible_pairs(torch, mask_mod, n: int) -> int:
    total, k_idx = 0, torch.arange(n, device="cuda").view(1, n)
    zero = torch.zeros((), dtype=torch.int64, device="cuda")
    for q0 in range(0, n, 1024):
        q_idx = torch.arange(q0, min(q0 + 1024, n), device="cuda").view(-1, 1)
        total += int(mask_mod(zero, zero, q_idx, k_idx).sum().item())
    return total


def variant_rows(torch, quick: bool):
    n = 2048 if quick else 8192
    docs = torch.arange(n, device="cuda", dtype=torch.int32) // (n // 4)

    def window(b, h, q, k):
        return (q >= k) & (q - k < 1024)

    def document(b, h, q, k):
        return (docs[q] == docs[k]) & (q >= k)

    out = []
    for name, mm in (("window1024+causal", window), ("4 documents+causal", document)):
        b, h, d = 2, 16, 128
        out.append(({"case": name, "D": d, "N": n, "B": b, "H": h,
                     "fwd_flops": 4.0 * b * h * d * visible_pairs(torch, mm, n)}, mm))
    return out


def table(rows: List[Dict[str, Any]], which: List[str]) -> str:
    peers = [p for p in which if p not in ("flashjit", "flashjit_det")]
    head = ["case", "D", "N", "B×H"] + [f"{LABELS[p]} TFLOP/s" for p in which]
    head += [f"flashjit/{LABELS[p]}" for p in peers] + ["flashjit bwd TFLOP/s"]
    head += ["deterministic / default time"] if "flashjit_det" in which else []
    head += ["peak MiB " + " / ".join(LABELS[p] for p in which), "grad err"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        res = r["results"]
        ms = {p: res.get(p, {}).get("ms") for p in which}
        cells = [r["case"], str(r["D"]), str(r["N"]), f"{r['B']}×{r['H']}"]
        cells += [f"{res[p]['tflops']:.1f}" if "tflops" in res.get(p, {}) else "n/a" for p in which]
        cells += [f"{ms[p] / ms['flashjit']:.2f}" if ms.get(p) and ms.get("flashjit") else "n/a" for p in peers]
        fj = res.get("flashjit", {})
        cells.append(f"{fj['bwd_tflops']:.1f}" if "bwd_tflops" in fj else "n/a")
        det = res.get("flashjit_det", {})
        if "flashjit_det" in which:  # the deterministic mode's cost: its step time / the default's
            cells.append(f"{det['ms'] / fj['ms']:.2f}" if det.get("ms") and fj.get("ms") else "n/a")
        cells.append(" / ".join(f"{res[p]['peak_mem_mb']:.0f}" if "peak_mem_mb" in res.get(p, {}) else "–"
                                for p in which))
        ver = r.get("verify", {})
        cells.append(f"{max(ver['dq'], ver['dk'], ver['dv']):.1e}" + ("" if ver.get("ok") else " ⚠") if "dq" in ver else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["grid", "variants"], default=None)
    ap.add_argument("--no-flex-grid", action="store_true", help="skip FlexAttention on the dense/causal grid")
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--rep", type=float, default=100.0)
    args = ap.parse_args()
    os.environ.setdefault("FLASHJIT_CACHE_DIR", tempfile.mkdtemp(prefix="flashjit-bwd-bench-"))
    os.makedirs(args.out, exist_ok=True)
    import torch
    import flashjit

    if not torch.cuda.is_available() or not flashjit.gpu_available():
        log("no GPU: nothing to benchmark")
        return 1
    bench = make_bench(torch, args.warmup, args.rep)
    peers = Peers(torch, flashjit)
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
           "flops": "step = 3.5 x forward (4*B*H*N^2*D, halved when causal; visible pairs for variants)"}
    log("environment: " + json.dumps(env))
    out: Dict[str, Any] = {"env": env, "args": vars(args)}
    rows: List[Dict[str, Any]] = []
    if args.only in (None, "grid"):
        which = [p for p in IMPLS if not (args.no_flex_grid and p == "flex")]
        for row in grid_rows(args.quick):
            log(f"-- D={row['D']} N={row['N']} {row['case']} B={row['B']} H={row['H']}")
            run_case(torch, peers, bench, row, which)
            rows.append(row)
        out["grid"] = rows
    vrows: List[Dict[str, Any]] = []
    if args.only in (None, "variants"):
        for row, mm in variant_rows(torch, args.quick):
            log(f"-- {row['case']} N={row['N']} B={row['B']} H={row['H']} D={row['D']}")
            run_case(torch, peers, bench, row, ["flashjit", "flashjit_det", "flex"], mask_mod=mm, ref_impl="flex")
            vrows.append(row)
        out["variants"] = vrows
    with open(os.path.join(args.out, "backward.json"), "w") as f:
        json.dump(out, f, indent=1)
    if rows:
        log("\nforward+backward, bf16 (TFLOP/s = 3.5 x forward FLOPs / step time; ratios are time ratios peer/flashjit)")
        log(table(rows, [p for p in IMPLS if not (args.no_flex_grid and p == "flex")]))
    if vrows:
        log("\nforward+backward, user variants (mask_mod), bf16")
        log(table(vrows, ["flashjit", "flashjit_det", "flex"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
