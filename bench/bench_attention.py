#!/usr/bin/env python3
"""flashjit vs its peers, forward, in one process on identical inputs.

    python bench/bench_attention.py --out DIR [--quick] [--only-flashjit]

Peers: SDPA with the flash backend (FlashAttention-2), SDPA with cuDNN, and FlexAttention
compiled with torch.compile. Grid (docs: shared brief PEERS.md): bf16, D in {64, 128},
N in {1024, 4096, 16384}, causal and not, batch = 16384 // N, heads = 2048 // D.
Timing: median of CUDA-event timings (triton.testing.do_bench). FLOPs = 4·B·H·N²·D, halved
when causal. Also: flashjit's cold compile and cache-hit (new process) times, FlexAttention's
first call of a new variant, and the seeds' experiment (fp16, B 32, H 8, N 2048, D 64).

Writes DIR/results.json and DIR/attention_fwd.png (when matplotlib is importable); the
markdown table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import warnings
from typing import Any, Callable, Dict, List, Optional

# The benchmarks time the tuned steady state: tune inside the first call, not in the
# background (bench/bench_first_call.py measures the default mode).
os.environ.setdefault("FLASHJIT_TUNE_MODE", "blocking")

IMPLS = ["flashjit", "sdpa_flash", "sdpa_cudnn", "flex"]
LABELS = {
    "flashjit": "flashjit",
    "sdpa_flash": "SDPA flash (FA2)",
    "sdpa_cudnn": "SDPA cuDNN",
    "flex": "FlexAttention",
}
VERIFY_TOL = 5e-2


def log(*a: Any) -> None:
    print(*a, flush=True)


def short(e: BaseException) -> str:
    s = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return s if len(s) <= 160 else s[:157] + "..."


# --- timing --------------------------------------------------------------------------------

def make_timer(torch: Any, warmup_ms: float, rep_ms: float) -> Callable[[Callable[[], Any]], float]:
    try:
        from triton.testing import do_bench

        def bench(fn: Callable[[], Any]) -> float:
            return float(do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))

        return bench
    except Exception:  # triton missing: the same method by hand
        def bench(fn: Callable[[], Any]) -> float:
            fn()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(5):
                fn()
            end.record()
            torch.cuda.synchronize()
            est = max(start.elapsed_time(end) / 5, 1e-3)
            for _ in range(max(1, int(warmup_ms / est))):
                fn()
            times = []
            for _ in range(max(1, int(rep_ms / est))):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                times.append((s, e))
            torch.cuda.synchronize()
            ms = sorted(s.elapsed_time(e) for s, e in times)
            return ms[len(ms) // 2]

        return bench


def first_call_ms(torch: Any, fn: Callable[[], Any]) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def peak_mem_mb(torch: Any, fn: Callable[[], Any]) -> float:
    """Peak memory allocated by one call beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2**20


# --- implementations -----------------------------------------------------------------------

class Impls:
    """Builds a callable per implementation for one problem; each builder may raise."""

    def __init__(self, torch: Any, flashjit: Any):
        self.torch = torch
        self.flashjit = flashjit
        self.F = torch.nn.functional
        from torch.nn.attention import SDPBackend, sdpa_kernel

        self.SDPBackend, self.sdpa_kernel = SDPBackend, sdpa_kernel
        self._flex = None
        self._block_masks: Dict[Any, Any] = {}

    def flashjit_fn(self, q, k, v, causal):
        fj = self.flashjit
        return lambda: fj.attention(q, k, v, causal=causal)

    def sdpa_fn(self, backend_name, q, k, v, causal):
        backend = getattr(self.SDPBackend, backend_name)
        F, sdpa_kernel = self.F, self.sdpa_kernel

        def fn():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        return fn

    def flex_compiled(self):
        if self._flex is None:
            from torch.nn.attention.flex_attention import flex_attention

            # One compiled graph per shape and mask: the grid alone has 12. Past dynamo's
            # recompile limit (8 by default) FlexAttention silently runs unfused in eager.
            cfg = self.torch._dynamo.config
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(cfg, name):
                    setattr(cfg, name, max(getattr(cfg, name), 64))
            self._flex = self.torch.compile(flex_attention, dynamic=False)
        return self._flex

    def flex_fn(self, q, k, v, causal):
        from torch.nn.attention.flex_attention import create_block_mask

        flex = self.flex_compiled()
        n_q, n_k = q.shape[2], k.shape[2]
        block_mask = None
        if causal:
            key = ("causal", n_q, n_k)
            if key not in self._block_masks:
                def causal_mod(b, h, q_idx, kv_idx):
                    return q_idx >= kv_idx

                self._block_masks[key] = create_block_mask(causal_mod, B=None, H=None, Q_LEN=n_q,
                                                           KV_LEN=n_k, device=q.device)
            block_mask = self._block_masks[key]
        return lambda: flex(q, k, v, block_mask=block_mask)

    def build(self, impl, q, k, v, causal):
        if impl == "flashjit":
            return self.flashjit_fn(q, k, v, causal)
        if impl == "sdpa_flash":
            return self.sdpa_fn("FLASH_ATTENTION", q, k, v, causal)
        if impl == "sdpa_cudnn":
            return self.sdpa_fn("CUDNN_ATTENTION", q, k, v, causal)
        if impl == "flex":
            return self.flex_fn(q, k, v, causal)
        raise ValueError(impl)


# --- sections ------------------------------------------------------------------------------

def grid_rows(quick: bool) -> List[Dict[str, Any]]:
    rows = []
    dims = (64, 128)
    lens = (4096,) if quick else (1024, 4096, 16384)
    for d in dims:
        for n in lens:
            for causal in (False, True):
                rows.append({"dtype": "bf16", "D": d, "N": n, "causal": causal,
                             "B": 16384 // n, "H": 2048 // d})
    return rows


def run_grid(torch, impls: Impls, bench, rows, which: List[str]) -> None:
    for row in rows:
        b, h, n, d, causal = row["B"], row["H"], row["N"], row["D"], row["causal"]
        flops = 4.0 * b * h * n * n * d * (0.5 if causal else 1.0)
        gen = torch.Generator(device="cuda")
        gen.manual_seed(n * 1000 + d)
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
                   for _ in range(3))
        row["flops"] = flops
        row["results"] = {}
        log(f"-- D={d} N={n} causal={'y' if causal else 'n'} B={b} H={h}")
        outputs: Dict[str, Any] = {}
        with torch.no_grad():
            for impl in which:
                res: Dict[str, Any] = {}
                try:
                    fn = impls.build(impl, q, k, v, causal)
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        res["first_call_ms"] = first_call_ms(torch, fn)
                    if any("without torch.compile" in str(w.message) for w in caught):
                        raise RuntimeError("FlexAttention fell back to the unfused eager path")
                    outputs[impl] = fn()
                    res["peak_mem_mb"] = peak_mem_mb(torch, fn)
                    ms = bench(fn)
                    res["ms"] = ms
                    res["tflops"] = flops / (ms * 1e-3) / 1e12
                    log(f"   {LABELS[impl]:18s} {ms:8.3f} ms  {res['tflops']:7.1f} TFLOP/s  "
                        f"peak {res['peak_mem_mb']:8.1f} MiB  first call {res['first_call_ms']:8.1f} ms")
                except Exception as e:  # one failing peer must not kill the run
                    res = {"error": short(e)}
                    log(f"   {LABELS[impl]:18s} n/a: {short(e)}")
                row["results"][impl] = res
                torch.cuda.synchronize()
            # correctness of flashjit against SDPA (any backend that ran, else math)
            if "flashjit" in outputs:
                ref_name = next((p for p in ("sdpa_flash", "sdpa_cudnn") if p in outputs), None)
                try:
                    if ref_name is None:
                        ref_name = "sdpa_math"
                        with impls.sdpa_kernel(impls.SDPBackend.MATH):
                            ref = impls.F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    else:
                        ref = outputs[ref_name]
                    diff = (outputs["flashjit"].float() - ref.float()).abs().max().item()
                    nan = bool(torch.isnan(outputs["flashjit"]).any().item())
                    row["verify"] = {"against": ref_name, "max_abs_diff": diff, "nan": nan,
                                     "ok": (not nan) and diff <= VERIFY_TOL}
                    flag = "" if row["verify"]["ok"] else "   <-- MISMATCH (> %.0e or NaN)" % VERIFY_TOL
                    log(f"   verify flashjit vs {ref_name}: max abs diff {diff:.3g}{flag}")
                except Exception as e:
                    row["verify"] = {"error": short(e)}
                    log(f"   verify: n/a: {short(e)}")
        del q, k, v, outputs
        torch.cuda.empty_cache()


def compile_times(torch, flashjit, cache_dir: str) -> Dict[str, Any]:
    """flashjit: cold compile (fresh cache dir) and a cache hit in a new process."""
    out: Dict[str, Any] = {"cache_dir": cache_dir}
    spec = flashjit.Spec(dtype="bf16", head_dim=128, num_heads_q=16, num_heads_kv=16,
                         mask="causal", align="bottom_right")
    out["spec"] = json.loads(spec.to_json())
    try:
        t0 = time.perf_counter()
        info = flashjit.compile(spec)
        out["cold_wall_ms"] = (time.perf_counter() - t0) * 1e3
        out["cold_cache_hit"] = info.cache_hit
        out["cold_nvrtc_ms"] = info.compile_ms
        out["kernel"] = info.to_dict()
        log(f"flashjit cold compile: {out['cold_wall_ms']:.1f} ms wall (NVRTC {info.compile_ms:.1f} ms, "
            f"cache_hit={info.cache_hit}), {info.registers} registers, {info.spill_bytes} spill bytes, "
            f"{info.smem_bytes} B smem, tile {info.tile}")
        t0 = time.perf_counter()
        again = flashjit.compile(spec)
        out["same_process_hit_ms"] = (time.perf_counter() - t0) * 1e3
        out["same_process_hit"] = again.cache_hit
    except Exception as e:
        out["error"] = short(e)
        log(f"flashjit compile: n/a: {short(e)}")
        return out
    script = textwrap.dedent(f"""
        import json, time
        t0 = time.perf_counter()
        import flashjit
        t1 = time.perf_counter()
        spec = flashjit.Spec.from_json({spec.to_json()!r})
        info = flashjit.compile(spec, arch={info.arch!r})    # disk-cache hit, no CUDA involved
        t2 = time.perf_counter()
        info2 = flashjit.compile(spec)                        # arch of the GPU: driver init + hit
        t3 = time.perf_counter()
        print(json.dumps({{"import_ms": (t1 - t0) * 1e3, "compile_ms": (t2 - t1) * 1e3,
                          "cache_hit": info.cache_hit, "load_ms": info.load_ms,
                          "with_device_query_ms": (t3 - t2) * 1e3, "second_hit": info2.cache_hit}}))
    """)
    try:
        env = dict(os.environ, FLASHJIT_CACHE_DIR=cache_dir)
        res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                             timeout=600)
        if res.returncode != 0:
            raise RuntimeError(res.stderr.strip()[-400:])
        child = json.loads(res.stdout.strip().splitlines()[-1])
        out["new_process"] = child
        log(f"flashjit cache hit in a new process: compile() {child['compile_ms']:.2f} ms "
            f"(cache_hit={child['cache_hit']}, import flashjit {child['import_ms']:.1f} ms); "
            f"a compile() that queries the GPU's arch first (CUDA driver init): "
            f"{child['with_device_query_ms']:.1f} ms")
    except Exception as e:
        out["new_process"] = {"error": short(e)}
        log(f"flashjit new-process cache hit: n/a: {short(e)}")
    return out


def flex_new_variant(torch, impls: Impls) -> Dict[str, Any]:
    """FlexAttention's first call for a variant it has not seen (sliding window + causal)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask

        flex = impls.flex_compiled()
        b, h, n, d = 2, 16, 8192, 128
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))

        def sliding_causal(b_, h_, q_idx, kv_idx):
            return (q_idx >= kv_idx) & (q_idx - kv_idx <= 1024)

        torch.cuda.synchronize()
        t0 = time.perf_counter()
        bm = create_block_mask(sliding_causal, B=None, H=None, Q_LEN=n, KV_LEN=n, device="cuda")
        torch.cuda.synchronize()
        mask_ms = (time.perf_counter() - t0) * 1e3
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = first_call_ms(torch, lambda: flex(q, k, v, block_mask=bm))
        if any("without torch.compile" in str(w.message) for w in caught):
            raise RuntimeError("FlexAttention fell back to the unfused eager path")
        log(f"FlexAttention new variant (sliding window 1024 + causal, N {n}): first call {first:.0f} ms "
            f"(+ create_block_mask {mask_ms:.1f} ms)")
        return {"variant": "sliding_window_1024_causal", "B": b, "H": h, "N": n, "D": d,
                "first_call_ms": first, "create_block_mask_ms": mask_ms}
    except Exception as e:
        log(f"FlexAttention new variant: n/a: {short(e)}")
        return {"error": short(e)}


def flashjit_new_variant(torch, flashjit) -> Dict[str, Any]:
    """flashjit's first call of the same new variant (compile included), for comparison."""
    try:
        b, h, n, d = 2, 16, 8192, 128
        q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        with torch.no_grad():
            first = first_call_ms(torch, lambda: flashjit.attention(q, k, v, causal=True, window=(1024, 0)))
        log(f"flashjit new variant (sliding window 1024 + causal, N {n}): first call {first:.0f} ms")
        return {"variant": "sliding_window_1024_causal", "first_call_ms": first}
    except Exception as e:
        log(f"flashjit new variant: n/a: {short(e)}")
        return {"error": short(e)}


def seeds_experiment(torch, flashjit, impls: Impls, bench, only_flashjit: bool) -> Dict[str, Any]:
    """The seeds' experiment: fp16, B 32, H 8, N 2048, D 64 (their code used dropout 0.2)."""
    log("-- seeds' experiment: fp16, B 32, H 8, N 2048, D 64; every side without dropout and, as in "
        "the seeds' code, with 0.2")
    F = torch.nn.functional
    b, h, n, d = 32, 8, 2048, 64
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))

    def naive(p):
        def fn():
            attn = q @ k.transpose(-2, -1)  # as in the seeds: no 1/sqrt(d) scale
            attn = attn.softmax(dim=-1)
            if p:
                attn = F.dropout(attn, p=p, training=True)
            return attn @ v
        return fn

    def sdpa(backend, p):
        def fn():
            with impls.sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return fn

    cases = [("flashjit (no dropout)", lambda: flashjit.attention(q, k, v)),
             ("flashjit (dropout 0.2)", lambda: flashjit.attention(q, k, v, dropout_p=0.2))]
    if not only_flashjit:
        cases += [("naive PyTorch (no dropout)", naive(0.0)),
                  ("naive PyTorch (dropout 0.2)", naive(0.2)),
                  ("SDPA flash (no dropout)", sdpa(impls.SDPBackend.FLASH_ATTENTION, 0.0)),
                  ("SDPA flash (dropout 0.2)", sdpa(impls.SDPBackend.FLASH_ATTENTION, 0.2)),
                  ("SDPA cuDNN (no dropout)", sdpa(impls.SDPBackend.CUDNN_ATTENTION, 0.0)),
                  ("SDPA cuDNN (dropout 0.2)", sdpa(impls.SDPBackend.CUDNN_ATTENTION, 0.2))]
    out: Dict[str, Any] = {"shape": {"B": b, "H": h, "N": n, "D": d, "dtype": "fp16"},
                           "note": "each side with and without dropout 0.2", "results": {}}
    with torch.no_grad():
        for name, fn in cases:
            try:
                fn()
                mem = peak_mem_mb(torch, fn)
                ms = bench(fn)
                out["results"][name] = {"ms": ms, "peak_mem_mb": mem}
                log(f"   {name:28s} {ms:8.3f} ms  peak {mem:8.1f} MiB")
            except Exception as e:
                out["results"][name] = {"error": short(e)}
                log(f"   {name:28s} n/a: {short(e)}")
    return out


# --- report --------------------------------------------------------------------------------

def fmt_num(x: Optional[float], nd: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def markdown_table(rows, which: List[str]) -> str:
    peers = [p for p in which if p != "flashjit"]
    head = ["D", "N", "causal", "B×H"] + [LABELS[p] + " TFLOP/s" for p in which]
    head += [f"flashjit/{LABELS[p]}" for p in peers]
    head += [f"peak MiB {LABELS[p]}" for p in which] + ["max |Δ| vs SDPA"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        res = r.get("results", {})
        tf = {p: res.get(p, {}).get("tflops") for p in which}
        cells = [str(r["D"]), str(r["N"]), "y" if r["causal"] else "n", f"{r['B']}×{r['H']}"]
        cells += [fmt_num(tf[p]) for p in which]
        for p in peers:
            a, b = tf.get("flashjit"), tf.get(p)
            cells.append(f"{a / b:.2f}" if a and b else "n/a")
        cells += [fmt_num(res.get(p, {}).get("peak_mem_mb")) for p in which]
        ver = r.get("verify", {})
        if "max_abs_diff" in ver:
            cells.append(f"{ver['max_abs_diff']:.2g}" + ("" if ver.get("ok") else " ⚠"))
        else:
            cells.append("n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_legend(rows, which) -> str:
    seen = {}
    for r in rows:
        for p in which:
            e = r.get("results", {}).get(p, {}).get("error")
            if e and (p, e) not in seen:
                seen[(p, e)] = f"D={r['D']} N={r['N']} causal={'y' if r['causal'] else 'n'}"
    return "\n".join(f"- {LABELS[p]} n/a ({where} and maybe others): {e}" for (p, e), where in seen.items())


# One colour per implementation, the same in every plot (scripts/plot_perf.py draws the
# README's figure from saved results.json files with draw_bars too).
COLORS = {"flashjit": "C0", "flashjit_det": "#9ecae1", "sdpa_flash": "C1", "sdpa_cudnn": "C2", "flex": "C3"}


def row_label(r: Dict[str, Any]) -> str:
    case = r.get("case") or ("causal" if r.get("causal") else "full")
    if len(case) > 10:  # "window1024+causal": one line per part
        case = case.replace("+", "+\n")
    return f"D{r['D']}\nN{r['N']}\n{case}"


def draw_bars(ax, rows, which, labels: Dict[str, str] = LABELS) -> List[float]:
    """TFLOP/s bars, one group per row, one bar per implementation of `which` that has a
    number in that row (a missing one leaves no gap). Returns each group's x position."""
    width = 0.8 / max(1, len(which))
    drawn = set()
    for j, r in enumerate(rows):
        present = [p for p in which if r["results"].get(p, {}).get("tflops")]
        for i, p in enumerate(present):
            x = j + (i - (len(present) - 1) / 2) * width
            ax.bar(x, r["results"][p]["tflops"], width, color=COLORS.get(p),
                   label=None if p in drawn else labels[p])
            drawn.add(p)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([row_label(r) for r in rows], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    # Legend in the order of `which`, whatever row drew an implementation first.
    handles, names = ax.get_legend_handles_labels()
    order = [labels[p] for p in which if labels[p] in names]
    ax.legend([handles[names.index(n)] for n in order], order, fontsize=8)
    return list(range(len(rows)))


def plot(rows, which, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        log(f"plot skipped: matplotlib is not importable ({short(e)})")
        return None
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(rows)), 5))
    draw_bars(ax, rows, which)
    ax.set_ylabel("TFLOP/s (forward, bf16)")
    ax.set_title("Attention forward: flashjit vs peers (16k tokens, hidden 2048)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out", help="directory for results.json and the plot")
    ap.add_argument("--quick", action="store_true", help="fewer rows (N 4096 only) and shorter timing")
    ap.add_argument("--only-flashjit", action="store_true", help="time flashjit alone (still verified)")
    ap.add_argument("--cache-dir", default=None,
                    help="FLASHJIT_CACHE_DIR to use (default: a fresh temporary one, so compiles are cold)")
    ap.add_argument("--warmup", type=float, default=25.0, help="do_bench warmup (ms)")
    ap.add_argument("--rep", type=float, default=100.0, help="do_bench repetitions (ms)")
    args = ap.parse_args()

    # Before flashjit is imported: every compile of this run goes to this cache dir.
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="flashjit-bench-cache-")
    os.environ["FLASHJIT_CACHE_DIR"] = cache_dir
    os.makedirs(args.out, exist_ok=True)

    import torch
    import flashjit

    if not torch.cuda.is_available():
        log("no CUDA device visible to torch: nothing to benchmark")
        return 1
    if not flashjit.gpu_available():
        log("flashjit sees no GPU: " + flashjit.gpu_unavailable_reason())
        return 1

    if args.quick:
        args.warmup, args.rep = min(args.warmup, 10.0), min(args.rep, 40.0)
    bench = make_timer(torch, args.warmup, args.rep)
    impls = Impls(torch, flashjit)
    which = ["flashjit"] if args.only_flashjit else list(IMPLS)

    props = torch.cuda.get_device_properties(0)
    env = {
        "gpu": torch.cuda.get_device_name(0), "sm": f"{props.major}.{props.minor}",
        "sms": props.multi_processor_count, "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "flashjit": flashjit.__version__, "python": platform.python_version(),
        "timing": f"median of CUDA-event timings (do_bench warmup {args.warmup} ms, rep {args.rep} ms)",
        "flops": "4*B*H*N^2*D, halved when causal",
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception:
        env["triton"] = None
    log("environment: " + json.dumps(env))

    results: Dict[str, Any] = {"env": env, "args": vars(args)}
    results["compile"] = compile_times(torch, flashjit, cache_dir)

    rows = grid_rows(args.quick)
    t0 = time.perf_counter()
    run_grid(torch, impls, bench, rows, which)
    results["grid_seconds"] = time.perf_counter() - t0
    results["rows"] = rows

    results["new_variant"] = {"flashjit": flashjit_new_variant(torch, flashjit)}
    if "flex" in which:
        results["new_variant"]["flex"] = flex_new_variant(torch, impls)
    results["seeds"] = seeds_experiment(torch, flashjit, impls, bench, args.only_flashjit)

    bad = [r for r in rows if not r.get("verify", {}).get("ok", False)]
    results["verify_failures"] = len(bad)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    png = plot(rows, which, os.path.join(args.out, "attention_fwd.png"))

    # --- the summary, last ---
    log("")
    log(f"## Attention forward, bf16 — {env['gpu']}, torch {env['torch']}, flashjit {env['flashjit']}")
    log(f"{env['timing']}; FLOPs {env['flops']}; grid: batch = 16384 // N, heads = 2048 // D.")
    log("")
    log(markdown_table(rows, which))
    legend = errors_legend(rows, which)
    if legend:
        log("")
        log(legend)
    c = results["compile"]
    log("")
    if "cold_wall_ms" in c:
        np_ = c.get("new_process", {})
        hit = (f"{np_['compile_ms']:.2f} ms (cache_hit={np_['cache_hit']}; "
               f"{np_['with_device_query_ms']:.0f} ms when it also initialises the CUDA driver)"
               if "compile_ms" in np_ else f"n/a ({np_.get('error')})")
        log(f"- flashjit compile, bf16 D128 causal: cold {c['cold_wall_ms']:.0f} ms "
            f"(NVRTC {c['cold_nvrtc_ms']:.0f} ms); cache hit in a new process {hit}")
    else:
        log(f"- flashjit compile: n/a ({c.get('error')})")
    for p in which:
        firsts = [r["results"][p]["first_call_ms"] for r in rows
                  if "first_call_ms" in r.get("results", {}).get(p, {})]
        if firsts:
            log(f"- {LABELS[p]} first call per grid row (compile included where it compiles): "
                f"{min(firsts):.0f}–{max(firsts):.0f} ms")
    nv = results["new_variant"]
    for name, r in nv.items():
        if "first_call_ms" in r:
            log(f"- {LABELS[name]} first call of a new variant (sliding window 1024 + causal, "
                f"B 2, H 16, N 8192, D 128): {r['first_call_ms']:.0f} ms")
        else:
            log(f"- {LABELS[name]} first call of a new variant: n/a ({r.get('error')})")
    s = results["seeds"]
    parts = [f"{k} {v['ms']:.3f} ms" if "ms" in v else f"{k} n/a" for k, v in s["results"].items()]
    log(f"- seeds' experiment (fp16, B 32, H 8, N 2048, D 64; {s['note']}): " + "; ".join(parts))
    if bad:
        log(f"- VERIFY: {len(bad)} row(s) where flashjit differs from SDPA by more than {VERIFY_TOL} "
            "or has NaN (see 'max |Δ|' column)")
    log(f"- results: {os.path.join(args.out, 'results.json')}" + (f"; plot: {png}" if png else "; no plot"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
