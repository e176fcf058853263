"""flashjit's attention as torch custom operators (torch.library), so that torch.compile,
AOTAutograd and CUDA graphs see it as one opaque op with a fake (meta) implementation and an
autograd formula:

    flashjit::attention_fwd(Tensor q, Tensor k, Tensor v, str spec_json, Tensor[] captures,
        bool deterministic=False, Tensor? dropout_state=None) -> (Tensor out, Tensor lse)
    flashjit::attention_bwd(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
        str spec_json, Tensor[] captures, bool deterministic=False, int[] capture_grad_index=[],
        Tensor? dropout_state=None) -> (Tensor dq, Tensor dk, Tensor dv, Tensor[] dcaptures)

``spec_json`` is the variant (docs/spec.md, as attention() builds it: dtype, head dims, heads,
mask, expressions, capture declarations, block mask); ``captures`` the tensors its
expressions read, in the order of its declarations (a block mask's cells last). ``out`` has
q's dtype and shape (b, hq, nq, dv); ``lse`` is float32 (b, hq, nq) when the spec has
``return_lse``, else an empty (0,) tensor. ``lse`` is not differentiable. Every output is a
fresh tensor; nothing is mutated. ``dcaptures[i]`` is the float32 gradient of
``captures[capture_grad_index[i]]`` (a learnable bias read by score_mod; fp32 atomics, so not
bit-identical run to run). ``deterministic`` is the backward's (bit-identical dQ, dK,
dV run to run: the bwd_dq kernel instead of atomics); the forward only hands it on.
``dropout_state`` is the RNG state of a spec with ``dropout_p > 0`` (required then, ignored
otherwise): a contiguous int64 CUDA tensor of 2 elements, {seed, offset}, on q's device, which
the kernels read when they run (so a CUDA graph's replays use what was last written there).
The forward's autograd formula saves it and hands it to attention_bwd, whose kernels
regenerate the forward's mask from it. It is an input, never mutated.

The CUDA implementations launch on torch's current stream of q's device. The first call of
a spec compiles its kernels (NVRTC, or a cache hit); later calls, CUDA-graph captures
included, only launch.

Made on first use (``ops(torch)``), so that flashjit imports without torch.
"""

import functools
import json
import threading
import types
from typing import Any

from . import _C

__all__ = ["ops"]

FWD_SCHEMA = ("(Tensor q, Tensor k, Tensor v, str spec_json, Tensor[] captures, bool deterministic=False, "
              "Tensor? dropout_state=None) -> (Tensor, Tensor)")
BWD_SCHEMA = ("(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, str spec_json, "
              "Tensor[] captures, bool deterministic=False, int[] capture_grad_index=[], "
              "Tensor? dropout_state=None) -> (Tensor, Tensor, Tensor, Tensor[])")

_OPS = None
_LOCK = threading.Lock()


def ops(torch: Any) -> Any:
    """The namespace of flashjit's custom ops: ``attention_fwd`` and ``attention_bwd`` (the
    OpOverloads, callable like functions), defined on the first call."""
    global _OPS
    if _OPS is not None:
        return _OPS
    with _LOCK:
        if _OPS is None:
            _OPS = _define(torch)
    return _OPS


@functools.lru_cache(maxsize=1024)
def _grad_captures(spec_json: str) -> frozenset:
    return frozenset(_C.score_grad_captures(spec_json))


@functools.lru_cache(maxsize=1024)
def _returns_lse(spec_json: str) -> bool:
    return bool(json.loads(spec_json).get("return_lse", False))


@functools.lru_cache(maxsize=1024)
def _has_dropout(spec_json: str) -> bool:
    return float(json.loads(spec_json).get("dropout_p", 0.0)) > 0.0


def check_dropout_state(torch: Any, state: Any, q: Any, where: str) -> None:
    """A dropout RNG state as the kernels read it: 2 contiguous int64 on q's CUDA device."""
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{where}: dropout_state must be a torch.Tensor (int64, 2 elements); "
                        f"got {type(state).__name__}")
    if state.dtype != torch.int64 or state.numel() != 2:
        raise ValueError(f"{where}: dropout_state must be an int64 tensor of 2 elements (seed, offset); got "
                         f"{state.dtype} of shape {tuple(state.shape)}")
    if state.device != q.device:
        raise ValueError(f"{where}: dropout_state is on {state.device} but q is on {q.device}")
    if not state.is_contiguous():
        raise ValueError(f"{where}: dropout_state must be contiguous (the kernels read 2 adjacent int64)")


def _dropout_ptr(torch: Any, spec_json: str, state: Any, q: Any, op: str) -> int:
    """The device address the kernels read the RNG state from (0 without dropout)."""
    if not _has_dropout(spec_json):
        return 0
    if state is None:
        raise ValueError(f"flashjit::{op}: the spec has dropout_p > 0, so dropout_state (the RNG state, an int64 "
                         "CUDA tensor of 2 elements) is required")
    check_dropout_state(torch, state, q, f"flashjit::{op}")
    return int(state.data_ptr())


def _define(torch: Any) -> Any:
    lib = "flashjit"
    existing = getattr(torch.ops, lib, None)
    if existing is not None and hasattr(existing, "attention_fwd") and hasattr(existing, "attention_bwd"):
        # Defined already (a second copy of this module, e.g. after importlib.reload).
        return types.SimpleNamespace(attention_fwd=existing.attention_fwd.default,
                                     attention_bwd=existing.attention_bwd.default)

    def fwd_shapes(q: Any, k: Any, v: Any, spec_json: str) -> tuple:
        b, hq, nq = q.shape[0], q.shape[1], q.shape[2]
        lse_shape = (b, hq, nq) if _returns_lse(spec_json) else (0,)
        return (b, hq, nq, v.shape[3]), lse_shape

    def attention_fwd(q: Any, k: Any, v: Any, spec_json: str, captures: Any, deterministic: bool = False,
                      dropout_state: Any = None) -> Any:
        out_shape, lse_shape = fwd_shapes(q, k, v, spec_json)
        out = torch.empty(out_shape, dtype=q.dtype, device=q.device)
        lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
        state = _dropout_ptr(torch, spec_json, dropout_state, q, "attention_fwd")
        b, hq, nq, nk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        if b == 0 or hq == 0 or nq == 0:
            return out, lse  # nothing to compute
        if nk == 0:  # no key at all: every row is fully masked
            out.zero_()
            lse.fill_(float("-inf"))
            return out, lse
        lse_arg = lse if lse.numel() else None
        stream = torch.cuda.current_stream(q.device).cuda_stream
        if q.device.index != torch.cuda.current_device():
            with torch.cuda.device(q.device):
                _C.forward(spec_json, q, k, v, out, lse_arg, stream, list(captures), dropout_state=state)
        else:
            _C.forward(spec_json, q, k, v, out, lse_arg, stream, list(captures), dropout_state=state)
        return out, lse

    def attention_fwd_fake(q: Any, k: Any, v: Any, spec_json: str, captures: Any, deterministic: bool = False,
                           dropout_state: Any = None) -> Any:
        out_shape, lse_shape = fwd_shapes(q, k, v, spec_json)
        return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=torch.float32)

    def capture_grad_buffers(captures: Any, capture_grad_index: Any, like: Any) -> list:
        return [like.new_empty(tuple(captures[i].shape), dtype=torch.float32) for i in capture_grad_index]

    def attention_bwd(dout: Any, q: Any, k: Any, v: Any, out: Any, lse: Any, spec_json: str,
                      captures: Any, deterministic: bool = False, capture_grad_index: Any = (),
                      dropout_state: Any = None) -> Any:
        state = _dropout_ptr(torch, spec_json, dropout_state, q, "attention_bwd")
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dcaps = capture_grad_buffers(captures, capture_grad_index, q)
        b, hq, nq, nk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        if not (b and hq and nq and nk):
            return dq.zero_(), dk.zero_(), dv.zero_(), [g.zero_() for g in dcaps]
        if lse.dim() != 3:
            raise ValueError("flashjit::attention_bwd: lse must be the forward's (batch, heads_q, seqlen_q) "
                             "log-sum-exp; the forward's spec needs return_lse")
        # The kernels read 16-byte aligned rows with a contiguous last dim.
        if dout.stride(-1) != 1 or any(st % 8 for st in dout.stride()[:-1]) or dout.data_ptr() % 16:
            dout = dout.contiguous()
        ws = torch.empty(_C.backward_workspace_bytes(spec_json, b, nq), dtype=torch.uint8, device=q.device)
        stream = torch.cuda.current_stream(q.device).cuda_stream
        with torch.cuda.device(q.device):
            _C.backward(spec_json, q, k, v, out, lse, dout, dq, dk, dv, stream, list(captures), ws,
                        deterministic=bool(deterministic), capture_grad_index=[int(i) for i in capture_grad_index],
                        capture_grads=dcaps, dropout_state=state)
        return dq, dk, dv, dcaps

    def attention_bwd_fake(dout: Any, q: Any, k: Any, v: Any, out: Any, lse: Any, spec_json: str,
                           captures: Any, deterministic: bool = False, capture_grad_index: Any = (),
                           dropout_state: Any = None) -> Any:
        return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v),
                capture_grad_buffers(captures, capture_grad_index, q))

    fwd = torch.library.custom_op(f"{lib}::attention_fwd", attention_fwd, mutates_args=(),
                                  device_types="cuda", schema=FWD_SCHEMA)
    fwd.register_fake(attention_fwd_fake)
    bwd = torch.library.custom_op(f"{lib}::attention_bwd", attention_bwd, mutates_args=(),
                                  device_types="cuda", schema=BWD_SCHEMA)
    bwd.register_fake(attention_bwd_fake)
    bwd_op = torch.ops.flashjit.attention_bwd.default

    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        q, k, v, spec_json, captures = inputs[:5]
        ctx.deterministic = bool(inputs[5]) if len(inputs) > 5 else False
        state = inputs[6] if len(inputs) > 6 else None
        out, lse = output
        # The dropout RNG state is saved like the tensors: the backward regenerates the
        # forward's mask from the same {seed, offset} (and autograd refuses a backward after
        # the state was modified in place, as for q, k, v).
        ctx.has_dropout_state = state is not None
        ctx.save_for_backward(q, k, v, out, lse, *captures, *((state,) if state is not None else ()))
        ctx.spec_json = spec_json
        ctx.num_captures = len(captures)
        ctx.mark_non_differentiable(lse)

    def backward(ctx: Any, dout: Any, _dlse: Any) -> Any:
        q, k, v, out, lse, *captures = ctx.saved_tensors
        state = captures.pop() if ctx.has_dropout_state else None
        if lse.dim() != 3:
            raise RuntimeError("flashjit::attention_fwd: this call's spec has no return_lse, so it cannot be "
                               "differentiated (flashjit.attention sets it when q, k or v require grad)")
        if dout is None:
            dout = torch.zeros_like(out)
        # Captures that require grad and that the score_mod reads differentiably get one (the
        # others, e.g. a mask's document ids, are piecewise constant in the loss: None).
        needs = ctx.needs_input_grad[4] if len(ctx.needs_input_grad) > 4 else []
        wanted = _grad_captures(ctx.spec_json)
        index = [i for i, need in enumerate(needs) if need and i in wanted]
        dq, dk, dv, dcaps = bwd_op(dout, q, k, v, out, lse, ctx.spec_json, captures, ctx.deterministic, index, state)
        cap_grads = [None] * ctx.num_captures
        for i, g in zip(index, dcaps):
            cap_grads[i] = g.to(captures[i].dtype)
        # One gradient per argument the call passed: inputs above has the schema's defaults
        # filled in, needs_input_grad has what the caller gave (deterministic, dropout_state may
        # be absent; dropout_state, an int64 tensor, gets None).
        return (dq, dk, dv, None, cap_grads) + (None,) * (len(ctx.needs_input_grad) - 5)

    fwd.register_autograd(backward, setup_context=setup_context)
    return types.SimpleNamespace(attention_fwd=torch.ops.flashjit.attention_fwd.default, attention_bwd=bwd_op)
