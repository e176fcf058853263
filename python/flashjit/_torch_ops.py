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

Eager calls do not go through these ops (flashjit.attention calls ``launch_forward`` itself,
and ``eager_function(torch)``, a torch.autograd.Function with the same formula, when autograd
records the call): a custom op's first call imports torch._dynamo (seconds), and each call
costs more in dispatch than the launch. torch.compile, AOTAutograd, FakeTensorMode and
functorch transforms get the ops.
"""

import functools
import json
import threading
import types
from typing import Any, Optional

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


_TORCH_DTYPE_NAMES: dict = {}


def _dtype_name(dtype: Any) -> str:
    name = _TORCH_DTYPE_NAMES.get(dtype)
    if name is None:
        name = _TORCH_DTYPE_NAMES[dtype] = str(dtype).rsplit(".", 1)[-1]
    return name


def _current_stream(torch: Any, index: int) -> int:
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return int(raw(index))
    return int(torch.cuda.current_stream(index).cuda_stream)


def _raw_captures(torch: Any, captures: Any, q: Any) -> list:
    """The captured tensors as _C.forward_torch takes them: (address, dtype, sizes, strides)."""
    raw = []
    for i, t in enumerate(captures):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"flashjit.attention: captured tensor {i} must be a torch.Tensor like q; "
                            f"got {type(t).__name__}")
        if t.device != q.device:
            raise ValueError(f"flashjit.attention: captured tensor {i} is on {t.device} but q is on {q.device}; "
                             "all tensors must be on one device")
        raw.append((t.data_ptr(), _dtype_name(t.dtype), tuple(t.shape), t.stride()))
    return raw


def launch_forward(torch: Any, q: Any, k: Any, v: Any, spec_json: str, captures: Any, dropout_state: Any = None,
                   want_lse: Optional[bool] = None, placeholder: bool = True) -> Any:
    """attention_fwd's computation, (out, lse), for real CUDA tensors on q's device: fresh
    outputs and one _C.forward_torch on torch's current stream (tensors as addresses, sizes and
    strides: no DLPack export). want_lse: whether the spec returns the LSE (None: read it from
    spec_json); without it lse is an empty (0,) tensor, or None when not ``placeholder``."""
    if want_lse is None:
        want_lse = _returns_lse(spec_json)
    b, hq, nq, nk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    out = torch.empty((b, hq, nq, v.shape[3]), dtype=q.dtype, device=q.device)
    lse = None
    if want_lse or placeholder:
        lse = torch.empty((b, hq, nq) if want_lse else (0,), dtype=torch.float32, device=q.device)
    state = _dropout_ptr(torch, spec_json, dropout_state, q, "attention_fwd")
    if b == 0 or hq == 0 or nq == 0:
        return out, lse  # nothing to compute
    if nk == 0:  # no key at all: every row is fully masked
        out.zero_()
        if lse is not None:
            lse.fill_(float("-inf"))
        return out, lse
    index = q.device.index
    _C.forward_torch(spec_json, index, _dtype_name(q.dtype), q.data_ptr(), q.shape, q.stride(), k.data_ptr(),
                     k.shape, k.stride(), v.data_ptr(), v.shape, v.stride(), out.data_ptr(),
                     lse.data_ptr() if want_lse else 0, _current_stream(torch, index),
                     _raw_captures(torch, captures, q) if captures else [], 0, 0, state)
    return out, lse


def launch_backward(torch: Any, dout: Any, q: Any, k: Any, v: Any, out: Any, lse: Any, spec_json: str,
                    captures: Any, deterministic: bool = False, capture_grad_index: Any = (),
                    dropout_state: Any = None) -> Any:
    """attention_bwd's computation: (dq, dk, dv, [float32 gradients of the indexed captures])."""
    state = _dropout_ptr(torch, spec_json, dropout_state, q, "attention_bwd")
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dcaps = [q.new_empty(tuple(captures[i].shape), dtype=torch.float32) for i in capture_grad_index]
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
    stream = _current_stream(torch, q.device.index)
    with torch.cuda.device(q.device):
        _C.backward(spec_json, q, k, v, out, lse, dout, dq, dk, dv, stream, list(captures), ws,
                    deterministic=bool(deterministic), capture_grad_index=[int(i) for i in capture_grad_index],
                    capture_grads=dcaps, dropout_state=state)
    return dq, dk, dv, dcaps


def _grads(torch: Any, bwd: Any, saved: Any, spec_json: str, num_captures: int, has_state: bool,
           deterministic: bool, dout: Any, capture_needs: Any) -> Any:
    """The autograd formula shared by the op's and the eager Function's backward: (dq, dk, dv,
    [gradient or None per capture]). bwd: attention_bwd (the op, or launch_backward)."""
    q, k, v, out, lse, *captures = saved
    state = captures.pop() if has_state else None
    if lse.dim() != 3:
        raise RuntimeError("flashjit::attention_fwd: this call's spec has no return_lse, so it cannot be "
                           "differentiated (flashjit.attention sets it when q, k or v require grad)")
    if dout is None:
        dout = torch.zeros_like(out)
    # Captures that require grad and that the score_mod reads differentiably get one (the
    # others, e.g. a mask's document ids, are piecewise constant in the loss: None).
    wanted = _grad_captures(spec_json)
    index = [i for i, need in enumerate(capture_needs) if need and i in wanted]
    dq, dk, dv, dcaps = bwd(dout, q, k, v, out, lse, spec_json, captures, deterministic, index, state)
    cap_grads = [None] * num_captures
    for i, g in zip(index, dcaps):
        cap_grads[i] = g.to(captures[i].dtype)
    return dq, dk, dv, cap_grads


_EAGER = None


def eager_function(torch: Any) -> Any:
    """A torch.autograd.Function with attention_fwd's autograd formula for eager calls:
    ``eager_function(torch).apply(q, k, v, spec_json, deterministic, dropout_state, *captures)``
    -> (out, lse); lse is not differentiable."""
    global _EAGER
    if _EAGER is not None:
        return _EAGER

    class EagerAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, spec_json: str, deterministic: bool, state: Any,
                    *captures: Any) -> Any:
            out, lse = launch_forward(torch, q, k, v, spec_json, captures, state)
            ctx.save_for_backward(q, k, v, out, lse, *captures, *((state,) if state is not None else ()))
            ctx.spec_json, ctx.deterministic = spec_json, bool(deterministic)
            ctx.num_captures, ctx.has_state = len(captures), state is not None
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        def backward(ctx: Any, dout: Any, _dlse: Any) -> Any:
            bwd = functools.partial(launch_backward, torch)
            dq, dk, dv, cap_grads = _grads(torch, bwd, ctx.saved_tensors, ctx.spec_json, ctx.num_captures,
                                           ctx.has_state, ctx.deterministic, dout, ctx.needs_input_grad[6:])
            return (dq, dk, dv, None, None, None, *cap_grads)

    _EAGER = EagerAttention
    return _EAGER


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
        if q.device.index != torch.cuda.current_device():
            with torch.cuda.device(q.device):
                return launch_forward(torch, q, k, v, spec_json, captures, dropout_state)
        return launch_forward(torch, q, k, v, spec_json, captures, dropout_state)

    def attention_fwd_fake(q: Any, k: Any, v: Any, spec_json: str, captures: Any, deterministic: bool = False,
                           dropout_state: Any = None) -> Any:
        out_shape, lse_shape = fwd_shapes(q, k, v, spec_json)
        return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=torch.float32)

    def attention_bwd(dout: Any, q: Any, k: Any, v: Any, out: Any, lse: Any, spec_json: str,
                      captures: Any, deterministic: bool = False, capture_grad_index: Any = (),
                      dropout_state: Any = None) -> Any:
        return launch_backward(torch, dout, q, k, v, out, lse, spec_json, captures, deterministic,
                               capture_grad_index, dropout_state)

    def attention_bwd_fake(dout: Any, q: Any, k: Any, v: Any, out: Any, lse: Any, spec_json: str,
                           captures: Any, deterministic: bool = False, capture_grad_index: Any = (),
                           dropout_state: Any = None) -> Any:
        return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v),
                [q.new_empty(tuple(captures[i].shape), dtype=torch.float32) for i in capture_grad_index])

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
        needs = ctx.needs_input_grad[4] if len(ctx.needs_input_grad) > 4 else []
        dq, dk, dv, cap_grads = _grads(torch, bwd_op, ctx.saved_tensors, ctx.spec_json, ctx.num_captures,
                                       ctx.has_dropout_state, ctx.deterministic, dout, needs)
        # One gradient per argument the call passed: inputs above has the schema's defaults
        # filled in, needs_input_grad has what the caller gave (deterministic, dropout_state may
        # be absent; dropout_state, an int64 tensor, gets None).
        return (dq, dk, dv, None, cap_grads) + (None,) * (len(ctx.needs_input_grad) - 5)

    fwd.register_autograd(backward, setup_context=setup_context)
    return types.SimpleNamespace(attention_fwd=torch.ops.flashjit.attention_fwd.default, attention_bwd=bwd_op)
