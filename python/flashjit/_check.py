"""flashjit.check: how far a variant's kernels are from exact, forward and backward.

The seeds worry that tiling and recomputation bring "subtle numerical differences" nobody
measured. check() measures them for one variant and shape: it runs attention() (and its
backward) on fresh random inputs and compares with float64 attention computed densely by
torch on the same inputs, beside the dtype's rounding floor: the error of the float64
result merely rounded to fp16 / bf16, which no kernel storing that dtype can beat.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Optional, Tuple

__all__ = ["check"]

_WHO = "flashjit.check"


def _rel(x: Any, ref: Any) -> float:
    """Frobenius-relative error ||x - ref|| / ||ref|| over finite reference entries."""
    keep = ref.isfinite()
    num = (x.double() - ref)[keep].norm().item()
    den = ref[keep].norm().item()
    return num / den if den > 0 else num


def _reference(torch: Any, q: Any, k: Any, v: Any, scale: float, visible: Any, score_mod: Any, keep: Any,
               p: float) -> Tuple[Any, Any]:
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    g = hq // hkv
    qf, kf, vf = q.double(), k.double().repeat_interleave(g, 1), v.double().repeat_interleave(g, 1)
    s = (qf @ kf.transpose(-1, -2)) * scale
    if score_mod is not None:
        B = torch.arange(b, device=q.device).view(b, 1, 1, 1)
        H = torch.arange(hq, device=q.device).view(1, hq, 1, 1)
        Q = torch.arange(sq, device=q.device).view(1, 1, sq, 1)
        K = torch.arange(sk, device=q.device).view(1, 1, 1, sk)
        s = score_mod(s, B, H, Q, K).double()
    s = s.masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(s, -1)
    prob = torch.exp(s - lse.unsqueeze(-1)).nan_to_num(0.0)
    if keep is not None:
        prob = prob * keep.double() / (1.0 - math.floor(p * 256) / 256)
    return prob @ vf, lse


def _visible(torch: Any, b: int, hq: int, sq: int, sk: int, causal: bool, window: Any, align: str, mask_mod: Any,
             device: Any) -> Any:
    Q = torch.arange(sq, device=device).view(1, 1, sq, 1)
    K = torch.arange(sk, device=device).view(1, 1, 1, sk)
    a = Q + (sk - sq if align == "bottom_right" else 0)
    vis = torch.ones((1, 1, sq, sk), dtype=torch.bool, device=device)
    if causal:
        vis = vis & (K <= a)
    if window is not None:
        left, right = window
        if left is not None and left >= 0:
            vis = vis & (K >= a - left)
        if right is not None and right >= 0 and not causal:
            vis = vis & (K <= a + right)
    if mask_mod is not None:
        B = torch.arange(b, device=device).view(b, 1, 1, 1)
        H = torch.arange(hq, device=device).view(1, hq, 1, 1)
        vis = vis & mask_mod(B, H, Q, K)
    return vis.expand(b, hq, sq, sk)


def check(*, dtype: str = "bf16", head_dim: int = 128, head_dim_v: Optional[int] = None, batch: int = 2,
          heads_q: int = 8, heads_kv: Optional[int] = None, seqlen_q: int = 1024, seqlen_k: Optional[int] = None,
          causal: bool = False, window: Any = None, align: str = "bottom_right", scale: Optional[float] = None,
          mask_mod: Any = None, score_mod: Any = None, dropout_p: float = 0.0, backward: bool = True,
          deterministic: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    """Runs one variant on random inputs against float64 attention and reports the errors.

    The variant's arguments are attention()'s (mask_mod / score_mod must also run on torch
    tensors of indices: they are evaluated densely for the reference). Returns a dict:
      out_rel, out_max_abs: the output's Frobenius-relative and largest absolute error;
      out_floor_rel: the same for the float64 output rounded to the dtype (the floor);
      lse_max_abs: the largest LSE error (natural log) over rows that see a key;
      dq_rel, dk_rel, dv_rel (with backward=True), and their rounding floors *_floor_rel.
    verbose prints them as a small table. Needs torch and a CUDA GPU.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            raise RuntimeError(f"{_WHO}: needs torch (pip install torch) and a CUDA GPU") from None
    if not torch.cuda.is_available():
        raise RuntimeError(f"{_WHO}: torch sees no CUDA GPU; check() runs the kernels")
    from . import attention, dropout_keep_mask

    tdtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)
    if tdtype is None:
        raise ValueError(f"{_WHO}: dtype must be 'bf16' or 'fp16'; got {dtype!r}")
    hkv = heads_q if heads_kv is None else heads_kv
    sk = seqlen_q if seqlen_k is None else seqlen_k
    dv = head_dim if head_dim_v is None else head_dim_v
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def rand(*shape):
        return torch.randn(shape, generator=gen, device="cuda").to(tdtype).requires_grad_(backward)

    q, k, v = rand(batch, heads_q, seqlen_q, head_dim), rand(batch, hkv, sk, head_dim), rand(batch, hkv, sk, dv)
    state = (seed + 1, 0) if dropout_p > 0 else None
    o, lse = attention(q, k, v, causal=causal, window=window, align=align, scale=scale, mask_mod=mask_mod,
                       score_mod=score_mod, dropout_p=dropout_p, dropout_state=state, return_lse=True,
                       deterministic=deterministic)
    sc = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    vis = _visible(torch, batch, heads_q, seqlen_q, sk, causal, window, align, mask_mod, q.device)
    keep = dropout_keep_mask(batch, heads_q, seqlen_q, sk, dropout_p, state).to(q.device) if state else None
    leaves = [t.detach().double().requires_grad_(backward) for t in (q, k, v)]
    ro, rlse = _reference(torch, *leaves, sc, vis, score_mod, keep, dropout_p)
    live = rlse.isfinite()
    res = {
        "out_rel": _rel(o, ro.detach()),
        "out_max_abs": (o.double() - ro.detach()).abs().max().item(),
        "out_floor_rel": _rel(ro.detach().to(tdtype), ro.detach()),
        "lse_max_abs": (lse.double() - rlse.detach())[live].abs().max().item() if live.any() else 0.0,
        "masked_rows_ok": bool(torch.all(o[~live] == 0)) and bool(torch.all(lse[~live] == float("-inf"))),
    }
    if backward:
        do = torch.randn(o.shape, generator=gen, device="cuda").to(tdtype)
        o.backward(do)
        ro.backward(do.double())
        for name, got, ref in (("dq", q.grad, leaves[0].grad), ("dk", k.grad, leaves[1].grad),
                               ("dv", v.grad, leaves[2].grad)):
            res[f"{name}_rel"] = _rel(got, ref)
            res[f"{name}_floor_rel"] = _rel(ref.to(tdtype), ref)
    if verbose:
        print(f"{_WHO}: {dtype} d{head_dim} B{batch} Hq{heads_q} Hkv{hkv} Sq{seqlen_q} Sk{sk} causal={causal} "
              f"window={window} mask_mod={'yes' if mask_mod else 'no'} score_mod={'yes' if score_mod else 'no'} "
              f"dropout_p={dropout_p}")
        print(f"  {'':4s} {'rel err':>10s} {'floor':>10s} {'ratio':>7s}")
        for name in ("out", "dq", "dk", "dv"):
            if f"{name}_rel" in res:
                r, f = res[f"{name}_rel"], res[f"{name}_floor_rel"]
                print(f"  {name:4s} {r:10.3e} {f:10.3e} {r / f if f else float('inf'):7.2f}")
        print(f"  lse max abs err {res['lse_max_abs']:.3e}; out max abs err {res['out_max_abs']:.3e}; "
              f"rows without a key give 0 / -inf: {res['masked_rows_ok']}")
    return res
