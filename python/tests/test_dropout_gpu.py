"""GPU tests of attention dropout (issue 11) from Python: flashjit.attention(dropout_p=...).

- Forward and backward against a float64 torch reference that applies the same keep-mask,
  read from flashjit.dropout_keep_mask (the host's definition of the kernels' Philox numbers):
  causal, mask_mod, score_mod, GQA 3:1, odd lengths, fp16 and bf16, deterministic=True.
- The kernels drop exactly the keep-mask's elements: with V (and dO) the identity, O (and dV)
  are nonzero exactly where an element was kept.
- The RNG contract: torch.manual_seed reproduces a call, two calls differ, generator= and
  dropout_state= choose the state, dropout_p=0 changes nothing and draws nothing.
- CUDA-graph capture of forward+backward: replays draw new masks, forward and backward of one
  replay the same; torch.compile(fullgraph=True); torch.library.opcheck on both ops.
"""

import math

import pytest

import flashjit
from flashjit._dropout import keep_scale

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)

from flashjit import _torch_ops  # noqa: E402

OPS = _torch_ops.ops(torch)
FWD_TOL = {torch.bfloat16: 2e-2, torch.float16: 5e-3}  # relative Frobenius error of O
GRAD_TOL = {torch.bfloat16: 3e-2, torch.float16: 6e-3}  # of dq, dk, dv (test_backward_gpu.py's)
LSE_TOL = 1e-2


def rel(got, ref):
    return ((got.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def make(b, hq, hkv, nq, nk, d, dtype, bshd=False, seed=0):
    g = torch.Generator(device="cuda").manual_seed(1000 + seed)

    def t(h, n):
        if bshd:  # (batch, seqlen, heads, dim) memory, passed as a transposed view
            return torch.randn(b, n, h, d, device="cuda", dtype=dtype, generator=g).transpose(1, 2)
        return torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g)

    return t(hq, nq), t(hkv, nk), t(hkv, nk)


def state_of(seed, offset=0):
    return torch.tensor([seed, offset], dtype=torch.int64, device="cuda")


def reference(q, k, v, dout, visible, keep, p, score_mod=None):
    """float64 O = (softmax(S) ∘ Z) V with Z = keep / (1 - p) (p as the kernels round it), the
    undropped LSE, and the gradients by autograd."""
    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    kk, vv = k64.repeat_interleave(group, dim=1), v64.repeat_interleave(group, dim=1)
    s = (q64 @ kk.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    b, h, nq, nk = s.shape
    bi = torch.arange(b, device="cuda").view(b, 1, 1, 1)
    hi = torch.arange(h, device="cuda").view(1, h, 1, 1)
    qi = torch.arange(nq, device="cuda").view(1, 1, nq, 1)
    ki = torch.arange(nk, device="cuda").view(1, 1, 1, nk)
    if score_mod is not None:
        s = score_mod(s, bi, hi, qi, ki)
    vis = visible(bi, hi, qi, ki).expand(b, h, nq, nk)
    s = s.masked_fill(~vis, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    prob = torch.softmax(s, dim=-1).nan_to_num(0.0)  # a row with no key: 0
    o = (prob * (keep.double() * keep_scale(p))) @ vv
    o.backward(dout.double())
    return o.detach(), lse.detach(), (q64.grad, k64.grad, v64.grad), vis.any(dim=-1)


def check(q, k, v, visible, p=0.2, score_mod_ref=None, seed=7, offset=3, **kwargs):
    """attention(dropout_p=p) with a chosen RNG state against the reference with that state's
    keep-mask; returns (o, dq, dk, dv)."""
    b, hq, nq, nk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    state = state_of(seed, offset)
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o, lse = flashjit.attention(qg, kg, vg, dropout_p=p, dropout_state=state, return_lse=True, **kwargs)
    g = torch.Generator(device="cuda").manual_seed(seed)
    dout = torch.randn(o.shape, device="cuda", dtype=o.dtype, generator=g)
    o.backward(dout)
    keep = flashjit.dropout_keep_mask(b, hq, nq, nk, p, state)
    assert keep.shape == (b, hq, nq, nk) and keep.dtype == torch.bool and keep.device == q.device
    kept = keep.float().mean().item()
    assert abs(kept - (1 - p)) < 0.05, kept
    ref_o, ref_lse, ref_grads, has_key = reference(q, k, v, dout, visible, keep, p, score_mod_ref)
    assert torch.isfinite(o).all()
    assert rel(o.detach(), ref_o) < FWD_TOL[q.dtype], rel(o.detach(), ref_o)
    # the LSE is the undropped softmax's
    assert torch.all(lse[~has_key] == float("-inf"))
    assert (lse[has_key].double() - ref_lse[has_key]).abs().max().item() < LSE_TOL
    for name, got, ref in zip(("dq", "dk", "dv"), (qg.grad, kg.grad, vg.grad), ref_grads):
        assert torch.isfinite(got).all(), name
        assert rel(got, ref) < GRAD_TOL[q.dtype], (name, rel(got, ref))
    # the same state without dropout's mask would be far off: the mask matters
    no_drop = reference(q, k, v, dout, visible, torch.ones_like(keep), 0.0, score_mod_ref)[0]
    assert rel(o.detach(), no_drop) > 5 * FWD_TOL[q.dtype]
    return o.detach(), qg.grad, kg.grad, vg.grad


# --- forward and backward against the float64 reference --------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(2, 3, 3, 128, 128, 64), (1, 6, 2, 257, 100, 128), (2, 3, 1, 100, 333, 64)])
@pytest.mark.parametrize("mask", ["none", "causal"])
def test_reference(dtype, shape, mask):
    b, hq, hkv, nq, nk, d = shape
    q, k, v = make(b, hq, hkv, nq, nk, d, dtype, bshd=nq == 257)
    off = nk - nq  # bottom-right alignment
    if mask == "none":
        check(q, k, v, lambda b_, h, i, j: torch.ones_like(i + j, dtype=torch.bool))
    else:
        check(q, k, v, lambda b_, h, i, j: j <= i + off, causal=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mask_mod_score_mod_gqa(dtype):
    q, k, v = make(2, 6, 2, 301, 301, 64, dtype)  # GQA 3:1, odd lengths
    doc = (torch.arange(301, device="cuda") // 70).to(torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    def softcap(score, b, h, q_idx, kv_idx):
        return 20.0 * torch.tanh(score / 20.0)

    check(q, k, v, lambda b_, h, i, j: (doc[i] == doc[j]) & (i >= j), p=0.3, mask_mod=mask_mod)
    check(q, k, v, lambda b_, h, i, j: j <= i, p=0.1, score_mod_ref=softcap, score_mod=softcap, causal=True)
    check(q, k, v, lambda b_, h, i, j: (doc[i] == doc[j]) & (i >= j), p=0.5, score_mod_ref=softcap,
          mask_mod=mask_mod, score_mod=softcap)


def test_block_mask():
    """A block mask (flashjit.create_block_mask of a document + causal mask_mod) with dropout:
    the same result as the mask it stands for, against the reference."""
    n = 700
    q, k, v = make(1, 4, 2, n, n, 128, torch.bfloat16)
    doc = (torch.arange(n, device="cuda") // 180).to(torch.int32)
    fn = lambda b_, h, qi, ki: (doc[qi] == doc[ki]) & (qi >= ki)  # noqa: E731
    bm = flashjit.create_block_mask(fn, None, None, n, n, BLOCK_SIZE=(128, 128))
    o_bm = check(q, k, v, lambda b_, h, i, j: (doc[i] == doc[j]) & (i >= j), p=0.2, block_mask=bm)[0]
    o_mm = check(q, k, v, lambda b_, h, i, j: (doc[i] == doc[j]) & (i >= j), p=0.2, mask_mod=fn)[0]
    assert rel(o_bm, o_mm.double()) < FWD_TOL[q.dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_deterministic(dtype):
    q, k, v = make(1, 6, 2, 200, 333, 128, dtype)
    visible = lambda b_, h, i, j: j <= i + 133  # noqa: E731
    first = check(q, k, v, visible, p=0.25, causal=True, deterministic=True)
    for _ in range(5):
        again = check(q, k, v, visible, p=0.25, causal=True, deterministic=True)
        for a, g in zip(first, again):
            assert torch.equal(a, g)


def test_window_and_p_rounding():
    """A p that is not a multiple of 1/256 runs with the rounded one (the reference's keep_scale)."""
    q, k, v = make(2, 4, 4, 150, 150, 64, torch.float16)
    p = 0.123456789
    assert keep_scale(p) == 256.0 / (256.0 - math.floor(p * 256))
    check(q, k, v, lambda b_, h, i, j: (j <= i) & (j >= i - 40), p=p, causal=True, window=(40, 0))


# --- the kernels' mask is the keep-mask ------------------------------------------------------


def identity_case(dtype, b=2, h=3, n=64, p=0.3, grad=True):
    """q, k small (P > 0 everywhere, ~1/n), V and dO the identity (n = head_dim_v = 64): then
    O[i, j] = P[i, j] Z[i, j] and dV[j, i] = P[i, j] Z[i, j], nonzero exactly where kept."""
    g = torch.Generator(device="cuda").manual_seed(5)
    q = 0.1 * torch.randn(b, h, n, 64, device="cuda", dtype=dtype, generator=g)
    k = 0.1 * torch.randn(b, h, n, 64, device="cuda", dtype=dtype, generator=g)
    v = torch.eye(n, device="cuda", dtype=dtype).expand(b, h, n, n).contiguous()
    dout = v.clone()
    return [t.requires_grad_(grad) for t in (q, k, v)] + [dout]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_kernels_drop_exactly_the_keep_mask(dtype, p):
    q, k, v, dout = identity_case(dtype, p=p)
    state = state_of(0x1234_5678_9ABC, 77)
    o = flashjit.attention(q, k, v, dropout_p=p, dropout_state=state)
    o.backward(dout)
    keep = flashjit.dropout_keep_mask(2, 3, 64, 64, p, state)
    assert torch.equal(o.detach() != 0, keep)
    assert torch.equal(v.grad.transpose(-1, -2) != 0, keep)  # bwd_dkdv regenerated the same mask
    assert abs(keep.float().mean().item() - (1 - p)) < 0.03


# --- the RNG contract --------------------------------------------------------------------------


def test_manual_seed_reproduces_and_calls_differ():
    q, k, v = make(2, 4, 2, 200, 200, 64, torch.bfloat16)
    torch.manual_seed(123)
    o1 = flashjit.attention(q, k, v, causal=True, dropout_p=0.2)
    o2 = flashjit.attention(q, k, v, causal=True, dropout_p=0.2)
    torch.manual_seed(123)
    o3 = flashjit.attention(q, k, v, causal=True, dropout_p=0.2)
    assert not torch.equal(o1, o2)  # each call draws a fresh state
    assert torch.equal(o1, o3)
    # the documented draw: one torch.randint(0, 2**62, (2,), int64) on q's device
    torch.manual_seed(123)
    state = torch.randint(0, 2**62, (2,), dtype=torch.int64, device="cuda")
    assert torch.equal(flashjit.attention(q, k, v, causal=True, dropout_p=0.2, dropout_state=state), o1)


def test_generator():
    q, k, v = make(1, 2, 2, 100, 100, 64, torch.float16)
    g1 = torch.Generator(device="cuda").manual_seed(42)
    a = flashjit.attention(q, k, v, dropout_p=0.3, generator=g1)
    b = flashjit.attention(q, k, v, dropout_p=0.3, generator=g1)
    assert not torch.equal(a, b)
    g2 = torch.Generator(device="cuda").manual_seed(42)
    assert torch.equal(flashjit.attention(q, k, v, dropout_p=0.3, generator=g2), a)
    g3 = torch.Generator(device="cuda").manual_seed(42)
    state = torch.randint(0, 2**62, (2,), dtype=torch.int64, device="cuda", generator=g3)
    assert torch.equal(flashjit.attention(q, k, v, dropout_p=0.3, dropout_state=state), a)
    # the default generator is untouched by a call with generator=
    torch.manual_seed(9)
    before = torch.cuda.get_rng_state()
    flashjit.attention(q, k, v, dropout_p=0.3, generator=g1)
    assert torch.equal(torch.cuda.get_rng_state(), before)


def test_zero_p_changes_nothing():
    q, k, v = make(2, 4, 2, 130, 130, 64, torch.bfloat16)
    plain = flashjit.attention(q, k, v, causal=True)
    torch.manual_seed(1)
    before = torch.cuda.get_rng_state()
    stats = flashjit.runtime_stats()
    assert torch.equal(flashjit.attention(q, k, v, causal=True, dropout_p=0.0), plain)
    assert torch.equal(flashjit.attention(q, k, v, causal=True, dropout_p=0.0, dropout_state=state_of(1)), plain)
    assert torch.equal(torch.cuda.get_rng_state(), before)  # no draw
    assert flashjit.runtime_stats()["compiles"] == stats["compiles"]  # the same kernel


def test_dropout_state_forms_and_errors():
    q, k, v = make(1, 2, 2, 64, 64, 64, torch.float16)
    want = flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=state_of(11, 22))
    assert torch.equal(flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=(11, 22)), want)
    # a uint64 seed beyond 2^63 and the int64 with its bits are one state
    big = (1 << 64) - 5
    assert torch.equal(flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=(big, 1)),
                       flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=state_of(-5, 1)))
    assert torch.equal(flashjit.dropout_keep_mask(1, 2, 64, 64, 0.2, (big, 1)).cpu(),
                       flashjit.dropout_keep_mask(1, 2, 64, 64, 0.2, state_of(-5, 1)).cpu())
    with pytest.raises(ValueError, match="dropout_state"):
        flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=state_of(1, 2).int())
    with pytest.raises(ValueError, match="dropout_state"):
        flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=torch.zeros(3, dtype=torch.int64, device="cuda"))
    with pytest.raises(ValueError, match="dropout_state"):
        flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="dropout_state"):
        flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=torch.zeros(4, dtype=torch.int64, device="cuda")[::2])
    with pytest.raises(ValueError, match="not both"):
        flashjit.attention(q, k, v, dropout_p=0.2, dropout_state=state_of(1), generator=torch.Generator(device="cuda"))
    for p in (1.0, -0.1, float("nan")):
        with pytest.raises(flashjit.SpecError, match="dropout_p") as info:
            flashjit.attention(q, k, v, dropout_p=p)
        assert info.value.field == "dropout_p"
    # the op itself: a dropout spec needs the state
    spec = flashjit.Spec(dtype="fp16", head_dim=64, num_heads_q=2, dropout_p=0.2, return_lse=True).to_json()
    with pytest.raises(ValueError, match="dropout_state"):
        OPS.attention_fwd(q, k, v, spec, [])


def test_out_arguments_and_stream():
    q, k, v = make(1, 2, 2, 100, 100, 64, torch.bfloat16)
    state = state_of(5, 6)
    want, want_lse = flashjit.attention(q, k, v, dropout_p=0.4, dropout_state=state, return_lse=True)
    o, lse = torch.full_like(want, float("nan")), torch.full_like(want_lse, float("nan"))
    flashjit.attention(q, k, v, dropout_p=0.4, dropout_state=state, out=o, lse_out=lse)
    assert torch.equal(o, want) and torch.equal(lse, want_lse)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    o2 = flashjit.attention(q, k, v, dropout_p=0.4, dropout_state=state, stream=side)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(o2, want)


# --- CUDA graphs ------------------------------------------------------------------------------


def warm_up(fn):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_graph_replays_draw_new_masks(dtype):
    p = 0.3
    q, k, v, dout = identity_case(dtype, p=p)

    def step():
        q.grad = k.grad = v.grad = None
        o = flashjit.attention(q, k, v, dropout_p=p)
        o.backward(dout)
        return o

    warm_up(step)
    q.grad = k.grad = v.grad = None
    before = flashjit.runtime_stats()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        o = flashjit.attention(q, k, v, dropout_p=p)
        o.backward(dout)
    after = flashjit.runtime_stats()
    assert after["compiles"] == before["compiles"] and after["tunings"] == before["tunings"]
    masks = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        fwd_keep = o.detach() != 0
        # the backward of the replay regenerated the forward's mask (same state)
        assert torch.equal(v.grad.transpose(-1, -2) != 0, fwd_keep)
        assert abs(fwd_keep.float().mean().item() - (1 - p)) < 0.03
        masks.append(fwd_keep.clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])


def test_cuda_graph_with_a_given_state():
    """A state tensor written between replays: each replay equals an eager call with that state."""
    q, k, v = make(2, 4, 2, 200, 200, 64, torch.bfloat16)
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    dout = torch.randn_like(q)
    state = state_of(1, 2)

    def step():
        q.grad = k.grad = v.grad = None
        o = flashjit.attention(q, k, v, causal=True, dropout_p=0.2, dropout_state=state)
        o.backward(dout)
        return o

    warm_up(step)
    q.grad = k.grad = v.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        o = flashjit.attention(q, k, v, causal=True, dropout_p=0.2, dropout_state=state)
        o.backward(dout)
    for seed in (10, 20):
        state.copy_(state_of(seed, seed + 1))
        graph.replay()
        torch.cuda.synchronize()
        got = (o.detach().clone(), q.grad.clone(), k.grad.clone(), v.grad.clone())
        qe, ke, ve = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        oe = flashjit.attention(qe, ke, ve, causal=True, dropout_p=0.2, dropout_state=state_of(seed, seed + 1))
        oe.backward(dout)
        assert torch.equal(got[0], oe.detach())
        assert torch.equal(got[2], ke.grad) and torch.equal(got[3], ve.grad)
        assert rel(got[1], qe.grad.double()) < 1e-6  # dQ: fp32 atomics, run-dependent order


# --- torch.compile and the custom ops ------------------------------------------------------------


def fwd_bwd(fn, q, k, v, dout, *args):
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = fn(qg, kg, vg, *args)
    o.backward(dout)
    return o.detach().clone(), qg.grad, kg.grad, vg.grad


def test_compile_fullgraph():
    def fn(q, k, v, state):
        return flashjit.attention(q, k, v, causal=True, dropout_p=0.2, dropout_state=state)

    def drawn(q, k, v):
        return flashjit.attention(q, k, v, causal=True, dropout_p=0.2)

    q, k, v = make(2, 4, 2, 200, 200, 64, torch.bfloat16)
    dout = torch.randn_like(q)
    state = state_of(3, 4)
    eager = fwd_bwd(fn, q, k, v, dout, state)
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    got = fwd_bwd(compiled, q, k, v, dout, state)
    assert torch.equal(got[0], eager[0]) and torch.equal(got[2], eager[2]) and torch.equal(got[3], eager[3])
    assert rel(got[1], eager[1].double()) < 1e-6
    # a new state in the same graph
    with torch.no_grad():
        assert torch.equal(compiled(q, k, v, state_of(8, 9)), fn(q, k, v, state_of(8, 9)))

    # the state drawn inside the compiled graph: fresh per call, reproducible with manual_seed
    torch._dynamo.reset()
    compiled_drawn = torch.compile(drawn, fullgraph=True)
    torch.manual_seed(5)
    a = fwd_bwd(compiled_drawn, q, k, v, dout)
    b = fwd_bwd(compiled_drawn, q, k, v, dout)
    torch.manual_seed(5)
    c = fwd_bwd(compiled_drawn, q, k, v, dout)
    assert not torch.equal(a[0], b[0])
    assert torch.equal(a[0], c[0]) and torch.equal(a[3], c[3])
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(drawn)(q.detach().clone().requires_grad_(True), k, v)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()


def test_compile_p_zero_has_no_rng():
    """p = 0 under torch.compile: the same graph as without dropout (no randint)."""
    q, k, v = make(1, 2, 2, 64, 64, 64, torch.float16)
    torch._dynamo.reset()
    compiled = torch.compile(lambda q, k, v: flashjit.attention(q, k, v, dropout_p=0.0), fullgraph=True)
    with torch.no_grad():
        assert torch.equal(compiled(q, k, v), flashjit.attention(q, k, v))
    torch._dynamo.reset()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_opcheck(dtype):
    q, k, v = make(2, 4, 2, 96, 130, 64, dtype)
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    spec = flashjit.Spec(dtype=dtype, head_dim=64, num_heads_q=4, num_heads_kv=2, mask="causal", return_lse=True,
                         dropout_p=0.2).to_json()
    state = state_of(99, 100)
    torch.library.opcheck(OPS.attention_fwd, (q, k, v, spec, [], False, state))
    with torch.no_grad():
        o, lse = OPS.attention_fwd(q, k, v, spec, [], False, state)
    assert o.shape == (2, 4, 96, 64) and lse.shape == (2, 4, 96)
    assert torch.equal(o, flashjit.attention(q.detach(), k.detach(), v.detach(), causal=True, dropout_p=0.2,
                                             dropout_state=state))
    torch.library.opcheck(OPS.attention_bwd, (torch.randn_like(o), q.detach(), k.detach(), v.detach(), o, lse, spec,
                                              [], False, [], state))
