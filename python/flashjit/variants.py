"""User-written variants: FlexAttention-style ``mask_mod`` / ``score_mod`` functions (or
expression text) turned into the spec's expression fields and the tensors they read.

    mask_text, score_text, decls, tensors = trace_variant(mask_mod, score_mod)

``decls`` are the spec's capture declarations ``((name, dtype, rank), ...)``; ``tensors``
the captured tensors in the same order, which a call passes to the kernel. Text passes
through as it is (its captures are declared separately, see Spec(captures=...)).
"""

from __future__ import annotations

import functools
import threading
import types
from typing import Any, Callable, List, Optional, Tuple, Union

from .expr_trace import Capture, TraceError, _CaptureRef, _scope_names, trace_mask_mod, trace_score_mod

Fn = Union[None, str, Callable[..., Any]]


def _merge(into: List[Capture], more: Tuple[Capture, ...]) -> None:
    for c in more:
        same = [x for x in into if x.name == c.name]
        if not same:
            into.append(c)
        elif same[0].tensor is not c.tensor:
            raise TraceError(f"flashjit: mask_mod and score_mod read two different tensors named "
                             f"'{c.name}'; give one of them another variable name")


# Tracing costs tens of microseconds a call; attention() traces on every call. A trace is
# reused when the function and everything it can see are the same objects: values that can
# be baked into the expression are immutable (numbers, strings, tuples of them, functions,
# library modules), tensors count by identity, dtype and rank (their values are read by the kernel,
# not traced). Anything else it sees (a dict, a list, an object) makes it trace every call.
# Entries hold the objects, so their ids are not reused while cached.
_IMMUTABLE = (int, float, bool, complex, str, bytes, type(None), type, types.FunctionType, types.BuiltinFunctionType)
# Library modules whose attributes a mask reads are functions (torch.where), not settings; a
# user's module may hold settings that change, so it is not trusted.
_LIBRARY_MODULES = {"torch", "math", "numpy", "operator", "flashjit"}


def _immutable(obj: Any) -> bool:
    if isinstance(obj, types.ModuleType):
        return obj.__name__.split(".")[0] in _LIBRARY_MODULES
    if isinstance(obj, tuple):
        return all(_immutable(x) for x in obj)
    return isinstance(obj, _IMMUTABLE)
_CACHE: dict = {}
_CACHE_MAX = 256
_LOCK = threading.Lock()


def _tensor_like(x: Any) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape") and not isinstance(x, type)


def _fingerprint(fn: Any) -> Optional[tuple]:
    if fn is None or isinstance(fn, str):
        return ("value", fn)
    if isinstance(fn, functools.partial) or not isinstance(fn, types.FunctionType):
        return None  # partial arguments and callable objects may hold mutable state
    parts = []
    for oid, (obj, names) in sorted(_scope_names(fn).items(), key=lambda kv: kv[0]):
        if isinstance(obj, _CaptureRef):  # capture(tensor, name): the tensor and the name count
            names = tuple(names) + (str(obj.name),)
            obj = obj.tensor
            oid = (oid, id(obj))
        if _tensor_like(obj):
            parts.append((oid, tuple(names), str(obj.dtype), len(obj.shape)))
        elif _immutable(obj):
            parts.append((oid, tuple(names), obj if isinstance(obj, (int, float, bool, str, type(None))) else None))
        else:
            return None
    return (id(fn), fn.__code__, fn.__defaults__, tuple(parts))


def trace_variant(mask_mod: Fn, score_mod: Fn) -> Tuple[Optional[str], Optional[str], tuple, list]:
    fm, fs = _fingerprint(mask_mod), _fingerprint(score_mod)
    key = None if fm is None or fs is None else (fm, fs)
    if key is not None:
        with _LOCK:
            hit = _CACHE.get(key)
        if hit is not None:
            return hit[1]
    result = _trace_variant(mask_mod, score_mod)
    if key is not None:
        keep = [mask_mod, score_mod]
        for fn in (mask_mod, score_mod):
            if isinstance(fn, types.FunctionType):
                keep += [obj for obj, _ in _scope_names(fn).values()]
                keep += [obj.tensor for obj in keep if isinstance(obj, _CaptureRef)]
        with _LOCK:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (keep, result)
    return result


def _trace_variant(mask_mod: Fn, score_mod: Fn) -> Tuple[Optional[str], Optional[str], tuple, list]:
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
