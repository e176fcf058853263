"""Host overhead: the CPU time from a Python call to its kernel launch, for a problem so small
that the GPU is never the bottleneck (issue 12, item 3), beside torch SDPA's.

Per implementation: N back-to-back calls after a warm-up (the kernel compiled and tuned),
timed on the CPU without synchronising inside the loop. With the GPU faster than the host,
the launches queue up behind nothing and the per-call wall time is the host path: argument
checks, spec lookup, kernel lookup, launch. Reported as the median over 7 rounds.

    python bench/bench_host_overhead.py [--out host_overhead.json] [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="host_overhead.json")
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import flashjit

    b, h, n, d = 1, 4, 128, 64
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def sdpa_backend(backend):
        def call():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return call

    impls = {
        "flashjit.attention": lambda: flashjit.attention(q, k, v, causal=True),
        "flashjit.scaled_dot_product_attention": lambda: flashjit.scaled_dot_product_attention(q, k, v, is_causal=True),
        "torch SDPA (default dispatch)": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "torch SDPA flash (sdpa_kernel ctx)": sdpa_backend(SDPBackend.FLASH_ATTENTION),
        "torch SDPA cuDNN (sdpa_kernel ctx)": sdpa_backend(SDPBackend.CUDNN_ATTENTION),
        "flashjit.attention, requires_grad": lambda: flashjit.attention(qg, kg, vg, causal=True),
        "torch SDPA (default), requires_grad": lambda: F.scaled_dot_product_attention(qg, kg, vg, is_causal=True),
    }
    results = {}
    for name, call in impls.items():
        grad = "requires_grad" in name
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            for _ in range(50):
                call()
            flashjit.wait_for_tuning()
            for _ in range(50):
                call()
            torch.cuda.synchronize()
            rounds = []
            for _ in range(7):
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    call()
                rounds.append((time.perf_counter() - t0) / args.calls * 1e6)
                torch.cuda.synchronize()
        results[name] = {"host_us_per_call": statistics.median(rounds), "rounds_us": rounds}
        print(f"{name:42s} {statistics.median(rounds):7.2f} us/call", flush=True)
    # Where flashjit's time goes: the Python layer alone (the launch call replaced by a no-op),
    # and the C++ entry alone (checks, memo lookup, cuLaunchKernel) with its arguments ready.
    from flashjit import _C

    out = torch.empty_like(q)
    spec_json = flashjit.Spec(dtype="fp16", head_dim=d, num_heads_q=h, num_heads_kv=h, mask="causal").to_json()
    stream = torch.cuda.current_stream().cuda_stream
    fargs = (spec_json, q.device.index, "float16", q.data_ptr(), q.shape, q.stride(), k.data_ptr(), k.shape, k.stride(),
            v.data_ptr(), v.shape, v.stride(), out.data_ptr(), 0, stream, [])
    real = _C.forward_torch
    parts = {"flashjit Python layer (launch stubbed)": lambda: flashjit.attention(q, k, v, causal=True),
             "flashjit C++ entry (_C.forward_torch)": lambda: real(*fargs)}
    for name, call in parts.items():
        stub = name.startswith("flashjit Python")
        with torch.no_grad():
            call()  # compiled / decided
            if stub:
                _C.forward_torch = lambda *a, **kw: None
            try:
                rounds = []
                for _ in range(7):
                    t0 = time.perf_counter()
                    for _ in range(500):
                        call()
                    rounds.append((time.perf_counter() - t0) / 500 * 1e6)
                    torch.cuda.synchronize()
            finally:
                _C.forward_torch = real
        results[name] = {"host_us_per_call": statistics.median(rounds), "rounds_us": rounds}
        print(f"{name:42s} {statistics.median(rounds):7.2f} us/call", flush=True)
    # The kernel itself, for scale: the GPU time of one flashjit call in a back-to-back loop.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.no_grad():
        start.record()
        for _ in range(200):
            flashjit.attention(q, k, v, causal=True)
        end.record()
        torch.cuda.synchronize()
    results["gpu_us_per_flashjit_call"] = start.elapsed_time(end) / 200 * 1e3
    print(f"GPU time per flashjit call (same loop, events): {results['gpu_us_per_flashjit_call']:.2f} us")
    with open(args.out, "w") as f:
        json.dump({"shape": [b, h, n, d], "dtype": "fp16", "causal": True, "results": results}, f, indent=1)
    fj = results["flashjit.attention"]["host_us_per_call"]
    sd = results["torch SDPA (default dispatch)"]["host_us_per_call"]
    print(f"\nflashjit.attention / torch SDPA host time: {fj / sd:.2f}")


if __name__ == "__main__":
    main()
