"""GPU tests of the drop-in entry points: flashjit.scaled_dot_product_attention against torch's
SDPA (float64, math backend) on the same arguments, flashjit.flex_attention against torch's
flex_attention, and attention()'s FlashAttention names and layout='bshd'. Outputs are
NaN-poisoned inputs' results compared on fresh random inputs; skipped without torch or a GPU."""

import math

import pytest

import flashjit

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)

import torch.nn.functional as F  # noqa: E402


def rand(shape, dtype, gen, requires_grad=False):
    return torch.randn(shape, generator=gen, device="cuda").to(dtype).requires_grad_(requires_grad)


def rel_err(x, ref):
    return ((x.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def tol(dtype):
    return 2e-2 if dtype == torch.bfloat16 else 5e-3


def sdpa64(q, k, v, **kw):
    """torch's SDPA in float64 (the math backend): the reference with torch's own semantics."""
    m = kw.pop("attn_mask", None)
    if m is not None and m.dtype != torch.bool:
        m = m.double()
    return F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=m, **kw)


SDPA_CASES = [
    # (name, q shape, k shape, kwargs builder)
    ("plain", (2, 4, 17, 64), (2, 4, 17, 64), {}),
    ("causal_top_left_l_lt_s", (2, 4, 100, 64), (2, 4, 257, 64), {"is_causal": True}),
    ("causal_top_left_l_gt_s", (1, 3, 300, 128), (1, 3, 120, 128), {"is_causal": True}),
    ("gqa_3to1", (2, 6, 1000, 64), (2, 2, 1000, 64), {"enable_gqa": True, "is_causal": True}),
    ("scale", (1, 2, 130, 128), (1, 2, 77, 128), {"scale": 0.3}),
    ("rank3", (4, 65, 64), (4, 90, 64), {}),
    ("rank5", (2, 3, 2, 33, 64), (2, 3, 2, 40, 64), {"is_causal": True}),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name,qs,ks,kw", SDPA_CASES, ids=[c[0] for c in SDPA_CASES])
def test_sdpa_matches_torch(dtype, name, qs, ks, kw):
    gen = torch.Generator(device="cuda").manual_seed(hash(name) % 2**31)
    q, k, v = rand(qs, dtype, gen), rand(ks, dtype, gen), rand(ks, dtype, gen)
    o = flashjit.scaled_dot_product_attention(q, k, v, **kw)
    ref = sdpa64(q, k, v, **kw)
    assert o.shape == ref.shape and o.dtype == dtype
    assert rel_err(o, ref) < tol(dtype)


MASK_SHAPES = [(2, 1, 100, 150), (100, 150), (1, 4, 100, 150), (2, 4, 100, 150), (1, 1, 1, 150), (2, 1, 1, 150)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mshape", MASK_SHAPES, ids=[str(s) for s in MASK_SHAPES])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_sdpa_attn_mask_broadcast(dtype, mshape, kind):
    gen = torch.Generator(device="cuda").manual_seed(7)
    q, k, v = rand((2, 4, 100, 64), dtype, gen), rand((2, 4, 150, 64), dtype, gen), rand((2, 4, 150, 64), dtype, gen)
    keep = torch.rand(mshape, generator=gen, device="cuda") > 0.3
    keep[..., 0] = True  # no row without a key: torch gives NaN there, flashjit 0
    if kind == "bool":
        mask = keep
    else:
        bias = torch.randn(mshape, generator=gen, device="cuda")
        mask = bias.masked_fill(~keep, float("-inf")).to(dtype)
    o = flashjit.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert rel_err(o, sdpa64(q, k, v, attn_mask=mask)) < tol(dtype)


def test_sdpa_mask_over_batch_dims_rank5():
    gen = torch.Generator(device="cuda").manual_seed(11)
    dtype = torch.bfloat16
    q, k, v = (rand((2, 3, 2, 40, 64), dtype, gen) for _ in range(3))
    mask = torch.rand((2, 3, 1, 40, 40), generator=gen, device="cuda") > 0.4
    mask[..., 0] = True
    o = flashjit.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert rel_err(o, sdpa64(q, k, v, attn_mask=mask)) < tol(dtype)


def test_sdpa_fully_masked_row_gives_zero_and_zero_grad():
    gen = torch.Generator(device="cuda").manual_seed(3)
    q, k, v = (rand((1, 2, 20, 64), torch.float16, gen, True) for _ in range(3))
    mask = torch.ones((20, 20), dtype=torch.bool, device="cuda")
    mask[5] = False
    o = flashjit.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.all(o[:, :, 5] == 0) and torch.isfinite(o).all()
    o.sum().backward()
    assert torch.all(q.grad[:, :, 5] == 0) and torch.isfinite(k.grad).all() and torch.isfinite(v.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sdpa_backward_matches_torch_including_mask_grad(dtype):
    gen = torch.Generator(device="cuda").manual_seed(5)
    q = rand((2, 6, 129, 64), dtype, gen, True)
    k, v = rand((2, 2, 200, 64), dtype, gen, True), rand((2, 2, 200, 64), dtype, gen, True)
    bias = (0.5 * torch.randn((1, 6, 129, 200), generator=gen, device="cuda")).requires_grad_(True)
    do = rand((2, 6, 129, 64), dtype, gen)
    o = flashjit.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)
    o.backward(do)
    leaves = [t.detach().double().requires_grad_(True) for t in (q, k, v, bias)]
    ref = F.scaled_dot_product_attention(*leaves[:3], attn_mask=leaves[3], enable_gqa=True)
    ref.backward(do.double())
    assert rel_err(o, ref.detach()) < tol(dtype)
    for got, want, name in zip((q.grad, k.grad, v.grad, bias.grad), leaves, "qkvb"):
        assert got is not None, name
        assert rel_err(got, want.grad) < 2 * tol(dtype), name


def test_sdpa_dropout_is_attention_with_top_left_causal():
    gen = torch.Generator(device="cuda").manual_seed(9)
    q, k, v = (rand((2, 4, 300, 64), torch.bfloat16, gen) for _ in range(3))
    torch.manual_seed(1234)
    a = flashjit.scaled_dot_product_attention(q, k, v, dropout_p=0.2, is_causal=True)
    torch.manual_seed(1234)
    b = flashjit.attention(q, k, v, dropout_p=0.2, causal=True, align="top_left")
    assert torch.equal(a, b)
    assert not torch.equal(a, flashjit.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_sdpa_errors_name_the_argument():
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k = rand((1, 4, 16, 64), torch.float16, gen), rand((1, 2, 16, 64), torch.float16, gen)
    with pytest.raises(ValueError, match="enable_gqa"):
        flashjit.scaled_dot_product_attention(q, k, k)
    with pytest.raises(ValueError, match="attn_mask or is_causal"):
        flashjit.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(16, 16, dtype=torch.bool,
                                                                              device="cuda"), is_causal=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        flashjit.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(3, 16, 16, dtype=torch.bool,
                                                                              device="cuda"))
    with pytest.raises(TypeError, match="attn_mask has dtype"):
        flashjit.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(16, 16, dtype=torch.int32,
                                                                              device="cuda"))


def test_sdpa_new_mask_each_call_is_not_retraced_or_recompiled():
    gen = torch.Generator(device="cuda").manual_seed(2)
    q = rand((1, 2, 64, 64), torch.float16, gen)
    for i in range(3):
        mask = torch.rand((64, 64), generator=gen, device="cuda") > 0.5
        mask[:, 0] = True
        o = flashjit.scaled_dot_product_attention(q, q, q, attn_mask=mask)
        assert rel_err(o, sdpa64(q, q, q, attn_mask=mask)) < tol(torch.float16)
        if i == 0:
            compiles = flashjit.runtime_stats()["compiles"]
    assert flashjit.runtime_stats()["compiles"] == compiles


# --- flex_attention ---------------------------------------------------------------------

flex = pytest.importorskip("torch.nn.attention.flex_attention")
_compiled_flex = None


def torch_flex(*args, **kw):
    global _compiled_flex
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex.flex_attention)
    return _compiled_flex(*args, **kw)


def causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gqa", [False, True])
def test_flex_matches_torch_flex(dtype, gqa):
    gen = torch.Generator(device="cuda").manual_seed(21)
    hkv = 2 if gqa else 6
    q = rand((2, 6, 1000, 64), dtype, gen)
    k, v = rand((2, hkv, 1000, 64), dtype, gen), rand((2, hkv, 1000, 64), dtype, gen)
    slopes = torch.rand(6, generator=gen, device="cuda") * 0.1

    def alibi(score, b, h, q_idx, kv_idx):
        return score + slopes[h] * (kv_idx - q_idx)

    bm = flex.create_block_mask(causal, 2, 1, 1000, 1000, device="cuda")
    o, lse = flashjit.flex_attention(q, k, v, score_mod=alibi, block_mask=bm, enable_gqa=gqa, return_lse=True)
    ro, rlse = torch_flex(q, k, v, score_mod=alibi, block_mask=bm, enable_gqa=gqa, return_lse=True)
    assert o.shape == ro.shape and lse.shape == rlse.shape
    assert rel_err(o, ro.double()) < tol(dtype)
    assert (lse.double() - rlse.double()).abs().max().item() < 2e-2  # both from low-precision scores


def test_flex_no_block_mask_is_full_attention_and_scale():
    gen = torch.Generator(device="cuda").manual_seed(22)
    q, k, v = (rand((1, 4, 257, 128), torch.bfloat16, gen) for _ in range(3))
    o = flashjit.flex_attention(q, k, v, scale=0.2)
    assert rel_err(o, sdpa64(q, k, v, scale=0.2)) < tol(torch.bfloat16)


def test_flex_kernel_options_and_gqa_errors():
    gen = torch.Generator(device="cuda").manual_seed(23)
    q, k = rand((1, 4, 64, 64), torch.float16, gen), rand((1, 2, 64, 64), torch.float16, gen)
    o = flashjit.flex_attention(q, q, q, kernel_options={"BLOCK_M": 64, "num_warps": 4})
    assert rel_err(o, sdpa64(q, q, q)) < tol(torch.float16)
    with pytest.raises(ValueError, match="unknown kernel_options"):
        flashjit.flex_attention(q, q, q, kernel_options={"BLOKC_M": 64})
    with pytest.raises(ValueError, match="enable_gqa"):
        flashjit.flex_attention(q, k, k)


def test_flex_backward_matches_torch_flex():
    gen = torch.Generator(device="cuda").manual_seed(24)
    dtype = torch.bfloat16
    leaves = [rand((1, 4, 300, 64), dtype, gen, True) for _ in range(3)]
    bm = flex.create_block_mask(causal, 1, 1, 300, 300, device="cuda")
    do = rand((1, 4, 300, 64), dtype, gen)
    flashjit.flex_attention(*leaves, block_mask=bm).backward(do)
    ref = [t.detach().clone().requires_grad_(True) for t in leaves]
    torch_flex(*ref, block_mask=bm).backward(do)
    for a, b, name in zip(leaves, ref, "qkv"):
        assert rel_err(a.grad, b.grad.double()) < 3e-2, name


# --- attention(): FlashAttention's names and layout ---------------------------------------

def test_attention_bshd_layout_equals_bhsd():
    gen = torch.Generator(device="cuda").manual_seed(31)
    q = rand((2, 100, 6, 64), torch.float16, gen)  # (batch, seqlen, heads, dim)
    k, v = rand((2, 150, 2, 64), torch.float16, gen), rand((2, 150, 2, 64), torch.float16, gen)
    o, lse = flashjit.attention(q, k, v, causal=True, layout="bshd", return_lse=True)
    ro, rlse = flashjit.attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True,
                                  return_lse=True)
    assert o.shape == (2, 100, 6, 64) and lse.shape == (2, 6, 100)
    assert torch.equal(o, ro.transpose(1, 2)) and torch.equal(lse, rlse)
    with pytest.raises(ValueError, match="layout"):
        flashjit.attention(q, k, v, layout="sbhd")


def test_attention_flash_attention_names():
    gen = torch.Generator(device="cuda").manual_seed(32)
    q, k, v = (rand((1, 4, 500, 64), torch.bfloat16, gen) for _ in range(3))
    assert torch.equal(flashjit.attention(q, k, v, window_size=(64, 0)), flashjit.attention(q, k, v, window=(64, 0)))
    assert torch.equal(flashjit.attention(q, k, v, window_size=(-1, -1)), flashjit.attention(q, k, v))
    assert torch.equal(flashjit.attention(q, k, v, softmax_scale=0.1), flashjit.attention(q, k, v, scale=0.1))
    o = flashjit.attention(q, k, v, softcap=5.0, causal=True)
    s = (q.double() @ k.double().transpose(-1, -2)) / 8.0
    s = 5.0 * torch.tanh(s / 5.0)
    s = s.masked_fill(torch.ones(500, 500, dtype=torch.bool, device="cuda").triu(1), float("-inf"))
    assert rel_err(o, torch.softmax(s, -1) @ v.double()) < tol(torch.bfloat16)
    with pytest.raises(ValueError, match="softcap"):
        flashjit.attention(q, k, v, softcap=-1.0)


def test_emit_defaults_to_this_gpus_arch():
    spec = flashjit.Spec(dtype="bf16", head_dim=128, mask="causal")
    major = torch.cuda.get_device_capability()[0]
    src = flashjit.emit(spec)
    assert src == flashjit.emit(spec, arch=flashjit.compile(spec).arch)
    if major == 9:
        assert "wgmma" in src


def test_sdpa_dropin_under_torch_compile_with_a_mask():
    gen = torch.Generator(device="cuda").manual_seed(41)
    q, k, v = (rand((2, 4, 96, 64), torch.bfloat16, gen) for _ in range(3))

    def f(q, k, v, mask):
        return flashjit.scaled_dot_product_attention(q, k, v, attn_mask=mask) * 2.0

    compiled = torch.compile(f, fullgraph=True)
    for i in range(2):  # a new mask tensor each call: no recompile needed for its values
        mask = torch.rand((2, 1, 96, 96), generator=gen, device="cuda") > 0.5
        mask[..., 0] = True
        assert torch.allclose(compiled(q, k, v, mask), f(q, k, v, mask), atol=1e-2, rtol=0)
        assert rel_err(compiled(q, k, v, mask) / 2.0, sdpa64(q, k, v, attn_mask=mask)) < tol(torch.bfloat16)


def test_check_reports_errors_near_the_rounding_floor():
    res = flashjit.check(dtype="bf16", head_dim=64, heads_q=6, heads_kv=2, seqlen_q=257, seqlen_k=300, causal=True,
                         verbose=False)
    for name in ("out", "dq", "dk", "dv"):
        assert 0 < res[f"{name}_floor_rel"] < res[f"{name}_rel"] < 10 * res[f"{name}_floor_rel"] + 1e-2, name
    assert res["lse_max_abs"] < 2e-3 and res["masked_rows_ok"]
