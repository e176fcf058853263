"""GPU tests of user-written variants: FlexAttention-style mask_mod / score_mod functions
traced into flashjit's expressions, against a float64 reference and against PyTorch's
flex_attention on the same functions. Skipped where torch or a GPU is missing."""

import math

import pytest

import flashjit

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)


def reference(q, k, v, mask_mod=None, score_mod=None):
    """float64 attention with the functions evaluated densely by torch itself."""
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    g = hq // hkv
    qf, kf, vf = q.double(), k.double().repeat_interleave(g, 1), v.double().repeat_interleave(g, 1)
    s = (qf @ kf.transpose(-1, -2)) / math.sqrt(d)
    B = torch.arange(b, device=q.device).view(b, 1, 1, 1)
    H = torch.arange(hq, device=q.device).view(1, hq, 1, 1)
    Q = torch.arange(sq, device=q.device).view(1, 1, sq, 1)
    K = torch.arange(sk, device=q.device).view(1, 1, 1, sk)
    if score_mod is not None:
        s = score_mod(s.float(), B, H, Q, K).double()
    if mask_mod is not None:
        keep = mask_mod(B, H, Q, K).expand(b, hq, sq, sk)
        s = s.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(s, -1)
    p = torch.exp(s - lse.unsqueeze(-1)).nan_to_num(0.0)
    return p @ vf, lse


def rand(b, h, s, d, dtype, gen):
    return torch.randn(b, h, s, d, generator=gen, device="cuda").to(dtype)


def check(o, lse, ro, rlse, dtype):
    tol = 2e-2 if dtype == torch.bfloat16 else 5e-3
    live = torch.isfinite(rlse)
    assert torch.all(lse[~live] == float("-inf"))
    assert torch.all(o[~live] == 0)
    err = (o.double() - ro)[live].norm() / ro[live].norm().clamp_min(1e-30)
    assert err.item() < tol, err.item()
    assert (lse[live].double() - rlse[live]).abs().max().item() < 2e-3


def doc_ids(n, gen, docs=4):
    if n < docs:
        return torch.zeros(n, dtype=torch.int32, device="cuda")
    cuts = torch.sort(torch.randint(1, n, (docs - 1,), generator=gen, device="cuda")).values
    return torch.bucketize(torch.arange(n, device="cuda"), cuts, right=True).to(torch.int32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sq,sk", [(1, 1), (17, 17), (1000, 1000), (17, 1000), (1000, 17)])
def test_document_mask_and_alibi(dtype, sq, sk):
    gen = torch.Generator(device="cuda").manual_seed(sq * 7 + sk)
    q, k, v = rand(2, 6, sq, 64, dtype, gen), rand(2, 2, sk, 64, dtype, gen), rand(2, 2, sk, 64, dtype, gen)
    doc = doc_ids(max(sq, sk), gen)
    slopes = torch.rand(6, generator=gen, device="cuda")

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + slopes[h] * (kv_idx - q_idx)

    o = torch.full((2, 6, sq, 64), float("nan"), dtype=dtype, device="cuda")
    o, lse = flashjit.attention(q, k, v, mask_mod=mask_mod, score_mod=score_mod, return_lse=True, out=o)
    ro, rlse = reference(q, k, v, mask_mod, score_mod)
    check(o, lse, ro, rlse, dtype)


@pytest.mark.parametrize("name", ["prefix_lm", "softcap", "causal_expr", "window_expr"])
def test_named_variants(name):
    gen = torch.Generator(device="cuda").manual_seed(1)
    dtype = torch.bfloat16
    q, k, v = rand(1, 4, 777, 128, dtype, gen), rand(1, 4, 777, 128, dtype, gen), rand(1, 4, 777, 128, dtype, gen)
    mask_mod = score_mod = None
    if name == "prefix_lm":
        mask_mod = lambda b, h, qi, ki: (ki <= qi) | (ki < 100)  # noqa: E731
    elif name == "softcap":
        mask_mod = lambda b, h, qi, ki: qi >= ki  # noqa: E731
        score_mod = lambda s, b, h, qi, ki: 30.0 * torch.tanh(s / 30.0)  # noqa: E731
    elif name == "causal_expr":
        mask_mod = lambda b, h, qi, ki: qi >= ki  # noqa: E731
    else:
        mask_mod = lambda b, h, qi, ki: (qi >= ki) & (qi - ki < 256)  # noqa: E731
    o, lse = flashjit.attention(q, k, v, mask_mod=mask_mod, score_mod=score_mod, return_lse=True)
    ro, rlse = reference(q, k, v, mask_mod, score_mod)
    check(o, lse, ro, rlse, dtype)


def test_causal_expression_runs_the_builtin_kernel():
    spec = flashjit.Spec(dtype="bf16", head_dim=64, mask=lambda b, h, qi, ki: qi >= ki)
    builtin = flashjit.Spec(dtype="bf16", head_dim=64, mask="causal", align="top_left")
    ir_custom = flashjit.emit_ir(spec, arch="sm_90a")
    ir_builtin = flashjit.emit_ir(builtin, arch="sm_90a")
    # Same loop (a band) and the same ops; only the kernel name differs.
    strip = lambda s: [l for l in s.splitlines() if "kernel @" not in l]  # noqa: E731
    assert strip(ir_custom) == strip(ir_builtin)


def test_matches_flex_attention():
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    gen = torch.Generator(device="cuda").manual_seed(3)
    dtype = torch.bfloat16
    q, k, v = rand(1, 4, 512, 64, dtype, gen), rand(1, 4, 512, 64, dtype, gen), rand(1, 4, 512, 64, dtype, gen)
    doc = doc_ids(512, gen)
    bias = torch.randn(4, 512, generator=gen, device="cuda")

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[h, kv_idx]

    bm = flex.create_block_mask(mask_mod, 1, 4, 512, 512, device="cuda")
    ref = flex.flex_attention(q, k, v, score_mod=score_mod, block_mask=bm)
    o = flashjit.attention(q, k, v, mask_mod=mask_mod, score_mod=score_mod)
    err = (o.float() - ref.float()).norm() / ref.float().norm()
    assert err.item() < 2e-2, err.item()


def test_out_of_bounds_capture_is_refused():
    gen = torch.Generator(device="cuda").manual_seed(4)
    q = rand(1, 2, 300, 64, torch.float16, gen)
    short = torch.zeros(299, dtype=torch.int32, device="cuda")
    with pytest.raises(flashjit.ArgumentError, match="captures.short"):
        flashjit.attention(q, q, q, mask_mod=lambda b, h, qi, ki: short[qi] == short[ki])


def test_named_variants_from_flashjit_masks():
    from flashjit import masks

    gen = torch.Generator(device="cuda").manual_seed(5)
    dtype = torch.bfloat16
    q, k, v = rand(1, 4, 600, 64, dtype, gen), rand(1, 4, 600, 64, dtype, gen), rand(1, 4, 600, 64, dtype, gen)
    doc = doc_ids(600, gen)
    table = torch.randn(4, 129, generator=gen, device="cuda")
    mask_mod = masks.and_(masks.causal(), masks.document(doc))
    for score_mod in (masks.softcap(20.0), masks.relative_bias(table, 64), masks.alibi(torch.rand(4, device="cuda"))):
        o, lse = flashjit.attention(q, k, v, mask_mod=mask_mod, score_mod=score_mod, return_lse=True)
        ro, rlse = reference(q, k, v, mask_mod, score_mod)
        check(o, lse, ro, rlse, dtype)
