"""Drop-in entry points: torch SDPA's and FlexAttention's signatures and semantics, served by
flashjit's kernels, so that migrating is one import:

    from flashjit import scaled_dot_product_attention   # for torch.nn.functional's
    from flashjit import flex_attention                 # for torch.nn.attention.flex_attention's

Both go through attention(); they differ from it only in conventions (docs/python.md has the
side-by-side table). SDPA's attn_mask becomes a captured-tensor expression read by the
kernel (no dense fallback, no copy of the mask): the expression text is written here, not
traced, so a new mask tensor every call costs no trace and no cache entry.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Optional, Tuple

from ._attention import _FAST_SPECS, _attention, _eager_call, _fast_key, _launch_fast, _launch_fast_grad, _shape_str

__all__ = ["scaled_dot_product_attention", "flex_attention"]

_SDPA = "flashjit.scaled_dot_product_attention"
_FLEX = "flashjit.flex_attention"
_MASK_DTYPES = {"torch.bool": "bool", "torch.float16": "f16", "torch.bfloat16": "bf16", "torch.float32": "f32"}


def _check_rank(who: str, q: Any, k: Any, v: Any, lo: int, hi: int) -> int:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not hasattr(t, "shape") or not (lo <= len(t.shape) <= hi):
            what = f"shape {_shape_str(t)}" if hasattr(t, "shape") else type(t).__name__
            dims = "(batch, heads, seqlen, head_dim)" if lo == hi else "(..., heads, seqlen, head_dim)"
            raise ValueError(f"{who}: {name} must have {lo if lo == hi else f'{lo} to {hi}'} dimensions {dims}; "
                             f"got {what}")
    if not (len(q.shape) == len(k.shape) == len(v.shape)):
        raise ValueError(f"{who}: query, key and value must have the same number of dimensions; got "
                         f"{_shape_str(q)}, {_shape_str(k)}, {_shape_str(v)}")
    return len(q.shape)


def _check_gqa(who: str, q: Any, k: Any, enable_gqa: bool) -> None:
    hq, hkv = int(q.shape[-3]), int(k.shape[-3])
    if hq != hkv and not enable_gqa:
        raise ValueError(f"{who}: query has {hq} heads but key/value have {hkv}; pass enable_gqa=True for "
                         "grouped-query attention (as torch requires)")
    if enable_gqa and (hkv == 0 or hq % hkv != 0):
        raise ValueError(f"{who}: enable_gqa=True needs key/value's heads ({hkv}) to divide query's ({hq})")


def _mask_index(mshape: Tuple[int, ...], full: Tuple[int, ...]) -> str:
    """The index list that reads element (b, h, q_idx, kv_idx) of a mask of shape ``mshape``
    broadcast to ``full`` = ([batch,] heads, L, S): size-1 dimensions read index 0."""
    names = ("b", "h", "q_idx", "kv_idx")[4 - len(full):]
    return ", ".join(var if m != 1 else "0" for var, m in zip(names, mshape))


def _sdpa_mask_exprs(torch: Any, attn_mask: Any, full: Tuple[int, ...]) -> tuple:
    """(mask_text, score_text, decls, tensors) for SDPA's attn_mask broadcast to ``full``:
    a boolean mask (True = take part) as the mask expression, a float one added to the
    scaled score as the score_mod."""
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"{_SDPA}: attn_mask must be a torch.Tensor (bool, or float to add); got "
                        f"{type(attn_mask).__name__}")
    dt = _MASK_DTYPES.get(str(attn_mask.dtype))
    if dt is None:
        raise TypeError(f"{_SDPA}: attn_mask has dtype {attn_mask.dtype}; supported: torch.bool (True = take "
                        "part in attention) or torch.float16 / bfloat16 / float32 (added to the scores)")
    ms = tuple(int(s) for s in attn_mask.shape)
    if len(ms) > len(full) or any(m not in (1, f) for m, f in zip(ms[::-1], full[::-1])):
        raise ValueError(f"{_SDPA}: attn_mask of shape {ms} does not broadcast to the scores' shape {full} "
                         "(..., heads_q, seqlen_q, seqlen_k)")
    if attn_mask.device.type != "cuda":
        raise ValueError(f"{_SDPA}: attn_mask must be on the query's CUDA device; got {attn_mask.device}")
    # The kernel reads the mask in place: a rank-4-or-less view, size-1 dims padded in front.
    pad = (1,) * (len(full) - len(ms)) + ms
    if len(full) > 4:  # the leading batch dims were flattened into one: so must the mask's be
        batch = pad[:-3]
        if all(m == 1 for m in batch):
            nb = 1
        elif batch == full[:-3]:
            nb = math.prod(batch)
        else:
            raise ValueError(f"{_SDPA}: an attn_mask of shape {ms} broadcast over some but not all of the "
                             f"batch dimensions of {full} is not supported; expand it over all of them or "
                             "reshape query, key and value to 4 dimensions")
        mask = attn_mask.reshape((nb,) + pad[-3:])
        index = _mask_index((nb,) + pad[-3:], (math.prod(full[:-3]),) + full[-3:])
    else:
        mask = attn_mask.reshape(pad) if len(ms) != len(full) else attn_mask
        index = _mask_index(pad, full)
    read = f"attn_mask[{index}]"
    decls = (("attn_mask", dt, len(mask.shape)),)
    if dt == "bool":
        return read, None, decls, (mask,)
    return None, f"score + {read}", decls, (mask,)


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Any:
    """torch.nn.functional.scaled_dot_product_attention, with the same signature and meaning.

    query (N, ..., Hq, L, E), key (N, ..., Hkv, S, E), value (N, ..., Hkv, S, Ev): fp16 / bf16
    CUDA tensors (3 dimensions or more; the dims before the heads are batch dims). Returns
    (N, ..., Hq, L, Ev).
    attn_mask: broadcastable to (N, ..., Hq, L, S); bool (True = the key takes part) or a
      float tensor added to the scaled scores (-inf hides a key). Read in place by the kernel.
    dropout_p: applied whenever > 0, as torch's (pass 0.0 in eval mode); p is rounded down to a
      multiple of 1/256 and the RNG state comes from torch's default CUDA generator.
    is_causal: top-left aligned, as torch's (query i sees keys j <= i); not with attn_mask.
    scale: default 1 / sqrt(E). enable_gqa: Hkv may divide Hq; without it they must be equal.

    One difference: a query row that sees no key gives 0 (torch gives NaN there).
    """
    fast_key = None
    if attn_mask is None and _eager_call() and not dropout_p:
        # The signature (with enable_gqa, whose check it passed) of a call that went through
        # every check before: straight to the launch (_attention.py, the eager fast path).
        fast_key = _fast_key(query, key, value, bool(is_causal), None, scale, False, ("top_left", bool(enable_gqa)),
                             False)
        spec_json = _FAST_SPECS.get(fast_key) if fast_key is not None else None
        if spec_json is not None:
            res = (_launch_fast_grad(query, key, value, spec_json, False, False) if fast_key[-1] is not None
                   else _launch_fast(query, key, value, spec_json, False))
            if res is not None:
                return res
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(query, torch.Tensor):
        raise TypeError(f"{_SDPA}: query must be a torch.Tensor; got {type(query).__name__}")
    rank = _check_rank(_SDPA, query, key, value, 3, 8)
    if attn_mask is not None and is_causal:
        raise ValueError(f"{_SDPA}: pass attn_mask or is_causal=True, not both (as torch requires); fold the "
                         "causal part into the mask")
    _check_gqa(_SDPA, query, key, enable_gqa)
    lead = tuple(int(s) for s in query.shape[:-3])
    for name, t in (("key", key), ("value", value)):
        if tuple(int(s) for s in t.shape[:-3]) != lead:
            raise ValueError(f"{_SDPA}: {name} has batch dimensions {tuple(t.shape[:-3])} but query has {lead}")
    nb = math.prod(lead)
    q4, k4, v4 = (t.reshape((nb,) + tuple(t.shape[-3:])) for t in (query, key, value))
    exprs = None
    if attn_mask is not None:
        full = lead + (int(query.shape[-3]), int(query.shape[-2]), int(key.shape[-2]))
        exprs = _sdpa_mask_exprs(torch, attn_mask, full)
    o = _attention(q4, k4, v4, causal=bool(is_causal), align="top_left", scale=scale, dropout_p=dropout_p,
                   exprs=exprs, fast_key=fast_key if rank == 4 else None)
    return o.reshape(lead + tuple(o.shape[-3:])) if rank != 4 else o


# FlexAttention's kernel_options: Triton tile and schedule knobs. flashjit's autotuner picks
# its own tile, so they are accepted and not used (they do not change results); "tile" is
# flashjit's own key, a Tile or dict that forces a kernel configuration.
_FLEX_KERNEL_OPTIONS = frozenset({
    "BLOCK_M", "BLOCK_N", "BLOCK_M1", "BLOCK_N1", "BLOCK_M2", "BLOCK_N2", "num_warps", "num_stages",
    "fwd_BLOCK_M", "fwd_BLOCK_N", "fwd_num_warps", "fwd_num_stages", "bwd_BLOCK_M1", "bwd_BLOCK_N1",
    "bwd_BLOCK_M2", "bwd_BLOCK_N2", "bwd_num_warps", "bwd_num_stages", "PRESCALE_QK", "ROWS_GUARANTEED_SAFE",
    "BLOCKS_ARE_CONTIGUOUS", "WRITE_DQ", "FORCE_USE_FLEX_ATTENTION", "OUTPUT_LOGSUMEXP", "OUTPUT_MAX", "USE_TMA",
    "kpack", "matrix_instr_nonkdim", "waves_per_eu", "SPARSE_Q_BLOCK_SIZE", "SPARSE_KV_BLOCK_SIZE",
})


def flex_attention(query: Any, key: Any, value: Any, score_mod: Any = None, block_mask: Any = None,
                   scale: Optional[float] = None, enable_gqa: bool = False, return_lse: bool = False,
                   kernel_options: Optional[dict] = None) -> Any:
    """torch.nn.attention.flex_attention.flex_attention, with the same signature and meaning.

    query (B, Hq, L, E), key (B, Hkv, S, E), value (B, Hkv, S, Ev), fp16 / bf16 CUDA tensors.
    score_mod(score, b, h, q_idx, kv_idx) -> score, on the scaled score; block_mask: a
    FlexAttention BlockMask (torch's create_block_mask) or flashjit.create_block_mask's, of
    any block size; its mask_mod masks the partial blocks. No block_mask = no mask.
    scale: default 1 / sqrt(E). enable_gqa: Hkv may divide Hq; without it they must be equal.
    return_lse: also return the log-sum-exp (B, Hq, L), natural log, float32 (-inf for a row
      that sees no key, whose output is 0).
    kernel_options: FlexAttention's Triton knobs are accepted and not used (flashjit tunes its
      own tile; they do not change results); {"tile": flashjit.Tile(...)} forces one.
    Differentiable in query, key, value and in float tensors score_mod reads.
    """
    _check_rank(_FLEX, query, key, value, 4, 4)
    _check_gqa(_FLEX, query, key, enable_gqa)
    tile = None
    if kernel_options is not None:
        if not isinstance(kernel_options, dict):
            raise TypeError(f"{_FLEX}: kernel_options must be a dict; got {type(kernel_options).__name__}")
        unknown = sorted(str(k) for k in kernel_options if k != "tile" and k not in _FLEX_KERNEL_OPTIONS)
        if unknown:
            raise ValueError(f"{_FLEX}: unknown kernel_options {unknown}; accepted: 'tile' (a flashjit.Tile or "
                             f"dict) and FlexAttention's {sorted(_FLEX_KERNEL_OPTIONS)} (not used)")
        tile = kernel_options.get("tile")
    return _attention(query, key, value, score_mod=score_mod, block_mask=block_mask, scale=scale,
                      return_lse=bool(return_lse), tile=tile)
