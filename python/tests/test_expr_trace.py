"""Tests of flashjit.expr_trace: tracing Python mask_mod/score_mod functions into expression text.

Pure Python: neither torch nor the compiled extension is needed. Tests that exercise the torch
integration skip themselves where torch is missing.
"""

import functools
import importlib.util
import math
import sys
from pathlib import Path

import pytest

try:
    from flashjit import expr_trace as et
except ImportError:  # the package __init__ needs the compiled extension; the tracer does not
    _path = Path(__file__).resolve().parents[1] / "flashjit" / "expr_trace.py"
    _spec = importlib.util.spec_from_file_location("flashjit_expr_trace", _path)
    et = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = et
    _spec.loader.exec_module(et)

TraceError = et.TraceError
capture = et.capture


class FakeTensor:
    """Just what a capture needs: .dtype, .ndim and .shape."""

    def __init__(self, dtype, *shape):
        self.dtype, self.shape, self.ndim = dtype, shape, len(shape)


class FakeTensorDim:
    """A tensor-like with .dim() (as torch tensors have) instead of .ndim."""

    def __init__(self, dtype, *shape):
        self.dtype, self.shape = dtype, shape

    def dim(self):
        return len(self.shape)


class FakeDtype:
    """Prints like a torch dtype, for .to() without torch."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return "torch." + self.name


def mask(fn):
    return et.trace_mask_mod(fn)


def score(fn):
    return et.trace_score_mod(fn)


def mask_error(fn, *fragments):
    with pytest.raises(TraceError) as info:
        et.trace_mask_mod(fn)
    for f in fragments:
        assert f in str(info.value)
    return str(info.value)


def score_error(fn, *fragments):
    with pytest.raises(TraceError) as info:
        et.trace_score_mod(fn)
    for f in fragments:
        assert f in str(info.value)
    return str(info.value)


# --- masks ----------------------------------------------------------------------------

def test_causal():
    t = mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx)
    assert t == et.Traced("(q_idx >= kv_idx)", "bool", ())


def test_reflected_comparison_and_arithmetic_keep_meaning():
    assert mask(lambda b, h, q, kv: 5 <= q).text == "(q_idx >= 5)"
    assert mask(lambda b, h, q, kv: 5 == kv).text == "(kv_idx == 5)"
    assert mask(lambda b, h, q, kv: 10 - q > kv).text == "((10 - q_idx) > kv_idx)"


def test_sliding_window():
    t = mask(lambda b, h, q, kv: (q >= kv) & (q - kv < 1024))
    assert t.text == "((q_idx >= kv_idx) & ((q_idx - kv_idx) < 1024))"
    assert t.type == "bool" and t.captures == ()


def test_prefix_lm():
    prefix = 128
    t = mask(lambda b, h, q, kv: (kv < prefix) | (q >= kv))
    assert t.text == "((kv_idx < 128) | (q_idx >= kv_idx))"


def test_bottom_right_causal_with_seqlens_xor_and_not():
    t = mask(lambda b, h, q, kv: kv <= q + et.SEQLEN_K - et.SEQLEN_Q)
    assert t.text == "(kv_idx <= ((q_idx + seqlen_k) - seqlen_q))"
    assert mask(lambda b, h, q, kv: ~(q < kv)).text == "(~(q_idx < kv_idx))"
    assert mask(lambda b, h, q, kv: (q < kv) ^ (b == 0)).text == "((q_idx < kv_idx) ^ (b == 0))"
    assert mask(lambda b, h, q, kv: (q < kv) == (h != 1)).text == "((q_idx < kv_idx) == (h != 1))"
    assert mask(lambda b, h, q, kv: True & (q < kv)).text == "(true & (q_idx < kv_idx))"


def test_int_arithmetic_ops():
    t = mask(lambda b, h, q, kv: (q // 64) * 64 + q % 64 - (-kv) != abs(h))
    assert t.text == "(((((q_idx // 64) * 64) + (q_idx % 64)) - (-kv_idx)) != abs(h))"
    assert mask(lambda b, h, q, kv: divmod(q, 4)[1] == 0).text == "((q_idx % 4) == 0)"
    assert mask(lambda b, h, q, kv: +q > 0).text == "(q_idx > 0)"


def test_document_mask_with_capture():
    tensor = FakeTensor("int32", 4096)
    doc = capture(tensor)
    t = mask(lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv))
    assert t.text == "((doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx))"
    assert t.captures == (et.Capture("doc", tensor, "i32", 1),)
    assert t.captures[0].tensor is tensor


GLOBAL_DOC = capture(FakeTensor("int64", 64))


def test_capture_named_after_global_and_nested_function():
    def same_doc(q, kv):
        return GLOBAL_DOC[q] == GLOBAL_DOC[kv]

    t = mask(lambda b, h, q, kv: same_doc(q, kv))
    assert t.text == "(GLOBAL_DOC[q_idx] == GLOBAL_DOC[kv_idx])"
    assert t.captures[0].name == "GLOBAL_DOC" and t.captures[0].dtype == "i64"


def test_capture_through_functools_partial():
    table = capture(FakeTensor("bool", 8, 8))

    def allowed(b, h, q, kv, scale):
        return table[q // scale, kv // scale]

    t = mask(functools.partial(allowed, scale=64))
    assert t.text == "table[(q_idx // 64), (kv_idx // 64)]"
    assert t.captures[0].dtype == "bool" and t.captures[0].rank == 2


def test_capture_explicit_name_and_dim_method():
    t = mask(lambda b, h, q, kv: capture(FakeTensorDim("i32", 8), name="docs")[q] > 0)
    assert t.text == "(docs[q_idx] > 0)" and t.captures[0].rank == 1


def test_same_tensor_same_name():
    tensor = FakeTensor("int32", 16)
    first, second = capture(tensor), capture(tensor)
    t = mask(lambda b, h, q, kv: first[q] == second[kv])
    assert t.text == "(first[q_idx] == first[kv_idx])"
    assert len(t.captures) == 1


def test_two_tensors_two_names_even_under_one_variable_name():
    doc = capture(FakeTensor("int32", 16))

    def inner():
        doc = capture(FakeTensor("int32", 16))
        return lambda q: doc[q]

    other = inner()
    t = mask(lambda b, h, q, kv: doc[q] == other(kv))
    names = [c.name for c in t.captures]
    assert names == ["doc", "t0"]
    assert t.text == "(doc[q_idx] == t0[kv_idx])"
    assert t.captures[0].tensor is not t.captures[1].tensor


def test_reserved_and_invalid_names_fall_back():
    inf = capture(FakeTensor("int32", 16))  # a literal of the language
    exp = capture(FakeTensor("int32", 16))  # a function of the language
    t = mask(lambda b, h, q, kv: inf[q] == exp[kv])
    assert t.text == "(t0[q_idx] == t1[kv_idx])"
    assert [c.name for c in t.captures] == ["t0", "t1"]
    # A tensor not held by any variable is named too.
    assert mask(lambda b, h, q, kv: capture(FakeTensor("int32", 4))[q] > 0).text == "(t0[q_idx] > 0)"
    a_very_long_variable_name_over_32_chars = capture(FakeTensor("int32", 4))
    t = mask(lambda b, h, q, kv: a_very_long_variable_name_over_32_chars[q] > 0)
    assert t.text == "(t0[q_idx] > 0)"


def test_captures_listed_in_first_use_order_and_only_when_used():
    x, y, unused = (capture(FakeTensor("int32", 4)) for _ in range(3))

    def fn(b, h, q, kv):
        unused[q]  # read but not part of the result
        return (y[q] > 0) & (x[kv] > 0)

    t = mask(fn)
    assert [c.name for c in t.captures] == ["y", "x"]


def test_constant_masks():
    assert mask(lambda b, h, q, kv: True) == et.Traced("true", "bool", ())
    assert mask(lambda b, h, q, kv: False).text == "false"


# --- score mods -----------------------------------------------------------------------

def test_alibi_with_capture_and_promotion():
    slopes_t = FakeTensor("float32", 16)
    slopes = capture(slopes_t)
    t = score(lambda s, b, h, q, kv: s + slopes[h] * (kv - q))
    assert t.text == "(score + (slopes[h] * (kv_idx - q_idx)))"
    assert t.type == "float"
    assert t.captures == (et.Capture("slopes", slopes_t, "f32", 1),)


def test_score_mod_types():
    assert score(lambda s, b, h, q, kv: q - kv) == et.Traced("(q_idx - kv_idx)", "int", ())
    assert score(lambda s, b, h, q, kv: (q - kv) * 0.5).type == "float"
    assert score(lambda s, b, h, q, kv: q / 2).type == "float"  # '/' is always float
    assert score(lambda s, b, h, q, kv: q // 2).type == "int"
    assert score(lambda s, b, h, q, kv: 30).text == "30"
    bias = capture(FakeTensor("bfloat16", 16, 1024))
    t = score(lambda s, b, h, q, kv: s + bias[h, q - kv])
    assert t.text == "(score + bias[h, (q_idx - kv_idx)])"
    assert t.captures[0].dtype == "bf16" and t.captures[0].rank == 2


def test_softcap_with_module_tanh():
    t = score(lambda s, b, h, q, kv: 30.0 * et.tanh(s / 30.0))
    assert t == et.Traced("(30.0 * tanh((score / 30.0)))", "float", ())


def test_where_minimum_maximum():
    t = score(lambda s, b, h, q, kv: et.where(q >= kv, s, -float("inf")))
    assert t.text == "where((q_idx >= kv_idx), score, (-inf))" and t.type == "float"
    assert score(lambda s, b, h, q, kv: et.minimum(q, kv)).text == "min(q_idx, kv_idx)"
    assert score(lambda s, b, h, q, kv: et.maximum(q - kv, 0)).text == "max((q_idx - kv_idx), 0)"
    assert score(lambda s, b, h, q, kv: et.maximum(q, 0.5)).type == "float"
    t = mask(lambda b, h, q, kv: et.where(b == 0, q >= kv, True))
    assert t.text == "where((b == 0), (q_idx >= kv_idx), true)" and t.type == "bool"
    # A bool branch next to a number counts as 0/1, as in torch.
    assert score(lambda s, b, h, q, kv: et.where(q > kv, q > 0, 2.5)).text == \
        "where((q_idx > kv_idx), int((q_idx > 0)), 2.5)"


def test_float_functions_and_bool_arithmetic():
    fns = {"exp": et.exp, "log": et.log, "tanh": et.tanh, "sigmoid": et.sigmoid, "sqrt": et.sqrt}
    for name, f in fns.items():
        t = score(lambda s, b, h, q, kv: f(q))
        assert t == et.Traced(f"{name}(q_idx)", "float", ())
    assert score(lambda s, b, h, q, kv: et.abs_(s)).text == "abs(score)"
    assert score(lambda s, b, h, q, kv: abs(q)).type == "int"
    assert score(lambda s, b, h, q, kv: (q >= kv) * 2).text == "(int((q_idx >= kv_idx)) * 2)"
    assert score(lambda s, b, h, q, kv: s + True).text == "(score + 1)"


def test_sym_methods():
    assert score(lambda s, b, h, q, kv: s.tanh().exp().log().sigmoid().sqrt().abs()).text == \
        "abs(sqrt(sigmoid(log(exp(tanh(score))))))"
    assert score(lambda s, b, h, q, kv: q.float()).text == "float(q_idx)"
    assert score(lambda s, b, h, q, kv: s.float()).text == "score"
    assert score(lambda s, b, h, q, kv: s.int()).text == "int(score)"
    assert score(lambda s, b, h, q, kv: s.long()).text == "int(score)"
    assert score(lambda s, b, h, q, kv: q.int()).text == "q_idx"
    assert score(lambda s, b, h, q, kv: (q > kv).float()).text == "float((q_idx > kv_idx))"
    assert mask(lambda b, h, q, kv: q.bool()).text == "(q_idx != 0)"
    assert score(lambda s, b, h, q, kv: s.clamp(min=-5.0, max=5.0)).text == "min(max(score, (-5.0)), 5.0)"
    assert score(lambda s, b, h, q, kv: s.clamp(max=1.0)).text == "min(score, 1.0)"
    assert score(lambda s, b, h, q, kv: q.to(FakeDtype("float32"))).text == "float(q_idx)"
    assert score(lambda s, b, h, q, kv: s.to(dtype=FakeDtype("int64"))).text == "int(score)"
    assert mask(lambda b, h, q, kv: q.to(FakeDtype("bool"))).text == "(q_idx != 0)"


def test_helpers_on_plain_numbers():
    assert et.where(True, 1, 2) == 1 and et.where(0, 1, 2) == 2
    assert et.minimum(3, 4.5) == 3 and et.maximum(3, 4.5) == 4.5
    assert et.abs_(-2) == 2 and et.exp(0.0) == 1.0 and et.exp(1e6) == math.inf
    assert et.log(1.0) == 0.0 and et.log(0.0) == -math.inf and math.isnan(et.log(-1.0))
    assert et.tanh(0.0) == 0.0 and et.sigmoid(0.0) == 0.5 and et.sigmoid(-1e6) == 0.0
    assert et.sqrt(4.0) == 2.0 and math.isnan(et.sqrt(-1.0))
    assert et.SEQLEN_Q.text == "seqlen_q" and et.SEQLEN_K.text == "seqlen_k"
    # Symbols work outside a trace too; they just cannot read captures there.
    assert (et.SEQLEN_K - et.SEQLEN_Q).text == "(seqlen_k - seqlen_q)"


# --- constants ------------------------------------------------------------------------

def test_int_constants():
    assert score(lambda s, b, h, q, kv: q + 2147483647).text == "(q_idx + 2147483647)"
    assert score(lambda s, b, h, q, kv: q + (-3)).text == "(q_idx + (-3))"
    assert score(lambda s, b, h, q, kv: q + (-2147483648)).text == "(q_idx + (-2147483648))"
    score_error(lambda s, b, h, q, kv: q + 2**31, "2147483648", "32 bits")
    score_error(lambda s, b, h, q, kv: q - 2**31 - 1, "32 bits")


def test_float_constants():
    cases = {30.0: "30.0", 1e-5: "1e-05", 0.1: "0.1", 1e16: "1e+16", -0.5: "(-0.5)", -0.0: "(-0.0)",
             float("inf"): "inf", -float("inf"): "(-inf)", 3.4028234663852886e38: "3.4028234663852886e+38"}
    for value, text in cases.items():
        assert score(lambda s, b, h, q, kv: s * value).text == f"(score * {text})"
    for text in cases.values():  # each reads back as a float literal
        assert "." in text or "e" in text or "inf" in text
    score_error(lambda s, b, h, q, kv: s + float("nan"), "NaN")
    score_error(lambda s, b, h, q, kv: s + 1e39, "float32 range")


def test_bool_constants_in_comparisons():
    assert mask(lambda b, h, q, kv: (q < kv) != False).text == "((q_idx < kv_idx) != false)"  # noqa: E712


# --- errors ---------------------------------------------------------------------------

def test_trace_error_is_type_error():
    assert issubclass(TraceError, TypeError)


def test_python_bool_on_traced_value():
    fragments = ("mask_mod", "Python bool", "torch.where", "&")
    mask_error(lambda b, h, q, kv: q >= kv and q < 100, *fragments)
    mask_error(lambda b, h, q, kv: q >= kv or q < 100, *fragments)
    mask_error(lambda b, h, q, kv: not (q >= kv), *fragments)
    mask_error(lambda b, h, q, kv: (q >= kv) if q > 0 else False, *fragments)
    mask_error(lambda b, h, q, kv: 0 <= q - kv < 128, *fragments, "chained comparison")
    mask_error(lambda b, h, q, kv: min(q, kv) > 0, *fragments, "min/max")
    score_error(lambda s, b, h, q, kv: s if s > 0 else 0.0, "score_mod", "Python bool")


def test_unsupported_operators():
    mask_error(lambda b, h, q, kv: q ** 2 > kv, "'**'")
    mask_error(lambda b, h, q, kv: 2 ** q > kv, "'**'")
    mask_error(lambda b, h, q, kv: (q << 1) > kv, "'<<'")
    mask_error(lambda b, h, q, kv: (q >> 1) > kv, "'>>'")
    mask_error(lambda b, h, q, kv: (q @ kv) > 0, "'@'")
    mask_error(lambda b, h, q, kv: (q & 1) == 0, "'&'", "int", "bitwise")
    mask_error(lambda b, h, q, kv: (q | kv) == 0, "'|'")
    mask_error(lambda b, h, q, kv: (q ^ kv) == 0, "'^'")
    mask_error(lambda b, h, q, kv: (q < kv) & 1, "'&'")
    # Python's precedence: & binds tighter than >=, so this is q >= (kv & (q - kv)) < 1024.
    mask_error(lambda b, h, q, kv: q >= kv & q - kv < 1024, "'&'", "precedence")
    mask_error(lambda b, h, q, kv: ~q == 0, "'~'")


def test_python_conversions_of_traced_values():
    mask_error(lambda b, h, q, kv: int(q) > 0, "int()")
    mask_error(lambda b, h, q, kv: float(q) > 0, "float()")
    mask_error(lambda b, h, q, kv: [True, False][q], "index")
    mask_error(lambda b, h, q, kv: len(range(q)) > 0, "index")
    mask_error(lambda b, h, q, kv: len(q) > 0, "len()")
    mask_error(lambda b, h, q, kv: list(q), "iterates")
    score_error(lambda s, b, h, q, kv: math.exp(s), "math")
    score_error(lambda s, b, h, q, kv: round(s), "round()")
    score_error(lambda s, b, h, q, kv: math.floor(s), "floor")
    score_error(lambda s, b, h, q, kv: s[0], "indexes a traced value")
    score_error(lambda s, b, h, q, kv: s + "1", "str")
    score_error(lambda s, b, h, q, kv: s.to("cuda"), ".to(")
    score_error(lambda s, b, h, q, kv: s.to(FakeDtype("int8")), "int8")
    score_error(lambda s, b, h, q, kv: s.clamp(), "clamp")


def test_where_condition_must_be_bool():
    score_error(lambda s, b, h, q, kv: et.where(q, s, 0.0), "where()", "int condition")


def test_return_type_errors():
    mask_error(lambda b, h, q, kv: q * 1.5, "mask_mod must return a bool", "float")
    mask_error(lambda b, h, q, kv: q - kv, "mask_mod must return a bool", "int")
    mask_error(lambda b, h, q, kv: 1.0, "mask_mod must return a bool")
    mask_error(lambda b, h, q, kv: 1, "mask_mod must return a bool")
    mask_error(lambda b, h, q, kv: None, "None")
    mask_error(lambda b, h, q, kv: "q >= kv", "str")
    score_error(lambda s, b, h, q, kv: s > 0, "score_mod must return a number", "bool")


def test_capture_dtype_and_rank_errors():
    x = capture(FakeTensor("float64", 4))
    mask_error(lambda b, h, q, kv: x[q] > 0, "'x'", "float64", "int32")
    y = capture(FakeTensor(FakeDtype("uint8"), 4))
    mask_error(lambda b, h, q, kv: y[q] > 0, "torch.uint8")
    z = capture(FakeTensor("int32"))
    mask_error(lambda b, h, q, kv: z[q] > 0, "rank 0")
    w = capture(FakeTensor("int32", 1, 1, 1, 1, 1))
    mask_error(lambda b, h, q, kv: w[q, q, q, q, q] > 0, "rank 5")


def test_capture_index_errors():
    bias = capture(FakeTensor("float32", 16, 128))
    doc = capture(FakeTensor("int32", 128))
    mask_error(lambda b, h, q, kv: bias[h] > 0, "'bias'", "rank 2", "1 index")
    mask_error(lambda b, h, q, kv: doc[q, kv] > 0, "'doc'", "2 indices")
    mask_error(lambda b, h, q, kv: bias[h, :] > 0, "slice")
    mask_error(lambda b, h, q, kv: doc[...] > 0, "Ellipsis")
    mask_error(lambda b, h, q, kv: bias[h, None] > 0, "None")
    mask_error(lambda b, h, q, kv: doc[-1] > 0, "negative")
    mask_error(lambda b, h, q, kv: doc[q * 0.5] > 0, "float", ".int()")
    mask_error(lambda b, h, q, kv: doc[q > 0] > 0, "bool")
    mask_error(lambda b, h, q, kv: doc[True] > 0, "bool")
    mask_error(lambda b, h, q, kv: doc[[q]] > 0, "list")
    assert mask(lambda b, h, q, kv: bias[0, q] > 0).text == "(bias[0, q_idx] > 0)"
    assert mask(lambda b, h, q, kv: doc[(q * 0.5).int()] > 0).text == "(doc[int((q_idx * 0.5))] > 0)"


def test_capture_limits_and_misuse():
    tensors = [capture(FakeTensor("int32", 4)) for _ in range(9)]

    def nine(b, h, q, kv):
        out = tensors[0][q] > 0
        for t in tensors[1:]:
            out = out & (t[q] > 0)
        return out

    mask_error(nine, "9 captured tensors", "8")
    del tensors[8]
    assert len(mask(nine).captures) == 8
    with pytest.raises(TraceError, match="outside"):
        tensors[0][et.SEQLEN_Q]
    for bad in ("score", "min", "1x", "a-b", "x" * 33, ""):
        with pytest.raises(TraceError, match="capture name"):
            capture(FakeTensor("int32", 4), name=bad)
    a, b2 = capture(FakeTensor("int32", 4), name="same"), capture(FakeTensor("int32", 4), name="same")
    mask_error(lambda b, h, q, kv: a[q] == b2[kv], "two different tensors", "'same'")


def test_text_length_limit():
    def long(b, h, q, kv):
        e = q
        for _ in range(400):
            e = e + kv
        return e > 0

    mask_error(long, "bytes", "4096")


def test_traced_is_fully_parenthesised():
    # Every operator application is wrapped, so the parser's precedence cannot change it.
    t = score(lambda s, b, h, q, kv: -s * 2 + q % 3 // 2 - (h < 1) * 1.5)
    assert t.text == "((((-score) * 2) + ((q_idx % 3) // 2)) - (int((h < 1)) * 1.5))"
    depth = 0
    for ch in t.text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


# --- torch integration (skipped without torch) -----------------------------------------

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_where_and_functions(torch):
    t = score(lambda s, b, h, q, kv: torch.where(q >= kv, s, -float("inf")))
    assert t.text == "where((q_idx >= kv_idx), score, (-inf))"
    assert score(lambda s, b, h, q, kv: 30.0 * torch.tanh(s / 30.0)).text == "(30.0 * tanh((score / 30.0)))"
    assert score(lambda s, b, h, q, kv: torch.minimum(q, kv)).text == "min(q_idx, kv_idx)"
    assert score(lambda s, b, h, q, kv: torch.maximum(s, q)).text == "max(score, q_idx)"
    assert score(lambda s, b, h, q, kv: torch.clamp(s, min=-1.0, max=1.0)).text == \
        "min(max(score, (-1.0)), 1.0)"
    assert score(lambda s, b, h, q, kv: torch.exp(torch.abs(s))).text == "exp(abs(score))"
    score_error(lambda s, b, h, q, kv: torch.cos(s), "'cos'")


def test_torch_tensor_indexing_dispatch(torch):
    doc = torch.zeros(64, dtype=torch.int32)
    t = mask(lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv))
    assert t.text == "((doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx))"
    assert len(t.captures) == 1 and t.captures[0].tensor is doc
    assert (t.captures[0].name, t.captures[0].dtype, t.captures[0].rank) == ("doc", "i32", 1)

    bias = torch.zeros(8, 128, dtype=torch.float16)
    t = score(lambda s, b, h, q, kv: s + bias[h, q - kv])
    assert t.text == "(score + bias[h, (q_idx - kv_idx)])"
    assert t.captures[0].dtype == "f16" and t.captures[0].rank == 2
    mask_error(lambda b, h, q, kv: bias[h] > 0, "rank 2", "1 index")
    mask_error(lambda b, h, q, kv: bias[h, :] > 0, "slice")
    f64 = torch.zeros(4, dtype=torch.float64)
    mask_error(lambda b, h, q, kv: f64[q] > 0, "float64")


def test_torch_to_dtype(torch):
    assert score(lambda s, b, h, q, kv: q.to(torch.float32)).text == "float(q_idx)"
    assert score(lambda s, b, h, q, kv: s.to(torch.bfloat16)).text == "score"
    assert score(lambda s, b, h, q, kv: s.to(torch.int32)).text == "int(score)"
    assert mask(lambda b, h, q, kv: q.to(torch.bool)).text == "(q_idx != 0)"
    slopes = torch.ones(16)
    t = score(lambda s, b, h, q, kv: s + slopes[h] * (kv - q).to(torch.float32))
    assert t.text == "(score + (slopes[h] * float((kv_idx - q_idx))))"
