"""attention(): FlashAttention-style attention on CUDA tensors, compiled for the call's variant
on first use (NVRTC, then memory and disk caches). With torch tensors that require grad it is
differentiable: the backward runs flashjit's backward kernels (bwd_preprocess, bwd_dkdv,
bwd_dq_convert) for the same variant. Torch calls go through the custom ops of _torch_ops.py,
so they also work under torch.compile and in CUDA-graph captures. dropout_p > 0 draws the
call's RNG state from torch's generator as a 2-element int64 CUDA tensor (_dropout.py)."""

from __future__ import annotations

import functools
import math
import sys
import types
from typing import Any, Optional, Tuple, Union

from . import _C, _torch_ops
from ._dropout import as_int64, state_values
from .block_mask import as_block_mask
from .spec import Spec, Tile

__all__ = ["attention"]

_DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16"}


@functools.lru_cache(maxsize=4096)
def _spec_json(dtype: str, head_dim: int, head_dim_v: int, hq: int, hkv: int, mask: str,
               window: Optional[Tuple[int, int]], align: str, scale: Optional[float],
               return_lse: bool, tile: Optional[Tile], mask_expr: Optional[str] = None,
               score_mod: Optional[str] = None, captures: tuple = (), dropout_p: float = 0.0) -> str:
    spec = Spec(dtype=dtype, head_dim=head_dim, head_dim_v=head_dim_v, num_heads_q=hq,
                num_heads_kv=hkv, mask=mask, window=window, align=align, softmax_scale=scale,
                return_lse=return_lse, tile=tile, mask_expr=mask_expr, score_mod=score_mod,
                captures=captures, dropout_p=dropout_p)
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


def _compiling(torch: Any) -> bool:
    """True while torch.compile (Dynamo) traces the call."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _static(torch: Any, x: Any, compiling: bool) -> Any:
    """``x`` as a Python constant. Eagerly it is one already; under torch.compile a symbolic
    int, float or bool (a size Dynamo made dynamic, a float argument of the compiled function)
    becomes its value in this trace, which Dynamo guards on (and traces again when it
    changes)."""
    if not compiling or x is None or isinstance(x, str) or callable(x):
        return x
    return torch.fx.experimental.symbolic_shapes.guard_scalar(x)


_PARTIAL, _TENSOR = "flashjit.partial", "flashjit.tensor"


def _form(torch: Any, fn: Any, compiling: bool) -> Any:
    """mask_mod / score_mod as Dynamo can hand it to _plan and _scope_deps as a constant (under
    torch.compile; traced): a plain function as it is, a functools.partial as (func, args,
    keywords) with each tensor argument replaced by its dtype and rank, so that a partial made
    inside the compiled function over one of its tensors works. Other callables (bound
    methods, objects with __call__) have state Dynamo cannot pass: refused with a hint."""
    if not compiling or fn is None or isinstance(fn, (str, types.FunctionType)):
        return fn
    if isinstance(fn, functools.partial):
        def arg(a: Any) -> Any:
            if isinstance(a, torch.Tensor):
                return (_TENSOR, a.dtype, a.ndim)
            return _static(torch, a, compiling)

        return (_PARTIAL, _form(torch, fn.func, compiling), tuple(arg(a) for a in fn.args),
                tuple((n, arg(a)) for n, a in fn.keywords.items()))
    raise TypeError("flashjit.attention: under torch.compile, mask_mod and score_mod must be functions (or "
                    "functools.partial of a function); write a method or callable object as a function that "
                    "closes over the tensors it reads")


class _TensorStub:
    """Stands for a tensor argument of a partial while _plan traces it under torch.compile (the
    trace needs only the dtype and rank; the tensor itself reaches the op as a graph input)."""

    def __init__(self, dtype: Any, rank: int) -> None:
        self.dtype, self.ndim, self.shape = dtype, rank, (0,) * rank

    def dim(self) -> int:
        return self.ndim

    def __getitem__(self, index: Any) -> Any:
        from .expr_trace import _read

        return _read(self, index)


def _rebuild(form: Any) -> Any:
    """The function a _form stands for (tensor arguments as _TensorStub)."""
    if not (isinstance(form, tuple) and form[:1] == (_PARTIAL,)):
        return form

    def arg(a: Any) -> Any:
        return _TensorStub(a[1], a[2]) if isinstance(a, tuple) and a[:1] == (_TENSOR,) else a

    _, func, args, keywords = form
    return functools.partial(_rebuild(func), *(arg(a) for a in args), **{n: arg(a) for n, a in keywords})


def _tile_key(tile: Any) -> Any:
    if isinstance(tile, Tile):  # a frozen dataclass, which Dynamo cannot pass as a constant
        return ("tile", tile.block_m, tile.block_n, tile.warps, tile.stages, tile.mma)
    return tile


def _plan(dtype: str, d: int, dv: int, hq: int, hkv: int, mask: str, win: Optional[Tuple[int, int]], align: str,
          scale: Any, want_lse: bool, tile: Any, mask_mod: Any, score_mod: Any, block: Optional[tuple],
          compiling: bool, deps: tuple = (), dropout_p: float = 0.0, exprs: Optional[tuple] = None) -> Tuple[str, Any]:
    """The static part of a call: the spec JSON (traced mask_mod / score_mod, block mask) and
    the tensors its expressions read, in the order of the spec's capture declarations.

    Depends only on static metadata and the variant functions, so under torch.compile it runs
    once per trace as real Python (marked as a constant result for Dynamo: it calls
    lru-cached functions and nanobind, and traces the user's functions with symbolic
    stand-ins). There it returns, instead of the tensors, the paths that reach them from
    (mask_mod, score_mod), which attention() follows in the traced code so that they become
    graph inputs; and it defines flashjit's custom ops before the trace reaches them.
    ``deps`` are the values the functions' trace depends on (_scope_deps), read in the traced
    code only so that Dynamo guards on them; the trace itself reads them from the functions.
    ``dropout_p`` (a float, 0 = none) goes into the spec; the RNG state does not (a tensor).
    ``exprs``: (mask_text, score_text, capture declarations) written by a caller that builds
    the expression text itself (the drop-in entry points of _dropin.py); its tensors are the
    caller's to pass, so none are returned."""
    if isinstance(tile, tuple) and tile[:1] == ("tile",):
        tile = Tile(*tile[1:])
    elif isinstance(tile, dict):
        tile = Tile.from_dict(tile)
    mask_mod, score_mod = _rebuild(mask_mod), _rebuild(score_mod)
    mask_text = score_text = None
    decls: tuple = ()
    tensors: list = []
    if exprs is not None:
        mask_text, score_text, decls = exprs
    elif mask_mod is not None or score_mod is not None:
        from .variants import trace_variant

        mask_text, score_text, decls, tensors = trace_variant(mask_mod, score_mod)
    if mask_text is not None or score_text is not None:
        if mask_text is not None:
            if mask != "none":
                raise ValueError("flashjit.attention: pass either mask_mod or causal/window, not both "
                                 "(write the causal part inside mask_mod: q_idx >= kv_idx)")
            mask = "custom"
    spec_json = _spec_json(dtype, d, dv, hq, hkv, mask, win, align, None if scale is None else float(scale),
                           want_lse, tile, mask_text, score_text, decls, dropout_p)
    if block is not None:
        spec_json = _block_mask_spec_json(spec_json, *block)
    if not compiling:
        return spec_json, tensors
    from ._torch_ops import ops

    ops(sys.modules["torch"])  # defined before the trace reaches torch.ops.flashjit
    if exprs is not None:
        return spec_json, ()
    return spec_json, tuple(_capture_path((mask_mod, score_mod), t, c[0]) for t, c in zip(tensors, decls))


def _scope_deps(mask_mod: Any, score_mod: Any) -> tuple:
    """Paths (see _capture_path) to the values a trace of mask_mod / score_mod may bake into
    the expression: numbers, strings and functions in their closures, the globals they name,
    functools.partial arguments, a bound method's object's plain attributes, recursively.
    Dynamo guards a function argument by its code only; attention() reads these values in the
    traced code so that a closure with other constants (masks.sliding_window(64) after
    masks.sliding_window(128)) compiles again instead of reusing the first expression."""
    out: list = []
    todo = [(i, (), r) for i, r in enumerate((_rebuild(mask_mod), _rebuild(score_mod))) if callable(r)]
    seen = set()
    while todo and len(seen) < _PATH_NODES and len(out) < _MAX_DEPS:
        i, steps, obj = todo.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for step, child in _children(obj, scalars_only=not isinstance(obj, _SCOPE_TYPES)):
            path = (i, steps + (step,))
            if isinstance(child, _SCALARS):
                out.append(path)
            elif isinstance(child, _SCOPE_TYPES) and len(path[1]) < _PATH_DEPTH:
                if isinstance(child, (types.FunctionType, functools.partial)):
                    out.append(path)  # which function: Dynamo guards it by identity of its code
                todo.append((i, path[1], child))
            elif isinstance(child, types.MethodType) or (step == ("attr", "__self__") and not _is_tensor(child)):
                todo.append((i, path[1], child))
    return tuple(out[:_MAX_DEPS])


# Dynamo runs _plan as real Python and takes its result as a constant of the graph (what
# torch.compiler.assume_constant_result sets; set here so that it holds whether or not torch
# was imported before flashjit, without importing torch).
_plan._dynamo_marked_constant = True  # type: ignore[attr-defined]
_scope_deps._dynamo_marked_constant = True  # type: ignore[attr-defined]

_PATH_NODES = 512
_PATH_DEPTH = 8
_MAX_DEPS = 64
_SCALARS = (bool, int, float, complex, str)
_SCOPE_TYPES = (types.FunctionType, functools.partial, tuple, list)




def _children(obj: Any, scalars_only: bool = False) -> list:
    """(step, child) pairs along which a captured tensor (or a value a trace reads) may be
    reached from ``obj``; each step is one attribute access, item access or closure-cell read
    that Dynamo can follow. scalars_only: of a plain object, only its scalar attributes."""
    if isinstance(obj, functools.partial):
        return ([(("attr", "func"), obj.func)] + [(("arg", i), a) for i, a in enumerate(obj.args)]
                + [(("kwarg", n), a) for n, a in (obj.keywords or {}).items()])
    if isinstance(obj, types.MethodType):
        return [(("attr", "__self__"), obj.__self__), (("attr", "__func__"), obj.__func__)]
    if isinstance(obj, types.FunctionType):
        from .expr_trace import _code_names

        out = []
        for i, cell in enumerate(obj.__closure__ or ()):
            try:
                out.append((("cell", i), cell.cell_contents))
            except ValueError:  # not assigned yet
                pass
        g = obj.__globals__
        out += [(("global", n), g[n]) for n in _code_names(obj.__code__) if n in g]
        return out
    if isinstance(obj, (tuple, list)):
        return [(("item", i), x) for i, x in enumerate(obj)]
    if isinstance(obj, dict):
        return [(("item", key), x) for key, x in obj.items() if isinstance(key, (str, int))]
    if isinstance(obj, (types.ModuleType, type)) or not hasattr(obj, "__dict__"):
        return []
    if scalars_only:
        return [(("attr", n), x) for n, x in vars(obj).items() if isinstance(n, str) and isinstance(x, _SCALARS)]
    out = []
    for dict_name in ("_buffers", "_parameters"):  # torch.nn.Module: read as attributes
        held = getattr(obj, dict_name, None)
        if isinstance(held, dict):
            out += [(("attr", n), x) for n, x in held.items() if isinstance(n, str)]
    return out + [(("attr", n), x) for n, x in vars(obj).items() if isinstance(n, str)]


def _capture_path(roots: tuple, tensor: Any, name: str) -> tuple:
    """(root index, steps) reaching ``tensor`` from mask_mod (root 0) or score_mod (root 1),
    breadth-first, by identity."""
    todo = [(i, (), r) for i, r in enumerate(roots) if r is not None]
    seen = set()
    while todo and len(seen) < _PATH_NODES:
        i, steps, obj = todo.pop(0)
        if obj is tensor:
            return (i, steps)
        if id(obj) in seen or _is_tensor(obj):
            continue
        seen.add(id(obj))
        if len(steps) < _PATH_DEPTH:
            todo += [(i, steps + (step,), child) for step, child in _children(obj)]
    raise TypeError(f"flashjit.attention: under torch.compile, the tensor '{name}' that mask_mod / score_mod read "
                    "must be reachable from the function (a closure variable, a global, an attribute or a "
                    "functools.partial argument); it was not found")


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape") and not isinstance(x, type)


def _follow(mask_mod: Any, score_mod: Any, path: tuple) -> Any:
    """The object at ``path`` (see _capture_path); traced by Dynamo, so that the tensor it
    ends at is a graph input."""
    obj = mask_mod if path[0] == 0 else score_mod
    for kind, key in path[1]:
        if kind == "cell":
            obj = obj.__closure__[key].cell_contents
        elif kind == "global":
            obj = obj.__globals__[key]
        elif kind == "attr":
            obj = getattr(obj, key)
        elif kind == "item":
            obj = obj[key]
        elif kind == "arg":
            obj = obj.args[key]
        else:  # "kwarg"
            obj = obj.keywords[key]
    return obj


def attention(q: Any, k: Any, v: Any, *, causal: bool = False,
              window: Optional[Tuple[Optional[int], Optional[int]]] = None,
              scale: Optional[float] = None, return_lse: bool = False,
              align: str = "bottom_right", tile: Union[Tile, dict, None] = None,
              out: Any = None, lse_out: Any = None, stream: Any = None,
              mask_mod: Any = None, score_mod: Any = None, block_mask: Any = None,
              deterministic: bool = False, dropout_p: float = 0.0, generator: Any = None,
              dropout_state: Any = None, layout: str = "bhsd",
              window_size: Optional[Tuple[int, int]] = None, softcap: float = 0.0,
              softmax_scale: Optional[float] = None) -> Any:
    """softmax(q kᵀ · scale + mask) v, differentiable in q, k and v (torch tensors).

    layout='bhsd' (default): q: (batch, heads_q, seqlen_q, head_dim); k: (batch, heads_kv,
    seqlen_k, head_dim); v: (batch, heads_kv, seqlen_k, head_dim_v), and o like q with
    head_dim_v. layout='bshd' (FlashAttention's flash_attn_func): q (batch, seqlen_q,
    heads_q, head_dim) and so on, o (batch, seqlen_q, heads_q, head_dim_v) (a view of the
    kernel's bhsd output: call .contiguous() where a dense tensor is needed); lse stays
    (batch, heads_q, seqlen_q) as FlashAttention's. fp16 or bf16 CUDA tensors whose last
    dimension is contiguous; other strides are free. heads_kv must divide heads_q (GQA/MQA).

    FlashAttention's names work too: window_size=(left, right) (-1 = unbounded) for window,
    softmax_scale for scale, softcap=c > 0 for c · tanh(score / c) applied to the scaled
    score before any score_mod (FlashAttention 2.6's soft-capping). For torch SDPA's and
    FlexAttention's signatures see flashjit.scaled_dot_product_attention and
    flashjit.flex_attention.

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
    Float tensors captured by score_mod that require grad (a learnable bias table, ALiBi
    slopes) get their gradient too (fp32 atomics: not bit-identical run to run); tensors
    read only by the mask get None.
    deterministic: the backward gives bit-identical dq, dk, dv run to run (dQ by a
      q-stationary kernel instead of fp32 atomics; slower: docs/performance.md). By default
      dQ may differ in its last bits between runs; dk and dv never do.
    dropout_p: attention dropout, applied whenever > 0 (as SDPA's and FlashAttention's: pass 0
      in eval mode): O = (P ∘ Z) V with Z = 0 (dropped, probability p) or 1 / (1 - p); p is
      rounded down to a multiple of 1/256; the returned lse is the undropped softmax's. 0
      changes nothing (same kernels, no RNG draw).
    generator: the torch.Generator (of q's device) the call's RNG state is drawn from; None =
      torch's default CUDA generator, so torch.manual_seed reproduces a call.
    dropout_state: the RNG state to use instead of drawing one: a contiguous 2-element int64
      CUDA tensor {seed, offset} on q's device (read by the kernels when they run), or a
      (seed, offset) pair of ints. flashjit.dropout_keep_mask(..., dropout_state) shows which
      elements such a call keeps. Required for inputs that are not torch tensors.

    With torch tensors the call goes through the custom ops flashjit::attention_fwd /
    attention_bwd (flashjit._torch_ops), so it works under torch.compile(fullgraph=True) and
    in CUDA-graph captures after a first, eager call of the same variant (docs/python.md).

    Returns o, or (o, lse) when return_lse.
    """
    # (Under torch.compile _eager_call is False before any value-dependent test: Dynamo traces
    # the general path, which handles symbolic values.)
    if (out is None and lse_out is None and stream is None and mask_mod is None and score_mod is None
            and block_mask is None and tile is None and window_size is None and softmax_scale is None
            and layout == "bhsd" and _eager_call() and not dropout_p and not softcap):
        fast_key = _fast_key(q, k, v, causal, window, scale, return_lse, align, deterministic)
        if fast_key is not None:
            spec_json = _FAST_SPECS.get(fast_key)
            if spec_json is not None:
                res = (_launch_fast_grad(q, k, v, spec_json, return_lse, deterministic) if fast_key[-1] is not None
                       else _launch_fast(q, k, v, spec_json, return_lse))
                if res is not None:
                    return res
        return _attention(q, k, v, causal=causal, window=window, scale=scale, return_lse=return_lse, align=align,
                          deterministic=deterministic, fast_key=fast_key)
    if window_size is not None:
        if window is not None:
            raise ValueError("flashjit.attention: pass window= or window_size= (FlashAttention's name), not both")
        try:
            left, right = window_size
        except (TypeError, ValueError):
            raise TypeError(f"flashjit.attention: window_size must be a (left, right) pair; got {window_size!r}") from None
        if (left, right) != (-1, -1):  # FlashAttention's (-1, -1): no window
            window = (left, right)
    if softmax_scale is not None:
        if scale is not None:
            raise ValueError("flashjit.attention: pass scale= or softmax_scale= (FlashAttention's name), not both")
        scale = softmax_scale
    if softcap:
        score_mod = _softcapped(score_mod, _softcap_value(softcap))
    if layout == "bshd":
        for name, t in (("q", q), ("k", k), ("v", v), ("out", out)):
            if t is not None and (len(t.shape) != 4 or not hasattr(t, "transpose")):
                raise ValueError(f"flashjit.attention: with layout='bshd', {name} must be a 4-dimensional tensor "
                                 f"(batch, seqlen, heads, head_dim) with .transpose(); got shape {_shape_str(t)}")
        res = _attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal, window=window,
                         scale=scale, return_lse=return_lse, align=align, tile=tile,
                         out=None if out is None else out.transpose(1, 2), lse_out=lse_out, stream=stream,
                         mask_mod=mask_mod, score_mod=score_mod, block_mask=block_mask, deterministic=deterministic,
                         dropout_p=dropout_p, generator=generator, dropout_state=dropout_state)
        if return_lse:
            return res[0].transpose(1, 2), res[1]
        return res.transpose(1, 2)
    if layout != "bhsd":
        raise ValueError(f"flashjit.attention: layout must be 'bhsd' (batch, heads, seqlen, head_dim) or 'bshd' "
                         f"(batch, seqlen, heads, head_dim); got {layout!r}")
    return _attention(q, k, v, causal=causal, window=window, scale=scale, return_lse=return_lse, align=align,
                      tile=tile, out=out, lse_out=lse_out, stream=stream, mask_mod=mask_mod, score_mod=score_mod,
                      block_mask=block_mask, deterministic=deterministic, dropout_p=dropout_p, generator=generator,
                      dropout_state=dropout_state)


def _softcap_value(softcap: Any) -> float:
    try:
        c = float(softcap)
    except (TypeError, ValueError):
        raise TypeError(f"flashjit.attention: softcap must be a number; got {softcap!r}") from None
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"flashjit.attention: softcap must be a finite number > 0 (0 = off); got {softcap!r}")
    return c


@functools.lru_cache(maxsize=64)
def _softcapped(score_mod: Any, cap: float) -> Any:
    """cap · tanh(score / cap), then score_mod: one function object per (score_mod, cap), so
    that the trace cache (variants.py) finds it again on the next call."""
    from .masks import _tanh

    if score_mod is None:
        return lambda score, b, h, q_idx, kv_idx: cap * _tanh(score / cap)
    if not callable(score_mod):
        raise TypeError("flashjit.attention: softcap= composes with a score_mod function, not with expression "
                        "text; write the cap into the text: c * tanh(score / c)")

    def capped(score, b, h, q_idx, kv_idx):
        return score_mod(cap * _tanh(score / cap), b, h, q_idx, kv_idx)

    return capped


def _attention(q: Any, k: Any, v: Any, *, causal: bool = False,
               window: Optional[Tuple[Optional[int], Optional[int]]] = None,
               scale: Optional[float] = None, return_lse: bool = False,
               align: str = "bottom_right", tile: Union[Tile, dict, None] = None,
               out: Any = None, lse_out: Any = None, stream: Any = None,
               mask_mod: Any = None, score_mod: Any = None, block_mask: Any = None,
               deterministic: bool = False, dropout_p: float = 0.0, generator: Any = None,
               dropout_state: Any = None, exprs: Optional[tuple] = None, fast_key: Optional[tuple] = None) -> Any:
    """attention() in the bhsd layout. ``exprs``: (mask_text, score_text, capture
    declarations, capture tensors) built by the caller instead of traced functions
    (_dropin.py), with mask_mod / score_mod None. ``fast_key``: the call's _fast_key, under
    which an eager call that gets through every check leaves its spec JSON for _launch_fast
    (or _launch_fast_grad when autograd records it)."""
    torch = sys.modules.get("torch")
    is_torch = torch is not None and isinstance(q, torch.Tensor)
    compiling = is_torch and _compiling(torch)
    needs_grad = False
    p = _dropout_p(_static(torch, dropout_p, compiling))
    if p > 0 and generator is not None and dropout_state is not None:
        raise ValueError("flashjit.attention: pass generator= or dropout_state=, not both (dropout_state is the "
                         "RNG state itself; generator is where attention() draws one from)")
    mask, win = _mask_args(causal, window)
    bm = None
    if block_mask is not None:
        bm = as_block_mask(block_mask)
        if mask_mod is None:
            mask_mod = bm.mask_mod
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
            want_lse = True  # the backward recomputes P from it
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
        if out is not None:
            _check_out_torch(torch, out, q, (b, hq, nq, dv))
        if lse_out is not None:
            _check_lse_torch(torch, lse_out, q, (b, hq, nq))
        if p > 0 and dropout_state is not None:
            dropout_state = _torch_state(torch, dropout_state, q)
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
        if p > 0 and dropout_state is None:
            raise ValueError(
                "flashjit.attention: dropout_p > 0 with inputs that are not torch tensors needs dropout_state= "
                "(a (seed, offset) pair of ints, or a 2-element int64 CUDA array): flashjit draws random "
                "numbers only through torch")

    block = None
    if bm is not None:
        _check_block_mask(bm, q, b, hq, nq, nk)
        block = tuple(_static(torch, x, compiling) for x in (bm.BLOCK_SIZE[0], bm.BLOCK_SIZE[1], bm.cells.shape[0] != 1,
                                                             bm.cells.shape[1] != 1))
    mask_form, score_form = _form(torch, mask_mod, compiling), _form(torch, score_mod, compiling)
    deps: tuple = ()
    if compiling and (callable(mask_mod) or callable(score_mod)):
        deps = tuple(_static(torch, _follow(mask_mod, score_mod, path), compiling)
                     for path in _scope_deps(mask_form, score_form))
    d, dv, hq, hkv, scale = (_static(torch, x, compiling) for x in (d, dv, hq, hkv, scale))
    static_exprs = None if exprs is None else tuple(exprs[:3])
    spec_json, caps = _plan(dtype, d, dv, hq, hkv, mask, win, align, scale, want_lse, _tile_key(tile), mask_form,
                            score_form, block, compiling, deps, p, static_exprs)
    if exprs is not None:
        caps = list(exprs[3])
    elif compiling:
        caps = [_follow(mask_mod, score_mod, path) for path in caps]
    else:
        caps = list(caps)
    # A captured tensor that requires grad (a learnable bias) makes the call differentiable
    # too: the backward gives it its gradient (fp32 atomics) when the score_mod reads it
    # differentiably, and None otherwise (a mask's document ids).
    if is_torch and not needs_grad and torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in caps):
        if out is not None or lse_out is not None:
            raise ValueError("flashjit.attention: out= and lse_out= cannot be used when a captured tensor requires "
                             "grad (autograd owns the outputs); drop them or call under torch.no_grad()")
        needs_grad = True
        if not want_lse:  # the backward recomputes P from the LSE: the spec must return it
            want_lse = True
            spec_json, _ = _plan(dtype, d, dv, hq, hkv, mask, win, align, scale, want_lse, _tile_key(tile), mask_form,
                                 score_form, block, compiling, deps, p, static_exprs)
    if bm is not None:
        caps.append(bm.cells)

    if not is_torch:
        stream_int = _stream_of(q) if stream is None else _as_stream_int(stream)
        rng = _foreign_rng(dropout_state) if p > 0 else _NO_RNG
        _launch_direct(None, spec_json, q, k, v, out, lse_out if want_lse else None, stream_int, caps, b, hq, nq, nk,
                       rng)
        return (out, lse_out) if return_lse else out

    def rng_state() -> Any:
        """The call's RNG state tensor (None without dropout), drawn on the current stream
        after every check, so that a refused call leaves torch's RNG stream alone."""
        if p == 0:
            return None
        if dropout_state is not None:
            return dropout_state
        return torch.randint(0, 2**62, (2,), dtype=torch.int64, device=q.device, generator=generator)

    direct = out is not None or lse_out is not None
    if stream is not None:
        if compiling:
            raise ValueError("flashjit.attention: stream= cannot be used under torch.compile; the call runs on "
                             "torch's current stream (wrap the compiled call in torch.cuda.stream(...))")
        stream_int = _as_stream_int(stream)
        if stream_int != torch.cuda.current_stream(q.device).cuda_stream:
            if not needs_grad:
                direct = True
            else:  # the forward on that stream; the backward, as any, on the current stream then
                with torch.cuda.stream(torch.cuda.ExternalStream(stream_int, device=q.device)):
                    o, lse = _torch_ops.ops(torch).attention_fwd(q, k, v, spec_json, caps, bool(deterministic),
                                                                  rng_state())
                return (o, lse) if return_lse else o
    if direct and not compiling:
        q, k, v = q.detach(), k.detach(), v.detach()
        if out is None:
            out = torch.empty((b, hq, nq, dv), dtype=q.dtype, device=q.device)
        if want_lse and lse_out is None:
            lse_out = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
        stream_int = torch.cuda.current_stream(q.device).cuda_stream if stream is None else _as_stream_int(stream)
        rng = _NO_RNG
        if p > 0:
            if stream_int != torch.cuda.current_stream(q.device).cuda_stream:  # drawn on the launch's stream
                with torch.cuda.stream(torch.cuda.ExternalStream(stream_int, device=q.device)):
                    state = rng_state()
            else:
                state = rng_state()
            rng = (0, 0, int(state.data_ptr()))
        _launch_direct(torch, spec_json, q, k, v, out, lse_out if want_lse else None, stream_int, caps, b, hq, nq, nk,
                       rng)
        return (out, lse_out) if return_lse else out

    if not compiling and _eager_launchable(torch, q, k, v):
        # Eager: launch from here (autograd through a torch.autograd.Function when it records
        # the call), not through the custom op: its first call imports torch._dynamo (seconds),
        # and its dispatch and the DLPack exports cost several times the launch (docs/python.md).
        state = rng_state()
        if fast_key is not None and not caps and p == 0 and (fast_key[-1] is not None) == needs_grad:
            if len(_FAST_SPECS) >= _FAST_SPECS_MAX:
                _FAST_SPECS.clear()
            _FAST_SPECS[fast_key] = spec_json
        if needs_grad:
            o, lse = _torch_ops.eager_function(torch).apply(q, k, v, spec_json, bool(deterministic), state, *caps)
        else:
            o, lse = _torch_ops.launch_forward(torch, q, k, v, spec_json, caps, state, want_lse, placeholder=False)
        return (o, lse) if return_lse else o

    # Under torch.compile the op is named through torch.ops (what Dynamo puts in the graph; _plan
    # has defined it); eagerly, ops() defines it on first use.
    fwd = torch.ops.flashjit.attention_fwd.default if compiling else _torch_ops.ops(torch).attention_fwd
    state = rng_state()
    if state is None:  # no dropout: the call as without it (the schema's default)
        o, lse = fwd(q, k, v, spec_json, caps, bool(deterministic))
    else:
        o, lse = fwd(q, k, v, spec_json, caps, bool(deterministic), state)
    if direct:  # under torch.compile: the op's fresh outputs copied into the given ones
        if out is not None:
            out.copy_(o)
            o = out
        if lse_out is not None:
            lse_out.copy_(lse)
            lse = lse_out
    return (o, lse) if return_lse else o


_NO_RNG = (0, 0, 0)


# The eager fast path: a call with no variant functions, outputs, stream or dropout, whose
# static signature (_fast_key) an earlier call took through every check of _attention, goes
# from attention() straight to the launch: the checks that depend on more than the signature
# (devices, dtypes, batch and sequence lengths, strides) are redone here or in C++
# (_C.forward_torch validates like forward()), so a mismatch still raises before any launch.
# Why: the general path's Python costs more than torch SDPA's whole call (docs/performance.md,
# host overhead).
_FAST_SPECS: dict = {}
_FAST_SPECS_MAX = 4096


def _eager_call() -> bool:
    """False while torch.compile traces (or without torch): the fast path is for eager calls."""
    torch = sys.modules.get("torch")
    return torch is not None and not _compiling(torch)


def _fast_key(q: Any, k: Any, v: Any, causal: Any, window: Any, scale: Any, return_lse: Any, align: Any,
              deterministic: Any) -> Any:
    """The static signature of an eager call on plain CUDA torch tensors of one dtype and
    device with consistent batch and sequence lengths, or None (then _attention decides and
    reports). Its last element is None when autograd does not record the call, else the
    backward's deterministic flag (a call that autograd records has its own spec: it returns
    the LSE the backward needs)."""
    torch = sys.modules.get("torch")
    if torch is None or _compiling(torch):
        return None
    T = torch.Tensor
    if type(q) is not T or type(k) is not T or type(v) is not T:
        return None
    C = torch._C
    try:
        if C._len_torch_dispatch_stack() or C._are_functorch_transforms_active():
            return None
    except AttributeError:
        return None
    grad = None
    if C.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        grad = bool(deterministic)
    qs, ks, vs = q.shape, k.shape, v.shape
    if len(qs) != 4 or len(ks) != 4 or len(vs) != 4:
        return None
    dev, dt = q.device, q.dtype
    if dev.type != "cuda" or k.device != dev or v.device != dev or k.dtype != dt or v.dtype != dt:
        return None
    if ks[0] != qs[0] or vs[0] != qs[0] or vs[2] != ks[2] or not (qs[0] and qs[1] and qs[2] and ks[2]):
        return None
    key = (dt, qs[1], qs[3], ks[1], ks[3], vs[1], vs[3], causal, window, scale, return_lse, align, grad)
    try:
        hash(key)
    except TypeError:  # a list window, say
        return None
    return key


def _launch_fast(q: Any, k: Any, v: Any, spec_json: str, return_lse: bool) -> Any:
    torch = sys.modules["torch"]
    qs, qst, kst, vst = q.shape, q.stride(), k.stride(), v.stride()
    if qst[3] != 1 or kst[3] != 1 or vst[3] != 1:  # _attention names the tensor and the fix
        return None
    b, hq, nq = qs[0], qs[1], qs[2]
    dev = q.device
    out = torch.empty((b, hq, nq, v.shape[3]), dtype=q.dtype, device=dev)
    lse = torch.empty((b, hq, nq), dtype=torch.float32, device=dev) if return_lse else None
    index = dev.index
    _C.forward_torch(spec_json, index, _torch_ops._dtype_name(q.dtype), q.data_ptr(), qs, qst, k.data_ptr(), k.shape,
                     kst, v.data_ptr(), v.shape, vst, out.data_ptr(), lse.data_ptr() if return_lse else 0,
                     _torch_ops._current_stream(torch, index), [], 0, 0, 0)
    return (out, lse) if return_lse else out


def _launch_fast_grad(q: Any, k: Any, v: Any, spec_json: str, return_lse: bool, deterministic: Any) -> Any:
    """_launch_fast for a call that autograd records: the eager autograd.Function directly."""
    if q.stride(3) != 1 or k.stride(3) != 1 or v.stride(3) != 1:
        return None
    torch = sys.modules["torch"]
    o, lse = _torch_ops.eager_function(torch).apply(q, k, v, spec_json, bool(deterministic), None)
    return (o, lse) if return_lse else o


def _eager_launchable(torch: Any, q: Any, k: Any, v: Any) -> bool:
    """Whether a call may skip the custom op and launch from Python: plain torch tensors, no
    TorchDispatchMode (FakeTensorMode, make_fx) and no functorch transform (vmap, grad)
    active, which see only the op's dispatch. Unknown torch internals: take the op."""
    C = torch._C
    try:
        return (type(q) is torch.Tensor and type(k) is torch.Tensor and type(v) is torch.Tensor
                and not C._len_torch_dispatch_stack() and not C._are_functorch_transforms_active())
    except AttributeError:
        return False


def _dropout_p(p: Any) -> float:
    """dropout_p as a float. Its range is the spec's to check: a value outside 0 <= p < 1
    (NaN included) goes into the spec JSON, whose validation raises SpecError naming
    dropout_p before anything is drawn or launched."""
    if isinstance(p, bool) or p is None:
        raise TypeError(f"flashjit.attention: dropout_p must be a float; got {p!r}")
    try:
        return float(p)  # a Python number, a numpy scalar
    except (TypeError, ValueError):
        raise TypeError(f"flashjit.attention: dropout_p must be a float; got {type(p).__name__}") from None


def _torch_state(torch: Any, state: Any, q: Any) -> Any:
    """A user's dropout_state as the tensor the op takes: checked, or made from (seed, offset)."""
    if isinstance(state, (tuple, list)):
        seed, offset = state_values(state, "flashjit.attention")
        return torch.tensor([as_int64(seed), as_int64(offset)], dtype=torch.int64, device=q.device)
    _torch_ops.check_dropout_state(torch, state, q, "flashjit.attention")
    return state


def _foreign_rng(state: Any) -> Tuple[int, int, int]:
    """(seed, offset, device address) for _C.forward from a non-torch call's dropout_state: a
    (seed, offset) pair of ints (host values), or a CUDA array of 2 contiguous int64 exposing
    __cuda_array_interface__ (CuPy, Numba), read by the kernel on the device."""
    if isinstance(state, (tuple, list)):
        seed, offset = state_values(state, "flashjit.attention")
        return seed, offset, 0
    cai = getattr(state, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError("flashjit.attention: dropout_state must be a (seed, offset) pair of ints or a CUDA array "
                        f"of 2 int64 (__cuda_array_interface__); got {type(state).__name__}")
    shape, strides = tuple(cai.get("shape", ())), cai.get("strides")
    if cai.get("typestr") not in ("<i8", "<u8") or shape not in ((2,), (1, 2), (2, 1)):
        raise ValueError(f"flashjit.attention: dropout_state must be 2 int64; got typestr {cai.get('typestr')!r}, "
                         f"shape {shape}")
    if strides is not None and tuple(strides) not in ((8,), (16, 8), (8, 8)):
        raise ValueError("flashjit.attention: dropout_state must be contiguous")
    return 0, 0, int(cai["data"][0])


def _launch_direct(torch: Any, spec_json: str, q: Any, k: Any, v: Any, out: Any, lse: Any, stream_int: int,
                   caps: list, b: int, hq: int, nq: int, nk: int, rng: Tuple[int, int, int] = _NO_RNG) -> None:
    """_C.forward into the given outputs (out=/lse_out=, a stream of the caller's, DLPack).
    ``rng``: dropout's (seed, offset, device address of {seed, offset}), see _C.forward."""
    if b == 0 or hq == 0 or nq == 0:
        return  # nothing to compute
    if nk == 0:  # no key at all: every row is fully masked
        out[...] = 0
        if lse is not None:
            lse[...] = float("-inf")
        return
    seed, offset, state = rng
    if torch is not None and q.device.index != torch.cuda.current_device():
        with torch.cuda.device(q.device):
            _C.forward(spec_json, q, k, v, out, lse, stream_int, caps, seed, offset, state)
    else:
        _C.forward(spec_json, q, k, v, out, lse, stream_int, caps, seed, offset, state)


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
