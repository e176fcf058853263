"""attention(): FlashAttention-style attention on CUDA tensors, compiled for the call's variant
on first use (NVRTC, then memory and disk caches). With torch tensors that require grad it is
differentiable: the backward runs flashjit's backward kernels (bwd_preprocess, bwd_dkdv,
bwd_dq_convert) for the same variant."""

from __future__ import annotations

import functools
import sys
from typing import Any, Optional, Tuple, Union

from . import _C
from .spec import Spec, Tile

__all__ = ["attention"]

_DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16"}


@functools.lru_cache(maxsize=4096)
def _spec_json(dtype: str, head_dim: int, head_dim_v: int, hq: int, hkv: int, mask: str,
               window: Optional[Tuple[int, int]], align: str, scale: Optional[float],
               return_lse: bool, tile: Optional[Tile], mask_expr: Optional[str] = None,
               score_mod: Optional[str] = None, captures: tuple = ()) -> str:
    spec = Spec(dtype=dtype, head_dim=head_dim, head_dim_v=head_dim_v, num_heads_q=hq,
                num_heads_kv=hkv, mask=mask, window=window, align=align, softmax_scale=scale,
                return_lse=return_lse, tile=tile, mask_expr=mask_expr, score_mod=score_mod,
                captures=captures)
    return spec.to_json()


@functools.lru_cache(maxsize=1024)
def _block_mask_spec_json(spec_json: str, block_q: int, block_kv: int, per_batch: bool, per_head: bool) -> str:
    return _C.with_block_mask(spec_json, block_q, block_kv, per_batch, per_head)


def _check_block_mask(bm: Any, q: Any, b: int, hq: int, nq: int, nk: int) -> None:
    cells = bm.cells
    nb, nh, nqb, nkb = (int(s) for s in cells.shape)
    bq, bk = bm.BLOCK_SIZE
    if str(cells.dtype) not in ("torch.int32", "int32"):
        raise TypeError(f"flashjit.attention: block_mask.cells must be int32; got {cells.dtype}")
    if getattr(cells, "device", None) is not None and getattr(q, "device", None) is not None and cells.device != q.device:
        raise ValueError(f"flashjit.attention: block_mask is on {cells.device} but q is on {q.device}")
    if nb not in (1, b):
        raise ValueError(f"flashjit.attention: block_mask has batch dim {nb}; expected 1 or q's batch {b}")
    if nh not in (1, hq):
        raise ValueError(f"flashjit.attention: block_mask has head dim {nh}; expected 1 or q's heads {hq}")
    if nqb * bq < nq or nkb * bk < nk:
        raise ValueError(
            f"flashjit.attention: block_mask covers seqlen_q {nqb * bq}, seqlen_k {nkb * bk} (built for "
            f"seq_lengths {bm.seq_lengths} in blocks {bm.BLOCK_SIZE}); this call has seqlen_q {nq}, seqlen_k {nk}")


def _mask_args(causal: bool, window: Any) -> Tuple[str, Optional[Tuple[int, int]]]:
    if window is None:
        return ("causal" if causal else "none"), None
    try:
        left, right = window
    except (TypeError, ValueError):
        raise TypeError(f"flashjit.attention: window must be a (left, right) pair; got {window!r}") from None
    left = -1 if left is None else left
    right = -1 if right is None else right
    if causal:
        if right not in (-1, 0):
            raise ValueError(
                f"flashjit.attention: window right={right} contradicts causal=True "
                "(causal means right=0); pass causal=False to look ahead")
        right = 0
    return "sliding_window", (left, right)


def _shape_str(t: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in t.shape) + ")"


def _check_shapes(q: Any, k: Any, v: Any) -> Tuple[int, int, int, int, int, int, int]:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if len(t.shape) != 4:
            raise ValueError(
                f"flashjit.attention: {name} must have 4 dimensions (batch, heads, seqlen, head_dim); "
                f"got shape {_shape_str(t)}")
    b, hq, nq, d = (int(s) for s in q.shape)
    bk, hkv, nk, dk = (int(s) for s in k.shape)
    bv, hv, nv, dv = (int(s) for s in v.shape)
    if bk != b or bv != b:
        raise ValueError(f"flashjit.attention: batch sizes differ: q {b}, k {bk}, v {bv}")
    if hv != hkv:
        raise ValueError(f"flashjit.attention: v has {hv} heads but k has {hkv}; they must match")
    if hkv == 0 or hq % hkv != 0:
        raise ValueError(
            f"flashjit.attention: k has {hkv} heads, which must divide q's {hq} heads (GQA/MQA)")
    if nv != nk:
        raise ValueError(f"flashjit.attention: v's seqlen {nv} differs from k's {nk}")
    if dk != d:
        raise ValueError(f"flashjit.attention: k's head_dim {dk} differs from q's {d}")
    return b, hq, hkv, nq, nk, d, dv


def _stream_of(x: Any) -> int:
    mod = type(x).__module__ or ""
    if mod.startswith("cupy"):
        import cupy  # type: ignore

        return int(cupy.cuda.get_current_stream().ptr)
    return 0


def _as_stream_int(stream: Any) -> int:
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    raise TypeError(f"flashjit.attention: stream must be an int (CUstream) or a stream object; "
                    f"got {type(stream).__name__}")


def attention(q: Any, k: Any, v: Any, *, causal: bool = False,
              window: Optional[Tuple[Optional[int], Optional[int]]] = None,
              scale: Optional[float] = None, return_lse: bool = False,
              align: str = "bottom_right", tile: Union[Tile, dict, None] = None,
              out: Any = None, lse_out: Any = None, stream: Any = None,
              mask_mod: Any = None, score_mod: Any = None, block_mask: Any = None) -> Any:
    """softmax(q kᵀ · scale + mask) v, differentiable in q, k and v (torch tensors).

    q: (batch, heads_q, seqlen_q, head_dim); k: (batch, heads_kv, seqlen_k, head_dim);
    v: (batch, heads_kv, seqlen_k, head_dim_v). fp16 or bf16 CUDA tensors whose last
    dimension is contiguous; other strides are free, so a (batch, seqlen, heads, dim)
    tensor passed as ``x.transpose(1, 2)`` works without a copy. heads_kv must divide
    heads_q (GQA/MQA).

    causal: query i sees key j iff j <= i (+ seqlen_k - seqlen_q with align='bottom_right').
    window: (left, right) sliding window around the aligned diagonal; None/-1 = unbounded
      side; with causal=True, right is 0.
    scale: softmax scale, default 1/sqrt(head_dim).
    return_lse: also return the float32 log-sum-exp (batch, heads_q, seqlen_q); rows that
      see no key get lse = -inf and output 0.
    align: 'bottom_right' (FlashAttention) or 'top_left' (torch SDPA's is_causal).
    tile: force a kernel configuration (Tile or dict); None = tuned/heuristic.
    out / lse_out: preallocated outputs (required for inputs that are not torch tensors).
    stream: CUDA stream (int or object with .cuda_stream); default torch's current stream.
    mask_mod: FlexAttention's mask_mod(b, h, q_idx, kv_idx) -> bool, traced into an
      expression (docs/expressions.md); tensors it indexes are passed to the kernel. One
      kernel serves every sequence length and every value of those tensors.
    score_mod: FlexAttention's score_mod(score, b, h, q_idx, kv_idx) -> score, likewise.
    block_mask: a flashjit.BlockMask (flashjit.create_block_mask) or a FlexAttention
      BlockMask, of any block size: keys of empty cells are hidden, of full cells visible,
      of partial cells as mask_mod says (default: the block mask's own mask_mod). Empty
      tiles are skipped, full ones run unmasked.

    When q, k or v require grad (and grad mode is on), the call is recorded for autograd:
    o.backward() runs flashjit's backward for the same variant (masks, mask_mod, block_mask,
    score_mod through its symbolic derivative, GQA). The returned lse carries no gradient.
    Tensors captured by mask_mod / score_mod do not get gradients yet.

    Returns o, or (o, lse) when return_lse.
    """
    torch = sys.modules.get("torch")
    is_torch = torch is not None and isinstance(q, torch.Tensor)
    q_in, k_in, v_in = q, k, v  # autograd's inputs (detached below for the launches)
    needs_grad = False
    if isinstance(tile, dict):
        tile = Tile.from_dict(tile)
    mask, win = _mask_args(causal, window)
    mask_text = score_text = None
    decls: tuple = ()
    cap_tensors: list = []
    bm = None
    if block_mask is not None:
        from .block_mask import as_block_mask

        bm = as_block_mask(block_mask)
        if mask_mod is None:
            mask_mod = bm.mask_mod
    if mask_mod is not None or score_mod is not None:
        from .variants import trace_variant

        mask_text, score_text, decls, cap_tensors = trace_variant(mask_mod, score_mod)
        if mask_text is not None:
            if mask != "none":
                raise ValueError("flashjit.attention: pass either mask_mod or causal/window, not both "
                                 "(write the causal part inside mask_mod: q_idx >= kv_idx)")
            mask = "custom"
    want_lse = bool(return_lse or lse_out is not None)

    if is_torch:
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"flashjit.attention: {name} must be a torch.Tensor like q; got {type(t).__name__}")
        needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        if needs_grad:
            if out is not None or lse_out is not None:
                raise ValueError("flashjit.attention: out= and lse_out= cannot be used when q, k or v require grad "
                                 "(autograd owns the outputs); drop them or call under torch.no_grad()")
            for t in cap_tensors:
                if getattr(t, "requires_grad", False):
                    raise NotImplementedError(
                        "flashjit.attention: gradients into tensors captured by score_mod / mask_mod are not "
                        "supported yet; detach them (q, k and v get their gradients)")
            want_lse = True  # the backward recomputes P from it
        q, k, v = q.detach(), k.detach(), v.detach()
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise TypeError(f"flashjit.attention: q has dtype {q.dtype}; supported: torch.float16, torch.bfloat16")
        for name, t in (("k", k), ("v", v)):
            if t.dtype != q.dtype:
                raise TypeError(f"flashjit.attention: {name} has dtype {t.dtype} but q has {q.dtype}; they must match")
        if q.device.type != "cuda":
            raise ValueError(f"flashjit.attention: q must be a CUDA tensor; got device {q.device}")
        for name, t in (("k", k), ("v", v)):
            if t.device != q.device:
                raise ValueError(f"flashjit.attention: {name} is on {t.device} but q is on {q.device}")
        b, hq, hkv, nq, nk, d, dv = _check_shapes(q, k, v)
        for name, t in (("q", q), ("k", k), ("v", v)):
            if t.stride(-1) != 1 and t.shape[-1] > 1:
                raise ValueError(
                    f"flashjit.attention: {name}'s last dimension must be contiguous (stride 1); got strides "
                    f"{tuple(t.stride())}; call .contiguous() on it")
        if out is None:
            out = torch.empty((b, hq, nq, dv), dtype=q.dtype, device=q.device)
        else:
            _check_out_torch(torch, out, q, (b, hq, nq, dv))
        if want_lse:
            if lse_out is None:
                lse_out = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
            else:
                _check_lse_torch(torch, lse_out, q, (b, hq, nq))
        dtype = "bf16" if q.dtype == torch.bfloat16 else "fp16"
    else:
        for name, t in (("q", q), ("k", k), ("v", v)):
            if not (hasattr(t, "__dlpack__") and hasattr(t, "shape") and hasattr(t, "dtype")):
                raise TypeError(
                    f"flashjit.attention: {name} must be a CUDA tensor (torch, or any DLPack producer); "
                    f"got {type(t).__name__}")
        dtype = _DTYPE_NAMES.get(str(q.dtype).rsplit(".", 1)[-1])
        if dtype is None:
            raise TypeError(f"flashjit.attention: q has dtype {q.dtype}; supported: float16, bfloat16")
        b, hq, hkv, nq, nk, d, dv = _check_shapes(q, k, v)
        if out is None or (want_lse and lse_out is None):
            raise ValueError(
                "flashjit.attention: for inputs that are not torch tensors pass out= (and lse_out= "
                "with return_lse=True): flashjit allocates only through torch")

    spec_json = _spec_json(dtype, d, dv, hq, hkv, mask, win, align,
                           None if scale is None else float(scale), want_lse, tile,
                           mask_text, score_text, decls)
    if bm is not None:
        _check_block_mask(bm, q, b, hq, nq, nk)
        spec_json = _block_mask_spec_json(spec_json, bm.BLOCK_SIZE[0], bm.BLOCK_SIZE[1],
                                          int(bm.cells.shape[0]) != 1, int(bm.cells.shape[1]) != 1)
        cap_tensors = list(cap_tensors) + [bm.cells]

    if is_torch and needs_grad:
        if stream is None:
            stream_int = torch.cuda.current_stream(q.device).cuda_stream
        else:
            stream_int = _as_stream_int(stream)
        out, lse_out = _autograd_function(torch).apply(q_in, k_in, v_in, spec_json, stream_int, *cap_tensors)
        return (out, lse_out) if return_lse else out

    if b == 0 or hq == 0 or nq == 0:
        pass  # nothing to compute
    elif nk == 0:  # no key at all: every row is fully masked
        out[...] = 0
        if want_lse:
            lse_out[...] = float("-inf")
    elif is_torch:
        if stream is None:
            stream_int = torch.cuda.current_stream(q.device).cuda_stream
        else:
            stream_int = _as_stream_int(stream)
        if q.device.index != torch.cuda.current_device():
            with torch.cuda.device(q.device):
                _C.forward(spec_json, q, k, v, out, lse_out if want_lse else None, stream_int, cap_tensors)
        else:
            _C.forward(spec_json, q, k, v, out, lse_out if want_lse else None, stream_int, cap_tensors)
    else:
        stream_int = _stream_of(q) if stream is None else _as_stream_int(stream)
        _C.forward(spec_json, q, k, v, out, lse_out if want_lse else None, stream_int, cap_tensors)

    return (out, lse_out) if return_lse else out


def _launch_forward(torch: Any, spec_json: str, q: Any, k: Any, v: Any, out: Any, lse: Any, stream_int: int,
                    caps: list) -> None:
    if q.device.index != torch.cuda.current_device():
        with torch.cuda.device(q.device):
            _C.forward(spec_json, q, k, v, out, lse, stream_int, caps)
    else:
        _C.forward(spec_json, q, k, v, out, lse, stream_int, caps)


_AUTOGRAD_FN = None


def _autograd_function(torch: Any) -> Any:
    """The torch.autograd.Function over flashjit's forward and backward (made on first use, so
    the module imports without torch). The LSE it returns is not differentiable (as in
    FlashAttention): it carries no gradient into q, k or v."""
    global _AUTOGRAD_FN
    if _AUTOGRAD_FN is not None:
        return _AUTOGRAD_FN

    class AttentionFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, spec_json: str, stream_int: int, *caps: Any) -> Any:
            q, k, v = q.detach(), k.detach(), v.detach()
            b, hq, nq = int(q.shape[0]), int(q.shape[1]), int(q.shape[2])
            nk, dv = int(k.shape[2]), int(v.shape[3])
            out = torch.empty((b, hq, nq, dv), dtype=q.dtype, device=q.device)
            lse = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
            if b and hq and nq:
                if nk == 0:
                    out.zero_()
                    lse.fill_(float("-inf"))
                else:
                    _launch_forward(torch, spec_json, q, k, v, out, lse, stream_int, list(caps))
            ctx.save_for_backward(q, k, v, out, lse, *caps)
            ctx.spec_json = spec_json
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        def backward(ctx: Any, dout: Any, _dlse: Any) -> Any:
            q, k, v, out, lse, *caps = ctx.saved_tensors
            dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            b, hq, nq, nk = int(q.shape[0]), int(q.shape[1]), int(q.shape[2]), int(k.shape[2])
            none = (None, None) + (None,) * len(caps)
            if not (b and hq and nq and nk) or dout is None:
                return (dq.zero_(), dk.zero_(), dv.zero_()) + none
            # The kernels read 16-byte aligned rows with a contiguous last dim.
            if dout.stride(-1) != 1 or any(st % 8 for st in dout.stride()[:-1]) or dout.data_ptr() % 16:
                dout = dout.contiguous()
            ws = torch.empty(_C.backward_workspace_bytes(ctx.spec_json, b, nq), dtype=torch.uint8, device=q.device)
            stream_int = torch.cuda.current_stream(q.device).cuda_stream
            with torch.cuda.device(q.device):
                _C.backward(ctx.spec_json, q, k, v, out, lse, dout, dq, dk, dv, stream_int, list(caps), ws)
            return (dq, dk, dv) + none

    _AUTOGRAD_FN = AttentionFunction
    return _AUTOGRAD_FN


def _check_out_torch(torch: Any, out: Any, q: Any, shape: Tuple[int, ...]) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"flashjit.attention: out must be a torch.Tensor; got {type(out).__name__}")
    if tuple(out.shape) != shape:
        raise ValueError(f"flashjit.attention: out has shape {_shape_str(out)}; expected {shape}")
    if out.dtype != q.dtype:
        raise TypeError(f"flashjit.attention: out has dtype {out.dtype}; expected {q.dtype} like q")
    if out.device != q.device:
        raise ValueError(f"flashjit.attention: out is on {out.device} but q is on {q.device}")
    if out.stride(-1) != 1 and out.shape[-1] > 1:
        raise ValueError("flashjit.attention: out's last dimension must be contiguous (stride 1)")


def _check_lse_torch(torch: Any, lse: Any, q: Any, shape: Tuple[int, ...]) -> None:
    if not isinstance(lse, torch.Tensor):
        raise TypeError(f"flashjit.attention: lse_out must be a torch.Tensor; got {type(lse).__name__}")
    if tuple(lse.shape) != shape:
        raise ValueError(f"flashjit.attention: lse_out has shape {_shape_str(lse)}; expected {shape}")
    if lse.dtype != torch.float32:
        raise TypeError(f"flashjit.attention: lse_out has dtype {lse.dtype}; expected torch.float32")
    if lse.device != q.device:
        raise ValueError(f"flashjit.attention: lse_out is on {lse.device} but q is on {q.device}")
    if not lse.is_contiguous():
        raise ValueError("flashjit.attention: lse_out must be contiguous")
