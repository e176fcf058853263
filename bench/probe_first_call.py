"""Where the first call of a new variant spends its time, phase by phase, in a fresh process
with a fresh kernel cache (issue 12, item 2). bench_first_call.py times the whole first call;
this splits it:

  import torch, CUDA init      not part of flashjit's first call (a torch program pays them anyway)
  import flashjit              loads _C (flashjit's C++ and its embedded templates)
  nvrtc load                   dlopen of libnvrtc and its version check (flashjit.nvrtc_library())
  compile                      flashjit.compile(spec) for this GPU: codegen + NVRTC (the heuristic tile)
  first call                   flashjit.attention(...) + synchronize with the kernel compiled: tile
                               decision, module load, launch (FLASHJIT_AUTOTUNE=0: no tuning)
  first call, grad             the same call with requires_grad, then .backward() (compiles the
                               backward's kernels: reported apart)
  second variant               a new variant's first call in the same (warm) process: compile + call

    python bench/probe_first_call.py [--out probe.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def child() -> dict:
    t = {}
    t0 = time.perf_counter()
    import torch

    t["import torch"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q, k, v = (torch.randn(2, 16, 8192, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    torch.cuda.synchronize()
    t["CUDA init + inputs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import flashjit

    t["import flashjit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lib = flashjit.nvrtc_library()
    t["nvrtc load"] = time.perf_counter() - t0
    spec = flashjit.Spec(dtype="bf16", head_dim=128, num_heads_q=16, num_heads_kv=16, mask="sliding_window",
                         window=(1024, 0))
    t0 = time.perf_counter()
    compiled = flashjit.compile(spec)
    t["compile (codegen + NVRTC)"] = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        flashjit.attention(q, k, v, causal=True, window=(1024, 0))
        torch.cuda.synchronize()
        t["first call, kernel compiled"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        flashjit.attention(q, k, v, causal=True, window=(1024, 0))
        torch.cuda.synchronize()
        t["second call"] = time.perf_counter() - t0
    qg, kg, vg = (x[:, :, :2048].clone().requires_grad_(True) for x in (q, k, v))
    t0 = time.perf_counter()
    o = flashjit.attention(qg, kg, vg, causal=True, window=(1024, 0))
    torch.cuda.synchronize()
    t["first call, grad (forward)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    o.sum().backward()
    torch.cuda.synchronize()
    t["first backward (compiles its kernels)"] = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        flashjit.attention(q, k, v, causal=True, window=(512, 0), softcap=30.0)
        torch.cuda.synchronize()
        t["second variant, first call (compile + call)"] = time.perf_counter() - t0
    return {"seconds": t, "nvrtc": lib, "compile_ms_reported": compiled.compile_ms,
            "stats": flashjit.runtime_stats()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="probe_first_call.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    with tempfile.TemporaryDirectory(prefix="fj-probe-") as tmp:
        env = dict(os.environ, FLASHJIT_CACHE_DIR=os.path.join(tmp, "flashjit"), FLASHJIT_AUTOTUNE="0")
        r = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                           timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"probe failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print("| phase (fresh process, fresh cache, FLASHJIT_AUTOTUNE=0) | ms |\n|---|---|")
    for name, s in res["seconds"].items():
        print(f"| {name} | {s * 1e3:.0f} |")
    print(f"\nNVRTC: {res['nvrtc']}; compile_ms reported by NVRTC: {res['compile_ms_reported']:.0f}; "
          f"stats: {res['stats']}")


if __name__ == "__main__":
    main()
