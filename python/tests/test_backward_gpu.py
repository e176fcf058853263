"""GPU tests of the backward through autograd: flashjit.attention's gradients against a
float64 PyTorch reference (dense scores, the same mask and score_mod written in torch).

Masks (built-in and mask_mod), score_mod through its symbolic derivative, GQA with a ratio
that is not a power of two, seqlen_q != seqlen_k, odd lengths, both layouts, fp16 and bf16.
Fully masked rows get zero gradients.
"""

import math

import pytest

import flashjit

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)

TOL = {torch.bfloat16: 3e-2, torch.float16: 6e-3}  # relative Frobenius error per gradient


def reference_grads(q, k, v, dout, visible, score_mod=None, scale=None):
    """float64 attention from the definition, and its gradients by torch autograd."""
    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    kk, vv = k64.repeat_interleave(group, dim=1), v64.repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q64 @ kk.transpose(-1, -2)) * scale
    b, h, nq, nk = s.shape
    bi = torch.arange(b, device=q.device).view(b, 1, 1, 1)
    hi = torch.arange(h, device=q.device).view(1, h, 1, 1)
    qi = torch.arange(nq, device=q.device).view(1, 1, nq, 1)
    ki = torch.arange(nk, device=q.device).view(1, 1, 1, nk)
    if score_mod is not None:
        s = score_mod(s, bi, hi, qi, ki)
    vis = visible(bi, hi, qi, ki).expand(b, h, nq, nk)
    s = s.masked_fill(~vis, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # a row with no key: p = 0
    o = p @ vv
    o.backward(dout.double())
    return q64.grad, k64.grad, v64.grad, vis.any(dim=-1)


def stored_o_term(o, ref_o, dout, s):
    """The term that makes float64 autograd give the backward of the O flashjit stored.

    The backward's dS is P * (dP - D) with D = rowsum(dO * O) from the stored O, rounded to
    the dtype: dS = exact dS - (D - D_exact) * d lse / d S. A capture's gradient is a sum whose
    terms cancel (each row of dS sums to 0), so that rounding alone moves it by up to tens
    of percent, in any implementation. Add this (D - D_exact constant) to the loss for a
    reference against which capture gradients are checked tightly."""
    delta = (dout.double() * (o.detach().double() - ref_o.detach())).sum(-1)
    lse = torch.logsumexp(s, dim=-1)
    return -(delta * torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))).sum()


CAPTURE_TOL = 5e-3  # capture gradients against the backward of the stored O: fp32 arithmetic


def rel(got, ref):
    return ((got.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check(q, k, v, visible, score_mod_ref=None, **kwargs):
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = flashjit.attention(qg, kg, vg, **kwargs)
    dout = torch.randn_like(o)
    o.backward(dout)
    rq, rk, rv, has_key = reference_grads(q, k, v, dout, visible, score_mod_ref)
    tol = TOL[q.dtype]
    for name, got, ref in (("dq", qg.grad, rq), ("dk", kg.grad, rk), ("dv", vg.grad, rv)):
        assert torch.isfinite(got).all(), name
        assert rel(got, ref) < tol, (name, rel(got, ref))
    # rows that see no key: exactly zero dq
    assert torch.all(qg.grad.transpose(1, 2)[~has_key.transpose(1, 2)] == 0)
    return qg.grad


def make(b, hq, hkv, nq, nk, d, dtype, bshd=False):
    def t(h, n):
        if bshd:  # (batch, seqlen, heads, dim) memory, passed as a transposed view
            return torch.randn(b, n, h, d, device="cuda", dtype=dtype).transpose(1, 2)
        return torch.randn(b, h, n, d, device="cuda", dtype=dtype)
    return t(hq, nq), t(hkv, nk), t(hkv, nk)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(2, 4, 4, 17, 17, 64), (1, 6, 2, 257, 100, 128), (2, 3, 1, 100, 333, 64)])
@pytest.mark.parametrize("mask", ["none", "causal", "window"])
def test_builtin_masks(dtype, shape, mask):
    b, hq, hkv, nq, nk, d = shape
    q, k, v = make(b, hq, hkv, nq, nk, d, dtype, bshd=nq == 257)
    off = nk - nq  # bottom-right alignment
    if mask == "none":
        check(q, k, v, lambda b_, h, i, j: torch.ones_like(i + j, dtype=torch.bool))
    elif mask == "causal":
        check(q, k, v, lambda b_, h, i, j: j <= i + off, causal=True)
    else:
        check(q, k, v, lambda b_, h, i, j: (j <= i + off) & (j >= i + off - 40), causal=True, window=(40, 0))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mask_mod_and_score_mod(dtype):
    q, k, v = make(2, 3, 1, 300, 300, 64, dtype)
    doc = (torch.arange(300, device="cuda") // 70).to(torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    check(q, k, v, lambda b_, h, i, j: (doc[i] == doc[j]) & (i >= j), mask_mod=mask_mod)

    def softcap(score, b, h, q_idx, kv_idx):
        return 20.0 * torch.tanh(score / 20.0)

    check(q, k, v, lambda b_, h, i, j: j <= i, score_mod_ref=softcap, score_mod=softcap, causal=True)


def test_fully_masked_rows_get_zero_gradients():
    q, k, v = make(1, 2, 2, 200, 200, 64, torch.bfloat16)

    def mask_mod(b, h, q_idx, kv_idx):
        return (q_idx >= 100) & (kv_idx <= q_idx)

    dq = check(q, k, v, lambda b_, h, i, j: (i >= 100) & (j <= i), mask_mod=mask_mod)
    assert torch.all(dq[:, :, :100] == 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("deterministic", [False, True])
def test_captured_tensors_get_gradients(dtype, deterministic):
    """A learnable relative-bias table and ALiBi-style slopes: their gradients against float64
    autograd through the same score_mod; a mask-only capture gets None."""
    b, hq, hkv, nq, nk, d = 2, 4, 2, 200, 300, 64
    q, k, v = make(b, hq, hkv, nq, nk, d, dtype)
    table = (0.1 * torch.randn(hq, 64, device="cuda")).requires_grad_(True)
    slopes = (0.5 * torch.rand(hq, device="cuda")).requires_grad_(True)
    doc = (torch.arange(nk, device="cuda", dtype=torch.int32) // 128)

    def score_mod(score, b_, h, q_idx, kv_idx):
        return score * (1.0 + 0.1 * slopes[h]) + table[h, torch.clamp(kv_idx - q_idx + 32, 0, 63)]

    def mask_mod(b_, h, q_idx, kv_idx):
        return doc[kv_idx] <= doc[q_idx % nk]

    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = flashjit.attention(qg, kg, vg, score_mod=score_mod, mask_mod=mask_mod, deterministic=deterministic)
    dout = torch.randn_like(o)
    o.backward(dout)

    # float64 reference with autograd into the same tensors' copies
    t64, s64 = table.detach().double().requires_grad_(True), slopes.detach().double().requires_grad_(True)

    def score_ref(s, bi, hi, qi, ki):
        return s * (1.0 + 0.1 * s64[hi]) + t64[hi, torch.clamp(ki - qi + 32, 0, 63)]

    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    group = hq // hkv
    kk, vv = k64.repeat_interleave(group, dim=1), v64.repeat_interleave(group, dim=1)
    s = (q64 @ kk.transpose(-1, -2)) / math.sqrt(d)
    bi = torch.arange(b, device="cuda").view(b, 1, 1, 1)
    hi = torch.arange(hq, device="cuda").view(1, hq, 1, 1)
    qi = torch.arange(nq, device="cuda").view(1, 1, nq, 1)
    ki = torch.arange(nk, device="cuda").view(1, 1, 1, nk)
    s = score_ref(s, bi, hi, qi, ki).masked_fill(~(doc[ki] <= doc[qi % nk]), float("-inf"))
    ref_o = torch.softmax(s, dim=-1).nan_to_num(0.0) @ vv
    ((ref_o * dout.double()).sum() + stored_o_term(o, ref_o, dout, s)).backward()
    tol = TOL[dtype]
    assert table.grad is not None and slopes.grad is not None
    assert rel(table.grad, t64.grad) < CAPTURE_TOL, rel(table.grad, t64.grad)
    assert rel(slopes.grad, s64.grad) < CAPTURE_TOL, rel(slopes.grad, s64.grad)
    assert rel(qg.grad, q64.grad) < tol and rel(kg.grad, k64.grad) < tol and rel(vg.grad, v64.grad) < tol


def test_only_a_capture_requiring_grad_makes_the_call_differentiable():
    q, k, v = make(1, 2, 2, 64, 64, 64, torch.bfloat16)
    bias = torch.zeros(2, device="cuda", requires_grad=True)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[h]

    o = flashjit.attention(q, k, v, score_mod=score_mod)
    assert o.requires_grad
    o.sum().backward()
    # softmax is shift-invariant per row: a per-head bias has zero exact gradient, and the
    # backward of the stored O gives it sum(dO * (O_exact - O)) per head (stored_o_term)
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    ref_o = torch.softmax(s, dim=-1) @ v.double()
    want = (ref_o - o.detach().double()).sum(dim=(0, 2, 3))
    assert bias.grad is not None
    assert torch.allclose(bias.grad.double(), want, rtol=1e-2, atol=1e-4), (bias.grad, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(2, 6, 2, 300, 257, 64), (1, 3, 1, 129, 1000, 128)])
def test_deterministic_backward_is_bit_identical_and_accurate(dtype, shape):
    b, hq, hkv, nq, nk, d = shape
    q, k, v = make(b, hq, hkv, nq, nk, d, dtype)
    doc = torch.arange(nk, device="cuda", dtype=torch.int32) // 100

    def mask_mod(b_, h, q_idx, kv_idx):
        return (doc[q_idx % nk] == doc[kv_idx]) & (kv_idx <= q_idx + nk - nq)

    dq = check(q, k, v, lambda b_, h, i, j: (doc[i % nk] == doc[j]) & (j <= i + nk - nq), mask_mod=mask_mod,
               deterministic=True)
    dout = torch.randn(b, hq, nq, d, device="cuda", dtype=dtype)
    first = None
    for _ in range(10):
        qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        flashjit.attention(qg, kg, vg, mask_mod=mask_mod, deterministic=True).backward(dout)
        grads = (qg.grad, kg.grad, vg.grad)
        if first is None:
            first = grads
        else:
            for a, g in zip(first, grads):
                assert torch.equal(a, g)
    assert torch.isfinite(dq).all()


@pytest.mark.parametrize("deterministic", [False, True])
def test_repeated_calls_take_the_checked_fast_path_and_keep_gradients(deterministic):
    """The second and later calls of a signature that autograd records go straight to the
    launch (_launch_fast_grad): same outputs and gradients as the first, checked call, the
    deterministic flag honoured, and a mismatching call after it still raises before a launch."""
    torch.manual_seed(7)
    q, k, v = make(2, 6, 2, 130, 130, 64, torch.bfloat16)
    dout = torch.randn(2, 6, 130, 64, device="cuda", dtype=torch.bfloat16)
    grads = []
    for _ in range(3):
        qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        o, lse = flashjit.attention(qg, kg, vg, causal=True, return_lse=True, deterministic=deterministic)
        assert o.requires_grad and not lse.requires_grad
        o.backward(dout)
        grads.append((o.detach(), lse, qg.grad, kg.grad, vg.grad))
    for later in grads[1:]:
        for a, b in zip(grads[0][:2], later[:2]):
            assert torch.equal(a, b)
        for a, b in zip(grads[0][2:], later[2:]):
            assert torch.equal(a, b) if deterministic else rel(b, a.double()) < 1e-3
    rq, rk, rv, _ = reference_grads(q, k, v, dout, lambda b, h, i, j: j <= i)
    for got, ref in zip(grads[-1][2:], (rq, rk, rv)):
        assert rel(got, ref) < TOL[torch.bfloat16]
    # Same signature, a batch mismatch between q and k: refused with the general path's error.
    k_bad = torch.randn(1, 2, 130, 64, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="batch"):
        flashjit.attention(q.clone().requires_grad_(True), k_bad, v, causal=True, deterministic=deterministic)
    # A non-contiguous last dim with the same signature: the general path names the tensor.
    q_t = q.transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_(True)
    with pytest.raises(ValueError, match="q's last dimension must be contiguous"):
        flashjit.attention(q_t, k, v, causal=True, deterministic=deterministic)
