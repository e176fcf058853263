"""GPU tests of block masks: flashjit.create_block_mask against the dense mask reduced per
block (and against FlexAttention's create_block_mask), and attention(block_mask=) with
flashjit and FlexAttention BlockMasks of random sparsity, empty rows, every block size,
against a float64 reference. Skipped where torch or a GPU is missing."""

import math

import pytest

import flashjit

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if not flashjit.gpu_available():
    pytest.skip("flashjit: " + flashjit.gpu_unavailable_reason(), allow_module_level=True)

from test_variants_gpu import check, doc_ids, rand, reference  # noqa: E402


def dense_cells(mask_mod, B, H, sq, sk, bq, bk):
    """The definition: the dense mask reduced per (q block, kv block)."""
    b = torch.arange(B, device="cuda").view(B, 1, 1, 1)
    h = torch.arange(H, device="cuda").view(1, H, 1, 1)
    q = torch.arange(sq, device="cuda").view(1, 1, sq, 1)
    k = torch.arange(sk, device="cuda").view(1, 1, 1, sk)
    m = mask_mod(b, h, q, k).expand(B, H, sq, sk)
    nq, nk = -(-sq // bq), -(-sk // bk)
    pad = torch.zeros(B, H, nq * bq, nk * bk, dtype=torch.int8, device="cuda")
    real = torch.zeros_like(pad)
    pad[:, :, :sq, :sk] = m.to(torch.int8)
    real[:, :, :sq, :sk] = 1
    vis = pad.view(B, H, nq, bq, nk, bk).sum((3, 5))
    cnt = real.view(B, H, nq, bq, nk, bk).sum((3, 5))
    return torch.where(vis == 0, 0, torch.where(vis == cnt, 2, 1)).to(torch.int32)


@pytest.mark.parametrize("sq,sk,bs", [(1, 1, 128), (17, 1000, (64, 32)), (1000, 17, (100, 7)), (4097, 4097, 128),
                                      (1000, 1000, 1)])
def test_create_block_mask_matches_the_dense_definition(sq, sk, bs):
    gen = torch.Generator(device="cuda").manual_seed(sq + sk)
    docs = doc_ids(max(sq, sk), gen)
    masks = {
        "causal": lambda b, h, q, k: q >= k,
        "document": lambda b, h, q, k: (docs[q] == docs[k]) & (q >= k),
        "window": lambda b, h, q, k: (q - k).abs() <= 37,
        "per head": lambda b, h, q, k: (h == 1) | (k % 5 == 0),
    }
    bq, bk = (bs, bs) if isinstance(bs, int) else bs
    for name, fn in masks.items():
        bm = flashjit.create_block_mask(fn, 2, 3, sq, sk, device="cuda", BLOCK_SIZE=bs)
        assert bm.BLOCK_SIZE == (bq, bk) and bm.seq_lengths == (sq, sk)
        want = dense_cells(fn, 2, 3, sq, sk, bq, bk)
        assert torch.equal(bm.cells, want), name


def test_create_block_mask_agrees_with_flex_and_round_trips():
    from torch.nn.attention.flex_attention import create_block_mask as flex_cbm

    gen = torch.Generator(device="cuda").manual_seed(1)
    docs = doc_ids(2048, gen, docs=5)
    fn = lambda b, h, q, k: (docs[q] == docs[k]) & (q >= k)  # noqa: E731
    ours = flashjit.create_block_mask(fn, None, None, 2048, 2048, device="cuda")
    flex = flex_cbm(fn, None, None, 2048, 2048, device="cuda")
    assert torch.equal(flashjit.BlockMask.from_flex(flex).cells, ours.cells)
    assert torch.equal(flashjit.BlockMask.from_flex(ours.to_flex()).cells, ours.cells)


def random_flex_mask(B, H, nq, nk, bq, bk, density, gen, mask_mod=None):
    from torch.nn.attention.flex_attention import BlockMask as FlexBlockMask

    r = torch.rand(B, H, -(-nq // bq), -(-nk // bk), generator=gen, device="cuda")
    partial = r < density / 2
    full = (r >= density / 2) & (r < density)
    full[:, :, 1::4] = False  # every fourth block row: empty
    partial[:, :, 1::4] = False

    def lists(sel):
        num = sel.sum(-1, dtype=torch.int32)
        idx = torch.argsort((~sel).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return num, idx

    pn, pi = lists(partial)
    fn, fi = lists(full)
    kw = dict(BLOCK_SIZE=(bq, bk), mask_mod=mask_mod)
    try:
        return FlexBlockMask.from_kv_blocks(pn, pi, fn, fi, seq_lengths=(nq, nk), **kw), partial, full
    except TypeError:
        return FlexBlockMask.from_kv_blocks(pn, pi, fn, fi, **kw), partial, full


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sq,sk,bs,heads", [(17, 1000, (128, 128), (6, 2)), (1000, 17, (64, 32), (7, 1)),
                                            (1000, 1000, (256, 64), (3, 3)), (4097, 4097, (128, 128), (2, 2)),
                                            (333, 555, (48, 80), (4, 2))])
def test_attention_with_a_flex_block_mask_matches_the_reference(dtype, sq, sk, bs, heads):
    gen = torch.Generator(device="cuda").manual_seed(sq * 7 + sk)
    hq, hkv = heads
    bq, bk = bs
    causal = lambda b, h, q, k: q >= k  # noqa: E731
    flex_bm, partial, full = random_flex_mask(2, hq, sq, sk, bq, bk, 0.5, gen, mask_mod=causal)
    q, k, v = rand(2, hq, sq, 64, dtype, gen), rand(2, hkv, sk, 64, dtype, gen), rand(2, hkv, sk, 64, dtype, gen)

    def dense(b, h, qi, ki):
        cell_p = partial[b, h, qi // bq, ki // bk]
        cell_f = full[b, h, qi // bq, ki // bk]
        return cell_f | (cell_p & (qi >= ki))

    with torch.no_grad():
        o, lse = flashjit.attention(q, k, v, block_mask=flex_bm, return_lse=True)
    ro, rlse = reference(q, k, v, mask_mod=dense)
    assert (~torch.isfinite(rlse)).any()  # empty block rows: fully masked rows are checked
    check(o, lse, ro, rlse, dtype)


def test_attention_with_a_flashjit_block_mask_and_score_mod():
    gen = torch.Generator(device="cuda").manual_seed(3)
    n = 3000
    docs = doc_ids(n, gen)
    fn = lambda b, h, q, k: (docs[q] == docs[k]) & (q >= k)  # noqa: E731
    softcap = lambda s, b, h, q, k: 20.0 * torch.tanh(s / 20.0)  # noqa: E731
    bm = flashjit.create_block_mask(fn, None, None, n, n, BLOCK_SIZE=(128, 128))
    q, k, v = (rand(1, 4, n, 128, torch.bfloat16, gen) for _ in range(3))
    with torch.no_grad():
        o, lse = flashjit.attention(q, k, v, block_mask=bm, score_mod=softcap, return_lse=True)
        o2 = flashjit.attention(q, k, v, mask_mod=fn, score_mod=softcap)
    ro, rlse = reference(q, k, v, mask_mod=fn, score_mod=softcap)
    check(o, lse, ro, rlse, torch.bfloat16)
    assert torch.equal(o, o2) or (o.float() - o2.float()).abs().max().item() < 2e-2


def test_bad_block_masks_are_refused_before_the_launch():
    q = torch.randn(1, 2, 300, 64, device="cuda", dtype=torch.bfloat16)
    short = flashjit.create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, 256, 300)
    with pytest.raises(ValueError, match="block_mask covers seqlen_q 256"):
        flashjit.attention(q, q, q, block_mask=short)
    per_head = flashjit.create_block_mask(lambda b, h, qi, ki: qi >= ki, None, 3, 300, 300)
    with pytest.raises(ValueError, match="head dim 3"):
        flashjit.attention(q, q, q, block_mask=per_head)
    from types import SimpleNamespace

    # A Flex-style mask whose lists point past the last block (not built by Flex, which
    # would index with it): refused, never read.
    bad = SimpleNamespace(kv_num_blocks=torch.ones(1, 1, 3, dtype=torch.int32, device="cuda"),
                          kv_indices=torch.full((1, 1, 3, 3), 7, dtype=torch.int32, device="cuda"),
                          full_kv_num_blocks=None, full_kv_indices=None, BLOCK_SIZE=(128, 128),
                          seq_lengths=(300, 300), mask_mod=None)
    with pytest.raises(ValueError, match="outside"):
        flashjit.attention(q, q, q, block_mask=bad)
    with pytest.raises(TypeError, match="block_mask must be"):
        flashjit.attention(q, q, q, block_mask="causal")
    with pytest.raises(ValueError, match="BLOCK_SIZE"):
        flashjit.create_block_mask(None, 1, 1, 10, 10, BLOCK_SIZE=0)
