"""The usual variants as ready-made mask_mod / score_mod functions (FlexAttention's
conventions), for ``flashjit.attention(q, k, v, mask_mod=..., score_mod=...)`` and
``flashjit.Spec(mask=..., score_mod=...)``. They are ordinary traced functions: nothing
here is special-cased in the compiler. Causal and sliding-window masks are recognised as
bands and compile to the built-in kernels; the others are classified per tile.

    from flashjit import masks
    o = flashjit.attention(q, k, v, mask_mod=masks.and_(masks.causal(), masks.document(doc_ids)),
                           score_mod=masks.alibi(slopes))
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from . import expr_trace
from .expr_trace import SEQLEN_K, SEQLEN_Q, Sym

__all__ = ["causal", "causal_bottom_right", "sliding_window", "prefix_lm", "document", "and_", "or_",
           "alibi", "softcap", "relative_bias"]

def _torch_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor) and not isinstance(x, Sym)


# The same functions run traced by flashjit and on torch tensors (FlexAttention, a dense
# reference), so the helpers below dispatch on what they are given.
def _tanh(x: Any) -> Any:
    return sys.modules["torch"].tanh(x) if _torch_tensor(x) else expr_trace.tanh(x)


def _clamp(x: Any, lo: int, hi: int) -> Any:
    if _torch_tensor(x):
        return x.clamp(lo, hi)
    return expr_trace.minimum(expr_trace.maximum(x, lo), hi)


MaskMod = Callable[[Any, Any, Any, Any], Any]
ScoreMod = Callable[[Any, Any, Any, Any, Any], Any]


def causal() -> MaskMod:
    """Query i sees keys j <= i (top-left aligned, as torch SDPA's is_causal)."""
    return lambda b, h, q_idx, kv_idx: q_idx >= kv_idx


def causal_bottom_right() -> MaskMod:
    """Query i sees keys j <= i + seqlen_k - seqlen_q (FlashAttention's alignment). The
    sequence lengths are run-time values of flashjit's kernels, so this one traces only (a
    FlexAttention function would close over the lengths instead)."""
    return lambda b, h, q_idx, kv_idx: kv_idx <= q_idx + SEQLEN_K - SEQLEN_Q


def sliding_window(size: int) -> MaskMod:
    """Causal, and at most `size` keys back including the query's own position."""
    return lambda b, h, q_idx, kv_idx: (q_idx >= kv_idx) & (q_idx - kv_idx < size)


def prefix_lm(prefix: int) -> MaskMod:
    """Causal, except that every query sees the first `prefix` keys."""
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) | (kv_idx < prefix)


def document(doc_ids: Any) -> MaskMod:
    """Packed sequences: query and key in the same document (doc_ids: one id per token)."""
    return lambda b, h, q_idx, kv_idx: doc_ids[q_idx] == doc_ids[kv_idx]


def and_(*mods: MaskMod) -> MaskMod:
    def both(b, h, q_idx, kv_idx):
        out = mods[0](b, h, q_idx, kv_idx)
        for m in mods[1:]:
            out = out & m(b, h, q_idx, kv_idx)
        return out
    return both


def or_(*mods: MaskMod) -> MaskMod:
    def either(b, h, q_idx, kv_idx):
        out = mods[0](b, h, q_idx, kv_idx)
        for m in mods[1:]:
            out = out | m(b, h, q_idx, kv_idx)
        return out
    return either


def alibi(slopes: Any) -> ScoreMod:
    """ALiBi: score + slopes[h] * (kv_idx - q_idx) (slopes: one per query head)."""
    return lambda score, b, h, q_idx, kv_idx: score + slopes[h] * (kv_idx - q_idx)


def softcap(cap: float) -> ScoreMod:
    """Gemma-style soft-capping: cap * tanh(score / cap)."""
    cap = float(cap)
    return lambda score, b, h, q_idx, kv_idx: cap * _tanh(score / cap)


def relative_bias(table: Any, max_distance: int) -> ScoreMod:
    """score + table[h, clamp(q_idx - kv_idx + max_distance, 0, 2 max_distance)]
    (table: (heads, 2 * max_distance + 1))."""
    hi = 2 * max_distance
    return lambda score, b, h, q_idx, kv_idx: score + table[h, _clamp(q_idx - kv_idx + max_distance, 0, hi)]
