"""Dropout's RNG state and keep-mask (the Python side of docs/spec.md's dropout_p).

A call with ``dropout_p > 0`` drops element (batch b, query head h, query i, key j) iff
an 8-bit number of Philox4x32-7 keyed on (seed, offset, b, h, i, j) is below
floor(p · 256) (templates/flashjit/philox.cuh): a function of the call's RNG state and the
element's indices only, not of tiles, back end or kernel, so the backward regenerates the
forward's mask from the same state. Kept elements are scaled by 1 / (1 - p), p rounded down
to a multiple of 1/256. The LSE is that of the undropped softmax.

The state is two uint64 {seed, offset}; in torch it travels as a 2-element int64 CUDA tensor
(the same 16 bytes) that the kernels read when they run, so CUDA-graph replays use whatever
the generator last wrote there.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Tuple

from . import _C

__all__ = ["dropout_keep_mask", "keep_scale"]

_U64 = (1 << 64) - 1


def keep_scale(dropout_p: float) -> float:
    """1 / (1 - p) for the p the kernels use: p rounded down to a multiple of 1/256."""
    threshold = int(float(dropout_p) * 256.0) if dropout_p > 0 else 0
    return 256.0 / (256.0 - threshold)


def _as_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"flashjit: {what} must be an int; got {type(x).__name__}")
    return int(x)


def state_values(state: Any, where: str) -> Tuple[int, int]:
    """(seed, offset) as the kernels read them (uint64) from a 2-element int64 tensor / array
    (copied to the host: synchronises) or a (seed, offset) pair of ints. Negative int64 values
    are the same 8 bytes as uint64 (two's complement)."""
    if isinstance(state, (tuple, list)):
        values = list(state)
    elif hasattr(state, "tolist"):
        if str(getattr(state, "dtype", "")).rsplit(".", 1)[-1] not in ("int64", "uint64"):
            raise TypeError(f"{where}: dropout_state must be int64 (seed, offset); got dtype {state.dtype}")
        flat = state.reshape(-1) if hasattr(state, "reshape") else state
        values = flat.tolist()
    else:
        raise TypeError(f"{where}: dropout_state must be a 2-element int64 tensor or a (seed, offset) pair of ints; "
                        f"got {type(state).__name__}")
    if len(values) != 2:
        raise ValueError(f"{where}: dropout_state must have 2 elements (seed, offset); got {len(values)}")
    seed, offset = (_as_int(v, "dropout_state's elements") for v in values)
    for name, v in (("seed", seed), ("offset", offset)):
        if not -(1 << 63) <= v <= _U64:
            raise ValueError(f"{where}: dropout_state's {name} {v} does not fit in 64 bits")
    return seed & _U64, offset & _U64


def as_int64(x: int) -> int:
    """A uint64 as the int64 with the same bits (for a torch int64 tensor)."""
    x &= _U64
    return x - (1 << 64) if x >= (1 << 63) else x


@functools.lru_cache(maxsize=256)
def _mask_spec_json(heads_q: int, dropout_p: float) -> str:
    # The mask depends on heads_q (b · heads_q + h keys the counter), p and the state only.
    from .spec import Spec

    return Spec(dtype="bf16", head_dim=64, num_heads_q=heads_q, dropout_p=dropout_p).to_json()


def dropout_keep_mask(batch: int, heads_q: int, seqlen_q: int, seqlen_k: int, dropout_p: float,
                      dropout_state: Any) -> Any:
    """Which elements a call with dropout kept: a bool tensor (batch, heads_q, seqlen_q,
    seqlen_k), True = kept (scaled by 1 / (1 - p)), False = dropped; the attention mask applies
    on top. The role of FlashAttention-2's return_attn_probs, for debugging and tests.

    dropout_state: the call's RNG state, the 2-element int64 tensor attention() used (pass
    ``dropout_state=`` to attention() to choose it), or a (seed, offset) pair of ints.
    Computed on the host from the kernels' definition (one Philox call per element: meant for
    small problems; a tensor state is copied to the host, which synchronises).

    Returns a torch.bool tensor (on dropout_state's device when it is a torch tensor, else the
    CPU) when torch is installed, else a numpy bool array. dropout_p must satisfy
    0 < dropout_p < 1 (SpecError naming dropout_p otherwise).
    """
    sizes = tuple(_as_int(x, name) for x, name in ((batch, "batch"), (heads_q, "heads_q"), (seqlen_q, "seqlen_q"),
                                                   (seqlen_k, "seqlen_k")))
    seed, offset = state_values(dropout_state, "flashjit.dropout_keep_mask")
    raw = _C.dropout_keep_mask(_mask_spec_json(sizes[1], float(dropout_p)), sizes[0], sizes[2], sizes[3], seed, offset)
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            torch = None
    if torch is not None:
        mask = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(sizes).bool()
        if isinstance(dropout_state, torch.Tensor) and dropout_state.device.type != "cpu":
            mask = mask.to(dropout_state.device)
        return mask
    import numpy as np

    return np.frombuffer(raw, dtype=np.uint8).reshape(sizes).astype(bool)
