"""GPU tests of flashjit.attention under torch.compile and CUDA graphs: the custom ops
flashjit::attention_fwd / attention_bwd (torch.library.opcheck), torch.compile(fullgraph=True)
of forward and forward+backward with no graph break (causal, a mask_mod over a captured
tensor, a functools.partial made inside the compiled function, score_mod, a block mask,
dynamic shapes), and a CUDA-graph capture of forward+backward after an eager warm-up.

The compiled graphs call the same kernels as eager calls: forward outputs and dK/dV are
compared for equality, dQ (accumulated with atomics, so summed in a run-dependent order) to
1e-6 relative.
"""

import functools

import pytest

import flashjit

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)

from flashjit import _torch_ops  # noqa: E402

OPS = _torch_ops.ops(torch)
SEQ = 200
DQ_RTOL = 1e-6


def make(dtype=torch.bfloat16, b=2, hq=4, hkv=2, nq=SEQ, nk=SEQ, d=64, grad=False):
    g = torch.Generator(device="cuda").manual_seed(1234 + nq + 7 * hq)
    ts = [torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g)
          for h, n in ((hq, nq), (hkv, nk), (hkv, nk))]
    return [t.requires_grad_(grad) for t in ts]


def docs_tensor(n=SEQ, size=70):
    return (torch.arange(n, device="cuda") // size).to(torch.int32)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def fwd_bwd(fn, q, k, v, dout):
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = fn(qg, kg, vg)
    o.backward(dout)
    return o.detach().clone(), qg.grad, kg.grad, vg.grad


def assert_same(got, want):
    o, dq, dk, dv = got
    eo, edq, edk, edv = want
    assert torch.equal(o, eo)
    assert torch.equal(dk, edk) and torch.equal(dv, edv)
    assert torch.isfinite(dq).all() and rel(dq, edq) <= DQ_RTOL, rel(dq, edq)


def assert_no_graph_break(fn, *args):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    torch._dynamo.reset()


# --- the custom ops ----------------------------------------------------------------------


def spec_json(dtype, mask="causal", **kw):
    return flashjit.Spec(dtype=dtype, head_dim=64, num_heads_q=4, num_heads_kv=2, mask=mask, return_lse=True,
                         **kw).to_json()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_opcheck_causal(dtype):
    q, k, v = make(dtype, nq=96, nk=130, grad=True)
    spec = spec_json(dtype)
    torch.library.opcheck(OPS.attention_fwd, (q, k, v, spec, []))
    with torch.no_grad():
        o, lse = OPS.attention_fwd(q, k, v, spec, [])
    assert o.shape == (2, 4, 96, 64) and o.dtype == dtype and lse.shape == (2, 4, 96) and lse.dtype == torch.float32
    torch.library.opcheck(OPS.attention_bwd, (torch.randn_like(o), q.detach(), k.detach(), v.detach(), o, lse, spec, []))


def test_opcheck_captured_tensor():
    docs = docs_tensor(128, 40)

    def mask_mod(b, h, q_idx, kv_idx):
        return (docs[q_idx] == docs[kv_idx]) & (q_idx >= kv_idx)

    q, k, v = make(torch.bfloat16, nq=128, nk=128, grad=True)
    spec = spec_json(torch.bfloat16, mask=mask_mod)
    torch.library.opcheck(OPS.attention_fwd, (q, k, v, spec, [docs]))
    with torch.no_grad():
        o, lse = OPS.attention_fwd(q, k, v, spec, [docs])
    eager = flashjit.attention(q.detach(), k.detach(), v.detach(), mask_mod=mask_mod)
    assert torch.equal(o, eager)
    torch.library.opcheck(OPS.attention_bwd, (torch.randn_like(o), q.detach(), k.detach(), v.detach(), o, lse, spec,
                                              [docs]))


def test_op_outputs_without_lse_and_empty_shapes():
    q, k, v = make(torch.float16, nq=64, nk=64)
    spec = flashjit.Spec(dtype="fp16", head_dim=64, num_heads_q=4, num_heads_kv=2).to_json()
    o, lse = OPS.attention_fwd(q, k, v, spec, [])
    assert lse.shape == (0,) and torch.equal(o, flashjit.attention(q, k, v))
    o, lse = OPS.attention_fwd(q, k[:, :, :0], v[:, :, :0], spec_json(torch.float16), [])
    assert torch.all(o == 0) and torch.all(lse == float("-inf"))


# --- torch.compile -----------------------------------------------------------------------

DOCS = None


def doc_mask(b, h, q_idx, kv_idx):  # reads the module-level DOCS tensor
    return DOCS[q_idx] == DOCS[kv_idx]


def doc_fn(docs, b, h, q_idx, kv_idx):
    return (docs[q_idx] == docs[kv_idx]) & (q_idx >= kv_idx)


def softcap(score, b, h, q_idx, kv_idx):
    return 20.0 * torch.tanh(score / 20.0)


def with_mask(mm):  # mm: a closure made outside the compiled function
    return lambda q, k, v: flashjit.attention(q, k, v, mask_mod=mm)


def variants():
    global DOCS
    DOCS = docs_tensor()
    return {
        "causal": lambda q, k, v: flashjit.attention(q, k, v, causal=True),
        "window": lambda q, k, v: flashjit.attention(q, k, v, causal=True, window=(48, 0)),
        "mask_mod_global": lambda q, k, v: flashjit.attention(q, k, v, mask_mod=doc_mask),
        "mask_mod_closure": with_mask(flashjit.masks.document(docs_tensor(SEQ, 33))),
        "score_mod": lambda q, k, v: flashjit.attention(q, k, v, score_mod=softcap, causal=True),
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["causal", "window", "mask_mod_global", "mask_mod_closure", "score_mod"])
def test_compile_forward_and_backward(dtype, name):
    fn = variants()[name]
    q, k, v = make(dtype)
    dout = torch.randn_like(q)
    with torch.no_grad():
        eager_o = fn(q, k, v)
    eager = fwd_bwd(fn, q, k, v, dout)
    assert torch.equal(eager[0], eager_o)
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)  # fullgraph: a graph break raises
    with torch.no_grad():
        assert torch.equal(compiled(q, k, v), eager_o)
    assert_same(fwd_bwd(compiled, q, k, v, dout), eager)
    qg = q.detach().clone().requires_grad_(True)
    assert_no_graph_break(fn, qg, k, v)


BIAS = None


def learned_bias(score, b, h, q_idx, kv_idx):  # reads the module-level BIAS (requires grad)
    return score + BIAS[h, torch.clamp(kv_idx - q_idx + 32, 0, 63)]


def test_compile_gradient_into_a_captured_tensor():
    """A learnable bias table read by score_mod gets its gradient under torch.compile as in
    eager (fp32 atomics: equal within a relative 1e-5, not bit for bit)."""
    global BIAS
    q, k, v = make(torch.bfloat16)
    dout = torch.randn_like(q)
    fn = lambda q, k, v: flashjit.attention(q, k, v, score_mod=learned_bias, causal=True)  # noqa: E731
    grads = []
    for compile_it in (False, True):
        BIAS = (0.1 * torch.randn(4, 64, device="cuda", generator=torch.Generator(device="cuda").manual_seed(3)))
        BIAS.requires_grad_(True)
        torch._dynamo.reset()
        f = torch.compile(fn, fullgraph=True) if compile_it else fn
        o, dq, dk, dv = fwd_bwd(f, q, k, v, dout)
        assert BIAS.grad is not None and torch.isfinite(BIAS.grad).all()
        grads.append((o, dk, dv, BIAS.grad.clone()))
    (o0, dk0, dv0, g0), (o1, dk1, dv1, g1) = grads
    assert torch.equal(o0, o1) and torch.equal(dk0, dk1) and torch.equal(dv0, dv1)
    assert rel(g1, g0) < 1e-5, rel(g1, g0)
    assert g0.abs().sum() > 0


def test_compile_partial_made_inside_over_an_input_tensor():
    def fn(q, k, v, docs):
        return flashjit.attention(q, k, v, mask_mod=functools.partial(doc_fn, docs))

    q, k, v = make()
    docs = docs_tensor()
    dout = torch.randn_like(q)
    eager = fwd_bwd(lambda a, b, c: fn(a, b, c, docs), q, k, v, dout)
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    assert_same(fwd_bwd(lambda a, b, c: compiled(a, b, c, docs), q, k, v, dout), eager)
    # other document boundaries: the same graph reads the new tensor
    docs2 = docs_tensor(SEQ, 45)
    with torch.no_grad():
        assert torch.equal(compiled(q, k, v, docs2), fn(q, k, v, docs2))
        assert not torch.equal(compiled(q, k, v, docs2), compiled(q, k, v, docs))


def test_compile_captured_tensor_updated_in_place():
    docs = docs_tensor()
    mm = flashjit.masks.document(docs)
    torch._dynamo.reset()
    compiled = torch.compile(lambda q, k, v: flashjit.attention(q, k, v, mask_mod=mm), fullgraph=True)
    q, k, v = make()
    with torch.no_grad():
        first = compiled(q, k, v)
        docs.copy_(docs_tensor(SEQ, 25))
        second = compiled(q, k, v)
        assert not torch.equal(first, second)
        assert torch.equal(second, flashjit.attention(q, k, v, mask_mod=mm))


def test_compile_closures_with_other_constants_compile_again():
    torch._dynamo.reset()
    compiled = torch.compile(lambda q, k, v, mm: flashjit.attention(q, k, v, mask_mod=mm), fullgraph=True)
    q, k, v = make()
    with torch.no_grad():
        for size in (32, 96):
            mm = flashjit.masks.sliding_window(size)
            assert torch.equal(compiled(q, k, v, mm), flashjit.attention(q, k, v, mask_mod=mm))


def test_compile_block_mask_and_return_lse():
    bm = flashjit.create_block_mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, None, None, SEQ, SEQ, BLOCK_SIZE=64)

    def fn(q, k, v):
        o, lse = flashjit.attention(q, k, v, block_mask=bm, return_lse=True)
        return o * 2, lse

    q, k, v = make()
    dout = torch.randn_like(q)
    eo, el = fn(q, k, v)
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    with torch.no_grad():
        co, clse = compiled(q, k, v)
    assert torch.equal(co, eo) and torch.equal(clse, el)
    assert_same(fwd_bwd(lambda a, b, c: compiled(a, b, c)[0], q, k, v, dout),
                fwd_bwd(lambda a, b, c: fn(a, b, c)[0], q, k, v, dout))


def test_compile_dynamic_shapes():
    torch._dynamo.reset()
    fn = lambda q, k, v: flashjit.attention(q, k, v, causal=True)  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True, dynamic=True)
    for n in (128, 200, 333):
        q, k, v = make(nq=n, nk=n)
        dout = torch.randn_like(q)
        assert_same(fwd_bwd(compiled, q, k, v, dout), fwd_bwd(fn, q, k, v, dout))


def test_compile_out_arguments():
    def fn(q, k, v, o, lse):
        return flashjit.attention(q, k, v, causal=True, out=o, lse_out=lse, return_lse=True)

    q, k, v = make()
    o, lse = torch.empty_like(q), torch.empty(2, 4, SEQ, device="cuda")
    torch._dynamo.reset()
    with torch.no_grad():
        ro, rl = torch.compile(fn, fullgraph=True)(q, k, v, o, lse)
        eo, el = flashjit.attention(q, k, v, causal=True, return_lse=True)
    assert torch.equal(o, eo) and torch.equal(lse, el) and torch.equal(ro, eo) and torch.equal(rl, el)


# --- CUDA graphs -------------------------------------------------------------------------


def test_compile_reduce_overhead():
    fn = lambda q, k, v: flashjit.attention(q, k, v, causal=True)  # noqa: E731
    q, k, v = make()
    dout = torch.randn_like(q)
    eager = fwd_bwd(fn, q, k, v, dout)
    torch._dynamo.reset()
    compiled = torch.compile(fn, mode="reduce-overhead", fullgraph=True)  # CUDA graphs (cudagraph trees)
    for _ in range(3):  # warm-up runs, then recorded graphs replayed
        got = fwd_bwd(compiled, q, k, v, dout)
    assert_same(got, eager)


@pytest.mark.parametrize("variant", ["causal", "mask_mod"])
def test_cuda_graph_capture_forward_backward(variant):
    docs = docs_tensor()

    def call(q, k, v):
        if variant == "causal":
            return flashjit.attention(q, k, v, causal=True)
        return flashjit.attention(q, k, v, mask_mod=functools.partial(doc_fn, docs))

    q, k, v = make(grad=True)
    dout = torch.randn_like(q)
    # Warm-up, eagerly: the first call of the variant compiles (or loads) its kernels.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            q.grad = k.grad = v.grad = None
            call(q, k, v).backward(dout)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    q.grad = k.grad = v.grad = None
    before = flashjit.runtime_stats()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        o = call(q, k, v)
        o.backward(dout)
    after = flashjit.runtime_stats()
    assert after["compiles"] == before["compiles"] and after["tunings"] == before["tunings"]

    nq, nk, nv = make(grad=False, nq=SEQ, nk=SEQ, hq=4, b=2, d=64, dtype=torch.bfloat16)
    nq, nk, nv = nq * 0.5 + 0.1, nk.flip(2), nv * 2.0
    ndout = torch.randn_like(dout)
    with torch.no_grad():
        for dst, src in ((q, nq), (k, nk), (v, nv), (dout, ndout)):
            dst.copy_(src)
    docs.copy_(docs_tensor(SEQ, 55))
    graph.replay()
    torch.cuda.synchronize()
    assert_same((o.detach(), q.grad, k.grad, v.grad), fwd_bwd(call, nq, nk, nv, ndout))
