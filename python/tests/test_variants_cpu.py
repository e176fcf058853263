"""User-written variants without a GPU: traced mask_mod / score_mod functions in a Spec,
their canonical JSON, emitted CUDA and NVRTC compiles, and the errors for what cannot be
traced or parsed."""

import pytest

import flashjit
from flashjit import Spec
from flashjit.expr_trace import TraceError, capture, tanh


class FakeTensor:
    """Enough of a tensor for tracing: a dtype and a shape (no torch here)."""

    def __init__(self, dtype, shape):
        self.dtype = dtype
        self.shape = shape
        self.ndim = len(shape)


def test_traced_functions_fill_the_spec():
    doc = capture(FakeTensor("int32", (4096,)), name="doc")
    spec = Spec(dtype="bf16", head_dim=64,
                mask=lambda b, h, q, k: (doc[q] == doc[k]) & (q >= k),
                score_mod=lambda s, b, h, q, k: 30.0 * tanh(s / 30.0))
    assert spec.mask == "custom"
    assert spec.mask_expr == "doc[q_idx] == doc[kv_idx] & q_idx >= kv_idx"
    assert spec.score_mod == "30.0 * tanh(score / 30.0)"
    assert spec.captures == (("doc", "i32", 1),)
    again = Spec.from_json(spec.to_json())
    assert again == spec
    assert hash(again) == hash(spec)


def test_expression_text_and_function_give_one_kernel():
    a = Spec(dtype="fp16", head_dim=64, mask=lambda b, h, q, k: (q // 64) == (k // 64))
    b = Spec(dtype="fp16", head_dim=64, mask={"kind": "custom", "expr": "q_idx//64==kv_idx//64"})
    assert a.canonical_json() == b.canonical_json()
    assert flashjit.compile(a, arch="sm_80").kernel_name == flashjit.compile(b, arch="sm_80").kernel_name


def test_emit_and_compile_without_gpu():
    spec = Spec(dtype="bf16", head_dim=128, mask=lambda b, h, q, k: (k <= q) | (k < 128))
    src = flashjit.emit(spec, arch="sm_90a")
    assert "__device__ __forceinline__ bool mask_mod(" in src
    assert "build_tile_list" in src
    info = flashjit.compile(spec, arch="sm_90a")
    assert info.arch == "sm_90a" and "custom" in info.kernel_name
    ir = flashjit.emit_ir(spec, arch="sm_90a", after="classify_tiles")
    assert "by_interval" in ir


def test_causal_function_is_the_builtin_band():
    spec = Spec(dtype="bf16", head_dim=64, mask=lambda b, h, q, k: q >= k)
    assert "band: k - q <= 0" in flashjit.emit_ir(spec, arch="sm_90a", after="classify_tiles")


def test_untraceable_function_names_the_problem():
    with pytest.raises(TraceError, match="and"):
        Spec(dtype="bf16", head_dim=64, mask=lambda b, h, q, k: q >= k and k > 0)


def test_bad_expression_text_names_the_field():
    with pytest.raises(flashjit.SpecError) as e:
        Spec(dtype="bf16", head_dim=64, mask={"kind": "custom", "expr": "q_idx >= "})
    assert e.value.field == "mask.expr"
    assert "at 9" in str(e.value)
    with pytest.raises(flashjit.SpecError) as e:
        Spec(dtype="bf16", head_dim=64, score_mod="score + t[q_idx]")
    assert e.value.field == "score_mod"


def test_plot_block_mask_counts_tiles():
    pic = flashjit.plot_block_mask(lambda b, h, q, k: (k <= q) | (k < 100), 1000, draw=False)
    assert pic["width"] == 1000 and pic["height"] == 1000
    assert len(pic["rgb"]) == 3 * 1000 * 1000
    assert pic["tiles_empty"] > 0 and pic["tiles_partial"] > 0 and pic["tiles_full"] > 0
    # A spec works too; the causal band classifies like the expression.
    a = flashjit.plot_block_mask(Spec(dtype="bf16", head_dim=64, mask="causal", align="top_left"), 700, draw=False)
    b = flashjit.plot_block_mask(lambda b, h, q, k: q >= k, 700, draw=False)
    assert (a["tiles_empty"], a["tiles_full"]) == (b["tiles_empty"], b["tiles_full"])


def test_plot_block_mask_reads_captured_values():
    np = pytest.importorskip("numpy")
    doc = np.repeat(np.arange(4, dtype=np.int32), 256)  # 4 documents of 256 tokens
    d = capture(doc, name="doc")
    pic = flashjit.plot_block_mask(lambda b, h, q, k: (d[q] == d[k]) & (q >= k), 1024, draw=False)
    # Interval analysis on the values: tiles inside a document are full, between documents empty.
    assert pic["tiles_full"] > 0
    assert pic["tiles_empty"] > pic["tiles_full"]
    short = capture(np.zeros(100, dtype=np.int32), name="short")
    with pytest.raises(flashjit.ArgumentError, match="captures.short"):
        flashjit.plot_block_mask(lambda b, h, q, k: short[q] == 0, 1024, draw=False)


def test_named_variants_trace_to_their_expressions():
    from flashjit import masks

    band = lambda m: Spec(dtype="bf16", head_dim=64, mask=m)  # noqa: E731
    assert band(masks.causal()).mask_expr == "q_idx >= kv_idx"
    assert "band: k - q <= 0" in flashjit.emit_ir(band(masks.causal()), after="classify_tiles")
    assert "band: -1023 <= k - q <= 0" in flashjit.emit_ir(band(masks.sliding_window(1024)), after="classify_tiles")
    assert "band: k - q - (seqlen_k - seqlen_q) <= 0" in flashjit.emit_ir(band(masks.causal_bottom_right()),
                                                                         after="classify_tiles")
    assert band(masks.prefix_lm(2048)).mask_expr == "kv_idx <= q_idx | kv_idx < 2048"
    doc = capture(FakeTensor("int32", (100,)), name="doc")
    s = band(masks.and_(masks.causal(), masks.document(doc)))
    assert s.mask_expr == "q_idx >= kv_idx & doc[q_idx] == doc[kv_idx]"
    slopes = capture(FakeTensor("float32", (8,)), name="slopes")
    table = capture(FakeTensor("bfloat16", (8, 129)), name="table")
    assert Spec(dtype="bf16", head_dim=64, score_mod=masks.alibi(slopes)).score_mod == \
        "score + slopes[h] * (kv_idx - q_idx)"
    assert Spec(dtype="bf16", head_dim=64, score_mod=masks.softcap(30)).score_mod == "30.0 * tanh(score / 30.0)"
    assert Spec(dtype="bf16", head_dim=64, score_mod=masks.relative_bias(table, 64)).score_mod == \
        "score + table[h, min(max(q_idx - kv_idx + 64, 0), 128)]"


def test_traces_are_reused_only_while_nothing_they_see_changed():
    from flashjit.variants import trace_variant

    np = pytest.importorskip("numpy")
    doc = capture(np.zeros(64, dtype=np.int32), name="doc")
    W = 16

    def mask_mod(b, h, q, k):
        return (doc[q] == doc[k]) & (q - k < W)

    first = trace_variant(mask_mod, None)
    assert trace_variant(mask_mod, None) is first  # cached
    W = 32  # a rebound closure variable is a new trace
    second = trace_variant(mask_mod, None)
    assert second is not first and "32" in second[0]
    doc = capture(np.zeros(64, dtype=np.int64), name="doc")  # another tensor: new trace
    assert trace_variant(mask_mod, None)[2] == (("doc", "i64", 1),)
    cfg = {"w": 8}  # mutable state the trace bakes in: traced every call

    def with_dict(b, h, q, k):
        return q - k < cfg["w"]

    a = trace_variant(with_dict, None)
    cfg["w"] = 9
    assert "9" in trace_variant(with_dict, None)[0] and a[0] != trace_variant(with_dict, None)[0]


def test_traces_are_not_reused_across_a_user_module_setting():
    import types as _types

    from flashjit.variants import trace_variant

    settings = _types.ModuleType("my_settings")
    settings.W = 8

    def mask_mod(b, h, q, k):
        return q - k < settings.W

    a = trace_variant(mask_mod, None)[0]
    settings.W = 9
    assert trace_variant(mask_mod, None)[0] != a


def test_block_mask_spec_and_builder_without_gpu():
    causal = Spec(dtype="bf16", head_dim=64, mask="causal").to_json()
    restricted = Spec.from_json(flashjit._C.with_block_mask(causal, 128, 64, False, True))
    assert restricted.mask == "custom"
    assert restricted.captures == (("block_mask", "i32", 4),)
    assert restricted.mask_expr.startswith("block_mask[0, h, q_idx // 128, kv_idx // 64] == 2 | ")
    doc = capture(FakeTensor("int32", (4096,)), name="doc")
    spec = Spec(dtype="bf16", head_dim=64, mask=lambda b, h, q, k: (doc[q] == doc[k]) & (q >= k))
    src = flashjit._C.emit_block_mask(spec.to_json())
    assert "flashjit::block_mask_cells<128>" in src and "doc[q_idx] == doc[kv_idx]" in src
    info = flashjit._C.compile_block_mask(spec.to_json(), "sm_90a")
    assert info["kernel_name"].startswith("flashjit_block_mask_") and info["registers"] > 0
    with pytest.raises(ValueError, match="BLOCK_SIZE"):
        flashjit.block_mask._pair((128, 0))
    with pytest.raises(flashjit.ArgumentError, match="block_mask.block_q"):
        flashjit._C.with_block_mask(causal, 0, 64, False, False)
