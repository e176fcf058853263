"""Trace FlexAttention-style Python functions into flashjit's expression text.

FlexAttention users write a ``mask_mod(b, h, q_idx, kv_idx) -> bool`` and a
``score_mod(score, b, h, q_idx, kv_idx) -> score`` as ordinary Python over torch tensors.
flashjit compiles such functions into its kernels, but the kernels are generated from the
small text language of docs/expressions.md, not from Python. This module bridges the two:
it calls the function once with symbolic stand-ins (``Sym``) for its arguments, records
every operation applied to them, and prints the result as expression text.

    >>> trace_mask_mod(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx).text
    '(q_idx >= kv_idx)'

Tracing is pure Python: torch is never imported here. When torch is present, ``Sym`` takes
part in torch's ``__torch_function__`` protocol, so ``torch.where``, ``torch.tanh``,
``doc[q_idx]`` on a real tensor ``doc`` and the like work inside the traced function. Without
torch, use this module's ``where``/``minimum``/... helpers and ``capture(tensor)``.

Python control flow cannot be traced (the function runs once, with symbols), so ``if``,
``and``/``or``/``not`` and chained comparisons on a traced value raise ``TraceError`` with a
hint, instead of silently tracing one branch.

The text is fully parenthesised so that Python's precedence (where ``&`` binds tighter than
``<``) never leaks into the meaning; the compiler re-prints it in canonical form anyway.
"""

import functools
import math
import numbers
import re
import struct
import threading
import types
from dataclasses import dataclass, field

__all__ = [
    "TraceError", "Capture", "Traced", "Sym", "trace_mask_mod", "trace_score_mod", "capture",
    "where", "minimum", "maximum", "abs_", "exp", "log", "tanh", "sigmoid", "sqrt",
    "SEQLEN_Q", "SEQLEN_K",
]

MAX_CAPTURES = 8
MAX_TEXT_BYTES = 4096  # the parser's limit (docs/expressions.md)
_INT32 = (-(2**31), 2**31 - 1)

# Names the language gives a meaning of its own; a captured tensor cannot use them.
_RESERVED = frozenset("b h q_idx kv_idx score seqlen_q seqlen_k true false inf where min max "
                      "abs exp log tanh sigmoid sqrt float int".split())
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}\Z")  # ASCII identifier of <= 32 chars

# Tensor dtypes a capture may have, by their names without "torch." (str(torch.int32) is
# "torch.int32", str(numpy.dtype("int32")) is "int32"), mapped to the spec's names.
_DTYPES = {"int32": "i32", "int64": "i64", "float32": "f32", "float16": "f16",
           "bfloat16": "bf16", "bool": "bool"}
_READ_TYPE = {"i32": "int", "i64": "int", "f32": "float", "f16": "float", "bf16": "float",
              "bool": "bool"}


class TraceError(TypeError):
    """A traced function did something the expression language cannot express."""


@dataclass(frozen=True)
class Capture:
    """A tensor the expression reads: declared in the spec as {name, dtype, rank}."""

    name: str
    # Compared by name only: torch's == on tensors is elementwise and has no truth value.
    tensor: object = field(compare=False, repr=False)
    dtype: str  # "i32" | "i64" | "f32" | "f16" | "bf16" | "bool"
    rank: int  # 1..4


@dataclass(frozen=True)
class Traced:
    """The result of a trace: expression text, its type and the tensors it reads."""

    text: str
    type: str  # "bool" | "int" | "float"
    captures: tuple = ()


# --- trace state ----------------------------------------------------------------------

_local = threading.local()


def _current():
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def _who():
    st = _current()
    return st.kind if st else "an expression"


def _err(msg):
    return TraceError(f"flashjit: {_who()} {msg}")


class _Trace:
    """Per-trace state: the names visible to the function and the tensors read so far."""

    def __init__(self, kind, fn):
        self.kind = kind
        self.scope = _scope_names(fn)  # id(obj) -> (obj, [variable names])
        self.by_tensor = {}  # id(tensor) -> Capture, so one tensor always gets one name
        self.order = []  # Captures in first-use order
        self.taken = set()

    def __enter__(self):
        if not hasattr(_local, "stack"):
            _local.stack = []
        _local.stack.append(self)
        return self

    def __exit__(self, *exc):
        _local.stack.pop()

    def capture(self, tensor, ref, explicit):
        cap = self.by_tensor.get(id(tensor))
        if cap is not None:
            return cap
        name = self._name(tensor, ref, explicit)
        cap = Capture(name, tensor, _dtype_of(tensor, name), _rank_of(tensor, name))
        self.by_tensor[id(tensor)] = cap
        self.order.append(cap)
        self.taken.add(name)
        return cap

    def _name(self, tensor, ref, explicit):
        if explicit is not None:
            if explicit in self.taken:
                raise _err(f"captures two different tensors under the name '{explicit}'")
            return explicit
        names = [n for obj in (ref, tensor) if obj is not None
                 for n in self.scope.get(id(obj), (None, []))[1]]
        for n in names:
            if _NAME_RE.match(n) and n not in _RESERVED and n not in self.taken:
                return n
        k = 0
        while f"t{k}" in self.taken:
            k += 1
        return f"t{k}"


_FUNCTION_TYPES = (types.FunctionType, types.MethodType, functools.partial)


def _scope_names(fn, limit=64):
    """Variable names under which ``fn`` (and functions it references) sees each object.

    Captured tensors have no name of their own; the variable the user wrote is the most
    readable name for the spec and for error messages, so we look objects up by identity in
    closure cells and referenced globals, following referenced Python functions too.
    """
    out, seen, todo = {}, set(), [fn]
    while todo and len(seen) < limit:
        f = todo.pop(0)
        f = f.func if isinstance(f, functools.partial) else f
        f = f.__func__ if isinstance(f, types.MethodType) else f
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            continue
        seen.add(id(f))
        pairs = []
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            try:
                pairs.append((name, cell.cell_contents))
            except ValueError:  # the closed-over variable is not assigned yet
                pass
        g = getattr(f, "__globals__", {})
        pairs += [(n, g[n]) for n in _code_names(code) if n in g]
        for name, obj in pairs:
            entry = out.setdefault(id(obj), (obj, []))
            if name not in entry[1]:
                entry[1].append(name)
            if (isinstance(obj, _FUNCTION_TYPES)
                    and getattr(obj, "__module__", None) != __name__):  # not our helpers
                todo.append(obj)
            elif isinstance(obj, tuple):  # e.g. the functions flashjit.masks.and_ combines
                todo.extend(x for x in obj if isinstance(x, _FUNCTION_TYPES))
    return out


def _code_names(code):
    # Globals used by inner lambdas/defs live in their own code objects' co_names.
    names = list(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            names += [n for n in _code_names(c) if n not in names]
    return names


def _dtype_of(tensor, name):
    d = getattr(tensor, "dtype", None)
    s = str(d)
    s = s[len("torch."):] if s.startswith("torch.") else s
    if s in _DTYPES:
        return _DTYPES[s]
    if s in _READ_TYPE:  # already a spec name such as "i32"
        return s
    raise _err(f"reads captured tensor '{name}' of dtype {d}; supported dtypes: "
               "int32, int64, float32, float16, bfloat16, bool")


def _rank_of(tensor, name):
    dim = getattr(tensor, "dim", None)
    rank = dim() if callable(dim) else getattr(tensor, "ndim", None)
    if rank is None:
        rank = len(getattr(tensor, "shape", ()))
    if not 1 <= rank <= 4:
        raise _err(f"reads captured tensor '{name}' of rank {rank}; captures have rank 1 to 4")
    return rank


# --- symbols --------------------------------------------------------------------------


class Sym:
    """A traced value: expression text and its type ("bool", "int" or "float").

    ``caps`` is the set of capture names the text reads, so a trace reports only the tensors
    its result actually uses.
    """

    __slots__ = ("text", "type", "caps")

    def __init__(self, text, type, caps=frozenset()):
        self.text, self.type, self.caps = text, type, caps

    # __eq__ builds an expression, so hashing falls back to identity.
    __hash__ = object.__hash__

    def __repr__(self):
        return f"Sym({self.type}: {self.text})"

    def __neg__(self):
        x = _num(self)
        return Sym(f"(-{x.text})", x.type, x.caps)

    def __pos__(self):
        return _num(self)

    def __invert__(self):
        if self.type != "bool":
            raise _err(f"applies '~' to {self.type}; '~' is logical not on bools here "
                       "(bitwise integer operations are not supported)")
        return Sym(f"(~{self.text})", "bool", self.caps)

    def __abs__(self):
        return abs_(self)

    def __divmod__(self, o):
        return self // o, self % o

    def __rdivmod__(self, o):
        return o // self, o % self

    # Tensor methods FlexAttention code calls on its values.
    def abs(self):
        return abs_(self)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def tanh(self):
        return tanh(self)

    def sigmoid(self):
        return sigmoid(self)

    def sqrt(self):
        return sqrt(self)

    def float(self):
        return self if self.type == "float" else _call("float", "float", self)

    def int(self):
        return self if self.type == "int" else _call("int", "int", self)

    long = int

    def bool(self):
        return self if self.type == "bool" else _binary("!=", self, 0)

    def clamp(self, min=None, max=None):
        return _clamp(self, min, max)

    clip = clamp

    def to(self, *args, **kwargs):
        dtype = kwargs.pop("dtype", args[0] if args else None)
        kind = {"float32": "float", "float16": "float", "bfloat16": "float", "float64": "float",
                "int32": "int", "int64": "int", "bool": "bool"}.get(str(dtype).replace("torch.", ""))
        if kind is None or len(args) > 1 or set(kwargs) - {"non_blocking", "copy"}:
            what = repr(dtype) if isinstance(dtype, str) else dtype
            raise _err(f"calls .to({what}) on a traced value; only .to(dtype) with torch.float32, "
                       "float16, bfloat16, float64, int32, int64 or bool is supported")
        return getattr(self, kind)()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # torch calls this for torch.* functions given a Sym, and for a real tensor indexed by
        # a Sym (func is Tensor.__getitem__, args (tensor, index)). torch is never imported:
        # everything needed arrives as arguments.
        kwargs = kwargs or {}
        name = getattr(func, "__name__", repr(func))
        if name == "__getitem__" and len(args) == 2 and not kwargs:
            return _read(args[0], args[1])
        # Tensor methods need no entry: on a Sym they are Sym's own methods.
        impl = _TORCH_FUNCS.get(name)
        if name in ("min", "max") and not (len(args) == 2 and isinstance(args[1], Sym)):
            impl = None  # torch.min(x) and torch.min(x, dim) are reductions
        if impl is None:
            raise _err(f"calls torch '{name}' in a form flashjit expressions do not support; "
                       f"supported: {', '.join(sorted(_TORCH_FUNCS))} (min/max only as min(a, b) "
                       "of two traced values), indexing a captured tensor and the methods "
                       f"{', '.join(_SYM_METHODS)}")
        try:
            return impl(*args, **kwargs)
        except TraceError:
            raise
        except TypeError as e:
            raise _err(f"calls torch '{name}' with arguments flashjit does not support ({e})") from e

    def __getitem__(self, index):
        raise _err("indexes a traced value; only captured tensors can be indexed")


def _binop(op):
    return lambda self, other: _binary(op, self, other)


def _rbinop(op):
    # Reflected: `30.0 * score` arrives as score.__rmul__(30.0); keep the written order.
    return lambda self, other: _binary(op, other, self)


for _name, _op in [("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"),
                   ("floordiv", "//"), ("mod", "%"), ("and", "&"), ("or", "|"), ("xor", "^")]:
    setattr(Sym, f"__{_name}__", _binop(_op))
    setattr(Sym, f"__r{_name}__", _rbinop(_op))
# Python reflects comparisons itself (5 <= q arrives as q >= 5), so no __r*__ is needed.
for _name, _op in [("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")]:
    setattr(Sym, f"__{_name}__", _binop(_op))


def _unsupported(what, hint):
    def method(self, *args):
        raise _err(f"{what}; {hint}")
    return method


_BOOL_HINT = "use torch.where (or flashjit's where), &, |, ~ and torch.minimum/maximum instead"
_UNSUPPORTED = {
    "__bool__": ("uses a traced value as a Python bool (if/and/or/not, chained comparison "
                 "a < b < c, builtin min/max)", _BOOL_HINT),
    "__index__": ("uses a traced value as a Python int or index (range(), list indexing)",
                  "read tensors with t[q_idx] on a torch tensor or capture(t)[q_idx]"),
    "__int__": ("calls int() on a traced value", "use x.int()"),
    "__float__": ("calls float() or a math function on a traced value",
                  "use x.float() and torch.exp/tanh/... (or flashjit's exp/tanh/...)"),
    "__complex__": ("calls complex() on a traced value", "complex numbers are not supported"),
    "__round__": ("calls round() on a traced value", "use x.int() (rounds toward zero)"),
    "__trunc__": ("calls math.trunc() on a traced value", "use x.int() (rounds toward zero)"),
    "__floor__": ("calls math.floor() on a traced value", "use // on ints"),
    "__ceil__": ("calls math.ceil() on a traced value", "use // on ints"),
    "__iter__": ("iterates over or unpacks a traced value", "traced values are scalars"),
    "__len__": ("calls len() on a traced value", "traced values are scalars"),
    "__pow__": ("uses '**'", "write x * x, or exp(y * log(x))"),
    "__rpow__": ("uses '**'", "write x * x, or exp(y * log(x))"),
    "__lshift__": ("uses '<<'", "bit shifts are not supported; multiply by a power of two"),
    "__rlshift__": ("uses '<<'", "bit shifts are not supported; multiply by a power of two"),
    "__rshift__": ("uses '>>'", "bit shifts are not supported; use // by a power of two"),
    "__rrshift__": ("uses '>>'", "bit shifts are not supported; use // by a power of two"),
    "__matmul__": ("uses '@'", "traced values are scalars"),
    "__rmatmul__": ("uses '@'", "traced values are scalars"),
}
for _name, (_what, _hint) in _UNSUPPORTED.items():
    setattr(Sym, _name, _unsupported(_what, _hint))
del _name, _op, _what, _hint

_SYM_METHODS = ("abs", "exp", "log", "tanh", "sigmoid", "sqrt", "float", "int", "long", "bool",
                "to", "clamp", "clip")


def _const(v):
    """A Python constant as a Sym, with text the parser reads back as exactly that value."""
    if isinstance(v, bool) or type(v).__name__ == "bool_":  # numpy.bool_ is no bool subclass
        return Sym("true" if v else "false", "bool")
    if isinstance(v, numbers.Integral):
        v = int(v)
        if not _INT32[0] <= v <= _INT32[1]:
            raise _err(f"uses the integer constant {v}, which does not fit 32 bits")
        return Sym(str(v) if v >= 0 else f"({v})", "int")
    if isinstance(v, numbers.Real):
        v = float(v)
        if math.isnan(v):
            raise _err("uses a NaN constant; the language has no NaN literal")
        if math.isinf(v):
            return Sym("inf" if v > 0 else "(-inf)", "float")
        try:
            struct.pack("<f", v)  # the kernel's floats are 32-bit: refuse what rounds to inf
        except OverflowError:
            raise _err(f"uses the float constant {v!r}, which is outside the float32 range") from None
        text = repr(v)  # shortest round-trip text; always has '.' or 'e' ('30.0', '1e-05')
        return Sym(f"({text})" if text.startswith("-") else text, "float")
    raise _err(f"combines a traced value with a {type(v).__name__}; only traced values and "
               "Python bool/int/float constants can be combined (read a captured tensor "
               "element with t[i] first)")


def _sym(v):
    return v if isinstance(v, Sym) else _const(v)


def _num(x):
    # bool in arithmetic counts as 0/1, as in Python and torch; the language wants int(x).
    x = _sym(x)
    if x.type != "bool":
        return x
    if x.text in ("true", "false"):
        return Sym("1" if x.text == "true" else "0", "int")
    return Sym(f"int({x.text})", "int", x.caps)


def _promote(a, b):
    return "int" if a.type == b.type == "int" else "float"


def _binary(op, a, b):
    a, b = _sym(a), _sym(b)
    if op in ("&", "|", "^"):
        for x in (a, b):
            if x.type != "bool":
                raise _err(f"applies '{op}' to {x.type}; '&', '|' and '^' are logical operators "
                           "on bools here, bitwise integer operations are not supported (note "
                           "Python's precedence: write (a < b) & (c < d), with parentheses)")
        t = "bool"
    elif op in ("==", "!=") and a.type == b.type == "bool":
        t = "bool"
    else:
        a, b = _num(a), _num(b)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            t = "bool"
        else:
            t = "float" if op == "/" else _promote(a, b)
    return Sym(f"({a.text} {op} {b.text})", t, a.caps | b.caps)


def _call(fname, type, *args):
    return Sym(f"{fname}({', '.join(a.text for a in args)})", type,
               frozenset().union(*(a.caps for a in args)))


# --- functions ------------------------------------------------------------------------


def where(condition, x, y):
    """``condition ? x : y``; on plain Python values it simply picks one."""
    if not isinstance(condition, Sym):
        return x if condition else y
    if condition.type != "bool":
        raise _err(f"calls where() with a {condition.type} condition; it must be a bool "
                   "(compare first, e.g. (x != 0))")
    x, y = _sym(x), _sym(y)
    if x.type == y.type == "bool":
        return _call("where", "bool", condition, x, y)
    x, y = _num(x), _num(y)
    return _call("where", _promote(x, y), condition, x, y)


def _min_max(fname, pyfn):
    def f(x, y):
        if not isinstance(x, Sym) and not isinstance(y, Sym):
            return pyfn(x, y)
        x, y = _num(x), _num(y)
        return _call(fname, _promote(x, y), x, y)
    return f


minimum = _min_max("min", min)
minimum.__name__, minimum.__doc__ = "minimum", "The smaller of two numbers (torch.minimum)."
maximum = _min_max("max", max)
maximum.__name__, maximum.__doc__ = "maximum", "The larger of two numbers (torch.maximum)."


def abs_(x):
    """``abs(x)`` of a number (the builtin ``abs`` works on traced values too)."""
    if not isinstance(x, Sym):
        return abs(x)
    x = _num(x)
    return _call("abs", x.type, x)


def _float_fn(fname, pyfn):
    def f(x):
        if not isinstance(x, Sym):
            return pyfn(x)
        return _call(fname, "float", _num(x))
    f.__name__ = fname
    f.__doc__ = f"``{fname}(x)`` as a float (an int is converted first)."
    return f


def _py_exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# On plain numbers these follow float semantics (log(0) = -inf, not ValueError) like the kernel.
exp = _float_fn("exp", _py_exp)
log = _float_fn("log", lambda x: math.log(x) if x > 0 else -math.inf if x == 0 else math.nan)
tanh = _float_fn("tanh", math.tanh)
sigmoid = _float_fn("sigmoid", lambda x: 1.0 / (1.0 + _py_exp(-x)))
sqrt = _float_fn("sqrt", lambda x: math.sqrt(x) if x >= 0 else math.nan)


def _clamp(x, min=None, max=None):
    if min is None and max is None:
        raise _err("calls clamp() without min or max")
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


_TORCH_FUNCS = {
    "where": lambda condition, input, other: where(condition, input, other),
    "minimum": lambda input, other: minimum(input, other),
    "maximum": lambda input, other: maximum(input, other),
    "min": lambda input, other: minimum(input, other),
    "max": lambda input, other: maximum(input, other),
    "abs": lambda input: abs_(input),
    "exp": lambda input: exp(input),
    "log": lambda input: log(input),
    "tanh": lambda input: tanh(input),
    "sigmoid": lambda input: sigmoid(input),
    "sqrt": lambda input: sqrt(input),
    "clamp": _clamp,
    "clip": _clamp,
}


# --- captured tensors -----------------------------------------------------------------


class _CaptureRef:
    """What ``capture()`` returns: indexing it with traced values reads the tensor."""

    __slots__ = ("tensor", "name")

    def __init__(self, tensor, name):
        self.tensor, self.name = tensor, name

    def __getitem__(self, index):
        return _read(self.tensor, index, self, self.name)

    def __repr__(self):
        return f"capture({self.tensor!r}, name={self.name!r})"


def capture(tensor, name=None):
    """Wrap ``tensor`` so that ``capture(t)[q_idx]`` reads it inside a trace.

    torch tensors need no wrapping (``t[q_idx]`` dispatches to the tracer); this is for code
    without torch and for objects that only have ``.dtype``, ``.ndim``/``.dim()`` and
    ``.shape``. ``name`` overrides the name taken from the variable holding the tensor.
    """
    if name is not None and (not isinstance(name, str) or not _NAME_RE.match(name)
                             or name in _RESERVED):
        raise TraceError(f"flashjit: capture name {name!r} is not an identifier of up to 32 "
                         "characters, or is a variable or function name of the language")
    return _CaptureRef(tensor, name)


def _read(tensor, index, ref=None, explicit=None):
    st = _current()
    if st is None:
        raise TraceError("flashjit: a captured tensor is read outside trace_mask_mod/trace_score_mod")
    cap = st.capture(tensor, ref, explicit)
    idx = index if isinstance(index, tuple) else (index,)
    if len(idx) != cap.rank:
        raise _err(f"reads '{cap.name}' (rank {cap.rank}) with {len(idx)} "
                   f"ind{'ex' if len(idx) == 1 else 'ices'}; give exactly one int index per "
                   f"dimension, e.g. {cap.name}[{', '.join(['i'] * cap.rank)}] (partial reads "
                   "such as bias[h] on a 2-D tensor are not supported)")
    parts = []
    for i, ix in enumerate(idx):
        what = None
        if isinstance(ix, Sym):
            if ix.type != "int":
                what = f"a {ix.type}" + (" (convert with .int())" if ix.type == "float" else "")
        elif isinstance(ix, slice) or ix is None or ix is Ellipsis:
            what = "a slice" if isinstance(ix, slice) else repr(ix)
        elif isinstance(ix, bool) or not isinstance(ix, numbers.Integral):
            what = f"a {type(ix).__name__}"
        elif ix < 0:
            what = f"the negative constant {ix} (Python's wrap-around is not supported)"
        if what:
            raise _err(f"indexes '{cap.name}' with {what} at position {i}; only element reads "
                       "with int indices are supported")
        parts.append(_sym(ix))
    return Sym(f"{cap.name}[{', '.join(p.text for p in parts)}]", _READ_TYPE[cap.dtype],
               frozenset([cap.name]).union(*(p.caps for p in parts)))


# --- tracing --------------------------------------------------------------------------

_B, _H, _Q_IDX, _KV_IDX = (Sym(n, "int") for n in ("b", "h", "q_idx", "kv_idx"))
_SCORE = Sym("score", "float")
SEQLEN_Q = Sym("seqlen_q", "int")
SEQLEN_K = Sym("seqlen_k", "int")


def _trace(kind, fn, args, types_ok, want):
    with _Trace(kind, fn) as st:
        out = fn(*args)
        if out is None:
            raise _err("returned None (a missing return?)")
        if not isinstance(out, (Sym, bool, numbers.Real)):
            raise _err(f"returned a {type(out).__name__}, not an expression of its arguments")
        out = _sym(out)
        if out.type not in types_ok:
            raise _err(f"must return {want}; it returned {'an' if out.type == 'int' else 'a'} "
                       f"{out.type} ({out.text})")
        caps = tuple(c for c in st.order if c.name in out.caps)
        if len(caps) > MAX_CAPTURES:
            raise _err(f"reads {len(caps)} captured tensors; at most {MAX_CAPTURES} are supported")
        if len(out.text) > MAX_TEXT_BYTES:
            raise _err(f"traces to {len(out.text)} bytes of text; at most {MAX_TEXT_BYTES} are allowed")
        return Traced(out.text, out.type, caps)


def trace_mask_mod(fn) -> Traced:
    """Trace ``fn(b, h, q_idx, kv_idx) -> bool`` into a mask expression."""
    return _trace("mask_mod", fn, (_B, _H, _Q_IDX, _KV_IDX), ("bool",),
                  "a bool (a comparison, or &, |, ~ of comparisons)")


def trace_score_mod(fn) -> Traced:
    """Trace ``fn(score, b, h, q_idx, kv_idx) -> number`` into a score_mod expression."""
    return _trace("score_mod", fn, (_SCORE, _B, _H, _Q_IDX, _KV_IDX), ("float", "int"),
                  "a number (the new score)")
