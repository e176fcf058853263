"""Block masks: which (query block, key block) cells of a mask hold visible keys.

    bm = flashjit.create_block_mask(mask_mod, B, H, Q_LEN, KV_LEN, device="cuda")
    o = flashjit.attention(q, k, v, block_mask=bm)        # mask_mod from bm
    o = flashjit.attention(q, k, v, block_mask=flex_bm)   # a FlexAttention BlockMask, as it is

A flashjit BlockMask holds one int32 per cell, ``cells[b, h, q_block, kv_block]``: 0 empty (no
key visible), 1 partial (mask_mod decides per element), 2 full (every key visible). Built on
the GPU by interval analysis of the traced mask_mod, element by element only inside cells the
analysis cannot decide: no dense B·H·Q·KV mask is ever formed, and memory is 4 bytes a cell.

With a block mask, attention() classifies its own tiles by reading the cells (one read per tile
when its tile lies inside a cell, whatever the two block sizes are), skips tiles of empty cells,
runs full cells without mask arithmetic and masks partial cells per element. See
docs/python.md.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Callable, Optional, Tuple, Union

from . import _C

__all__ = ["BlockMask", "create_block_mask"]

EMPTY, PARTIAL, FULL = 0, 1, 2


def _pair(block_size: Union[int, Tuple[int, int]], what: str = "BLOCK_SIZE") -> Tuple[int, int]:
    if isinstance(block_size, int):
        bq = bk = block_size
    else:
        try:
            bq, bk = block_size
        except (TypeError, ValueError):
            raise TypeError(f"flashjit: {what} must be an int or a (q, kv) pair; got {block_size!r}") from None
    for v in (bq, bk):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > (1 << 20):
            raise ValueError(f"flashjit: {what} must hold integers from 1 to 2^20; got {block_size!r}")
    return int(bq), int(bk)


def _is_noop(mask_mod: Any) -> bool:
    return mask_mod is None or getattr(mask_mod, "__name__", "") == "noop_mask"


class BlockMask:
    """Cells of a mask at BLOCK_SIZE = (q, kv): see the module's docstring.

    cells: int32 CUDA tensor [B or 1, H or 1, ceil(Q_LEN / q), ceil(KV_LEN / kv)].
    seq_lengths: (Q_LEN, KV_LEN) it was built for; mask_mod: the function partial cells apply
    (None: none, the cells alone decide)."""

    def __init__(self, cells: Any, BLOCK_SIZE: Union[int, Tuple[int, int]], seq_lengths: Tuple[int, int],
                 mask_mod: Optional[Callable[..., Any]] = None) -> None:
        self.cells = cells
        self.BLOCK_SIZE = _pair(BLOCK_SIZE)
        self.seq_lengths = (int(seq_lengths[0]), int(seq_lengths[1]))
        self.mask_mod = None if _is_noop(mask_mod) else mask_mod
        if len(cells.shape) != 4:
            raise ValueError(f"flashjit.BlockMask: cells must have 4 dims (B, H, q blocks, kv blocks); "
                             f"got shape {tuple(cells.shape)}")

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(int(s) for s in self.cells.shape)

    def density(self) -> float:
        """The fraction of cells that are not empty."""
        return float((self.cells != EMPTY).float().mean().item())

    def __repr__(self) -> str:
        return (f"flashjit.BlockMask(shape={self.shape}, BLOCK_SIZE={self.BLOCK_SIZE}, "
                f"seq_lengths={self.seq_lengths}, mask_mod={getattr(self.mask_mod, '__name__', None)})")

    @classmethod
    def from_flex(cls, bm: Any) -> "BlockMask":
        """A FlexAttention BlockMask as cells (torch ops on its device; once per BlockMask when
        attention() gets it: the result is remembered). Its block indices are checked."""
        torch = sys.modules["torch"]
        idx, num = bm.kv_indices, bm.kv_num_blocks
        nkb = int(idx.shape[-1])
        bq, bk = _pair(tuple(bm.BLOCK_SIZE))
        seq = tuple(getattr(bm, "seq_lengths", (idx.shape[-2] * bq, nkb * bk)))
        cells = torch.zeros(*idx.shape[:-1], nkb + 1, dtype=torch.int32, device=idx.device)
        for n, i, value, name in ((num, idx, PARTIAL, "kv"), (bm.full_kv_num_blocks, bm.full_kv_indices, FULL, "full_kv")):
            if n is None or i is None:
                continue
            valid = torch.arange(i.shape[-1], device=i.device) < n[..., None].to(torch.int64)
            bad = valid & ((i < 0) | (i >= nkb))
            if bool(bad.any().item()):
                raise ValueError(f"flashjit: block_mask.{name}_indices holds a block index outside "
                                 f"[0, {nkb}) within {name}_num_blocks")
            if bool(((n < 0) | (n > i.shape[-1])).any().item()):
                raise ValueError(f"flashjit: block_mask.{name}_num_blocks must lie in [0, {i.shape[-1]}]")
            target = torch.where(valid, i.to(torch.int64), nkb)  # unused entries go to a spare column
            cells.scatter_reduce_(-1, target, torch.full_like(target, value, dtype=torch.int32), reduce="amax")
        return cls(cells[..., :nkb].contiguous(), (bq, bk), (int(seq[0]), int(seq[1])), bm.mask_mod)

    def to_flex(self) -> Any:
        """This mask as a FlexAttention BlockMask (for flex_attention)."""
        torch = sys.modules["torch"]
        from torch.nn.attention.flex_attention import BlockMask as FlexBlockMask

        def lists(sel: Any) -> Tuple[Any, Any]:
            num = sel.sum(-1, dtype=torch.int32)
            order = torch.argsort((~sel).to(torch.int8), dim=-1, stable=True).to(torch.int32)
            return num.contiguous(), order.contiguous()

        pn, pi = lists(self.cells == PARTIAL)
        fn, fi = lists(self.cells == FULL)
        kwargs = dict(BLOCK_SIZE=self.BLOCK_SIZE, mask_mod=self.mask_mod)
        try:
            return FlexBlockMask.from_kv_blocks(pn, pi, fn, fi, seq_lengths=self.seq_lengths, **kwargs)
        except TypeError:  # torch versions without seq_lengths
            return FlexBlockMask.from_kv_blocks(pn, pi, fn, fi, **kwargs)


def create_block_mask(mask_mod: Optional[Callable[..., Any]], B: Optional[int], H: Optional[int], Q_LEN: int,
                      KV_LEN: int, device: Any = "cuda", BLOCK_SIZE: Union[int, Tuple[int, int]] = 128,
                      stream: Any = None) -> BlockMask:
    """FlexAttention's create_block_mask, on the GPU without a dense mask. B / H None: one mask
    for every batch / head (evaluated at b = 0 / h = 0). mask_mod None: every cell full."""
    torch = sys.modules.get("torch")
    if torch is None:
        import torch  # noqa: F401  (create_block_mask allocates its cells through torch)
        torch = sys.modules["torch"]
    bq, bk = _pair(BLOCK_SIZE)
    nb = 1 if B is None else int(B)
    nh = 1 if H is None else int(H)
    for name, v in (("B", nb), ("H", nh), ("Q_LEN", Q_LEN), ("KV_LEN", KV_LEN)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"flashjit.create_block_mask: {name} must be a positive int; got {v!r}")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"flashjit.create_block_mask: device must be a CUDA device; got {dev}")
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    cells = torch.empty((nb, nh, -(-Q_LEN // bq), -(-KV_LEN // bk)), dtype=torch.int32, device=dev)
    if _is_noop(mask_mod):
        cells.fill_(FULL)
        return BlockMask(cells, (bq, bk), (Q_LEN, KV_LEN), None)
    from .spec import Spec
    from .variants import trace_variant

    text, _, decls, tensors = trace_variant(mask_mod, None)
    spec_json = Spec(dtype="bf16", head_dim=64, mask="custom", mask_expr=text, captures=decls).to_json()
    if stream is None:
        stream = torch.cuda.current_stream(dev).cuda_stream
    with torch.cuda.device(dev):
        _C.build_block_mask(spec_json, nb, nh, Q_LEN, KV_LEN, bq, bk, cells, int(stream), list(tensors))
    return BlockMask(cells, (bq, bk), (Q_LEN, KV_LEN), mask_mod)


# FlexAttention BlockMasks seen by attention(), converted once each.
_FROM_FLEX: "weakref.WeakKeyDictionary[Any, BlockMask]" = weakref.WeakKeyDictionary()


def as_block_mask(bm: Any) -> BlockMask:
    """A flashjit BlockMask, or a FlexAttention one converted (and remembered)."""
    if isinstance(bm, BlockMask):
        return bm
    if not (hasattr(bm, "kv_indices") and hasattr(bm, "kv_num_blocks") and hasattr(bm, "BLOCK_SIZE")):
        raise TypeError(f"flashjit.attention: block_mask must be a flashjit.BlockMask or a FlexAttention "
                        f"BlockMask; got {type(bm).__name__}")
    try:
        hit = _FROM_FLEX.get(bm)
    except TypeError:  # not weakly referenceable
        return BlockMask.from_flex(bm)
    if hit is None:
        hit = BlockMask.from_flex(bm)
        _FROM_FLEX[bm] = hit
    return hit
