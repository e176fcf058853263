"""User-written variants: FlexAttention-style ``mask_mod`` / ``score_mod`` functions (or
expression text) turned into the spec's expression fields and the tensors they read.

    mask_text, score_text, decls, tensors = trace_variant(mask_mod, score_mod)

``decls`` are the spec's capture declarations ``((name, dtype, rank), ...)``; ``tensors``
the captured tensors in the same order, which a call passes to the kernel. Text passes
through as it is (its captures are declared separately, see Spec(captures=...)).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

from .expr_trace import Capture, TraceError, trace_mask_mod, trace_score_mod

Fn = Union[None, str, Callable[..., Any]]


def _merge(into: List[Capture], more: Tuple[Capture, ...]) -> None:
    for c in more:
        same = [x for x in into if x.name == c.name]
        if not same:
            into.append(c)
        elif same[0].tensor is not c.tensor:
            raise TraceError(f"flashjit: mask_mod and score_mod read two different tensors named "
                             f"'{c.name}'; give one of them another variable name")


def trace_variant(mask_mod: Fn, score_mod: Fn) -> Tuple[Optional[str], Optional[str], tuple, list]:
    caps: List[Capture] = []
    mask_text = score_text = None
    if callable(mask_mod):
        t = trace_mask_mod(mask_mod)
        mask_text = t.text
        _merge(caps, t.captures)
    elif mask_mod is not None:
        mask_text = str(mask_mod)
    if callable(score_mod):
        t = trace_score_mod(score_mod)
        score_text = t.text
        _merge(caps, t.captures)
    elif score_mod is not None:
        score_text = str(score_mod)
    decls = tuple((c.name, c.dtype, c.rank) for c in caps)
    return mask_text, score_text, decls, [c.tensor for c in caps]
