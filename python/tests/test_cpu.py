"""CPU-only tests of the Python package: no GPU and no torch needed (CI runs these)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import flashjit
from flashjit import Spec, Tile, _C


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "flashjit-cache"
    monkeypatch.setenv("FLASHJIT_CACHE_DIR", str(d))
    return d


# --- Spec ---------------------------------------------------------------------------

def test_spec_defaults_and_json_round_trip():
    s = Spec(dtype="bf16", head_dim=128)
    assert s.mask == "none" and s.align == "bottom_right" and s.window is None
    assert json.loads(s.to_json()) == {"dtype": "bf16", "head_dim": 128, "mask": {"kind": "none"}}
    assert Spec.from_json(s.to_json()) == s
    assert hash(Spec.from_json(s.to_json())) == hash(s)


@pytest.mark.parametrize("kwargs", [
    dict(dtype="fp16", head_dim=64, mask="causal"),
    dict(dtype="bf16", head_dim=128, mask="causal", align="top_left", return_lse=True),
    dict(dtype="bf16", head_dim=96, num_heads_q=6, num_heads_kv=2, softmax_scale=0.125),
    dict(dtype="fp16", head_dim=192, head_dim_v=128, num_heads_q=7, num_heads_kv=1),
    dict(dtype="bf16", head_dim=64, mask="sliding_window", window=(256, 0)),
    dict(dtype="bf16", head_dim=64, mask="sliding_window", window=(None, 16)),
    dict(dtype="bf16", head_dim=128, tile=Tile(block_m=64, block_n=64, warps=4, stages=2)),
])
def test_spec_round_trip(kwargs):
    s = Spec(**kwargs)
    assert Spec.from_json(s.to_json()) == s
    assert Spec.from_dict(json.loads(s.to_json())) == s
    # the C++ canonical form parses back to the same variant
    canonical = json.loads(s.canonical_json())
    assert canonical["dtype"] == s.dtype and canonical["head_dim"] == s.head_dim
    assert canonical["mask"]["kind"] == s.mask
    back = Spec.from_json(s.canonical_json())
    assert back.mask == s.mask and back.return_lse == s.return_lse
    assert back.softmax_scale == s.softmax_scale and back.tile == s.tile
    assert back.window == s.window


def test_spec_accepts_json_mask_dict_and_tile_dict():
    s = Spec(dtype="bfloat16", head_dim=64,
             mask={"kind": "sliding_window", "left": 128, "right": 0, "align": "top_left"},
             tile={"block_m": 64, "block_n": 32, "warps": 4, "stages": 2})
    assert s.dtype == "bf16"  # alias canonicalised by the C++ parser
    assert s.mask == "sliding_window" and s.window == (128, 0) and s.align == "top_left"
    assert s.tile == Tile(64, 32, 4, 2)
    d = json.loads(s.to_json())
    assert d["mask"] == {"kind": "sliding_window", "align": "top_left", "left": 128, "right": 0}
    assert d["tile"] == {"block_m": 64, "block_n": 32, "warps": 4, "stages": 2, "mma": "mma_sync"}


def test_wgmma_tile_on_hopper_only():
    spec = Spec(dtype="bf16", head_dim=128, mask="causal",
                tile=Tile(block_m=128, block_n=128, warps=8, stages=2, mma="wgmma"))
    assert json.loads(spec.to_json())["tile"]["mma"] == "wgmma"
    src = flashjit.emit(spec, arch="sm_90a")
    assert "warpgroup_gemm_qk_issue<T>" in src and "FwdTraitsSm90" in src
    assert "lag = 1" in flashjit.emit_ir(spec, arch="sm_90a")
    with pytest.raises(Exception, match="wgmma needs arch sm_90a"):
        flashjit.emit(spec, arch="sm_80")
    with pytest.raises(Exception, match="warpgroup"):
        Spec(dtype="bf16", head_dim=128, tile=Tile(block_m=128, block_n=128, warps=4, mma="wgmma")).to_json()
    # Untiled specs take the wgmma path on Hopper, mma.sync elsewhere.
    assert flashjit.resolve_tile(Spec(dtype="bf16", head_dim=64), arch="sm_90a").mma == "wgmma"
    assert flashjit.resolve_tile(Spec(dtype="bf16", head_dim=64), arch="sm_80").mma == "mma_sync"


def test_spec_from_canonical_cpp_json():
    text = Spec(dtype="fp16", head_dim=64, num_heads_q=8, num_heads_kv=2, mask="causal").canonical_json()
    d = json.loads(text)
    assert d["head_dim_v"] == 64 and d["num_heads_kv"] == 2  # normalized by C++
    s = Spec.from_json(text)
    assert (s.dtype, s.head_dim, s.head_dim_v, s.num_heads_q, s.num_heads_kv) == ("fp16", 64, 64, 8, 2)
    assert s.mask == "causal" and s.window is None


@pytest.mark.parametrize("kwargs, field", [
    (dict(dtype="bf16", head_dim=0), "head_dim"),
    (dict(dtype="bf16", head_dim=80), "head_dim"),
    (dict(dtype="fp64", head_dim=64), "dtype"),
    (dict(dtype="bf16", head_dim=64, mask="diagonal"), "mask"),
    (dict(dtype="bf16", head_dim=64, mask={"kind": "causal", "bogus": 1}), "mask.bogus"),
    (dict(dtype="bf16", head_dim=64, align="middle", mask="causal"), "mask.align"),
    (dict(dtype="bf16", head_dim=64, num_heads_q=6, num_heads_kv=4), "num_heads_kv"),
])
def test_spec_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError) as info:
        Spec(**kwargs)
    assert isinstance(info.value, flashjit.SpecError)
    assert info.value.field.startswith(field)
    assert field in str(info.value)


def test_from_json_errors():
    with pytest.raises(flashjit.SpecError) as info:
        Spec.from_json('{"dtype": "bf16", "head_dim": 64, "typo": 1}')
    assert info.value.field == "typo"
    with pytest.raises(ValueError):
        Spec.from_json("{not json")
    with pytest.raises(flashjit.SpecError) as info:
        Spec.from_json('{"head_dim": 64}')
    assert info.value.field == "dtype"


# --- compile / emit -------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_compile_reports_resources_and_caches(arch, cache_dir):
    spec = Spec(dtype="bf16", head_dim=64, mask="causal", num_heads_q=4, num_heads_kv=2)
    info = flashjit.compile(spec, arch=arch)
    assert info.arch == arch
    assert info.kernel_name and info.cache_key
    assert info.registers > 0
    assert info.threads > 0
    assert info.spill_store_bytes >= 0 or info.spill_store_bytes == -1
    assert info.tile.block_m > 0 and info.tile.block_n > 0
    assert len(info.cubin) > 0
    assert info["registers"] == info.registers  # dict-like access
    assert "cubin" not in info.to_dict()
    if not info.cache_hit:
        assert info.compile_ms > 0
        assert info.cache_path.startswith(str(cache_dir))
        assert os.path.exists(info.cache_path)

    again = flashjit.compile(spec, arch=arch)
    assert again.cache_hit
    assert again.cache_key == info.cache_key
    assert again.registers == info.registers


def test_disk_cache_hit_in_a_new_process(cache_dir):
    # Two fresh processes (no memory cache): the first compiles into the disk cache,
    # the second must be served from it.
    spec = Spec(dtype="fp16", head_dim=128, mask="causal", return_lse=True)
    script = textwrap.dedent(f"""
        import json, time, flashjit
        t0 = time.perf_counter()
        info = flashjit.compile(flashjit.Spec.from_json({spec.to_json()!r}), arch="sm_80")
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({{"hit": info.cache_hit, "key": info.cache_key, "path": info.cache_path,
                          "ms": ms}}))
    """)
    env = dict(os.environ, FLASHJIT_CACHE_DIR=str(cache_dir))
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["hit"] is False
    assert warm["hit"] is True
    assert warm["key"] == cold["key"]
    assert warm["path"] == cold["path"] and warm["path"].startswith(str(cache_dir))


def test_runtime_stats_count_compiles_and_hits(cache_dir):
    stats = flashjit.runtime_stats()
    assert set(stats) == {"compiles", "disk_hits", "memory_hits", "tunings", "tuning_db_hits"}
    assert all(isinstance(v, int) and v >= 0 for v in stats.values())
    spec = Spec(dtype="fp16", head_dim=96, mask="causal")
    flashjit.compile(spec, arch="sm_86", use_cache=False)  # always an NVRTC run
    after = flashjit.runtime_stats()
    assert after["compiles"] == stats["compiles"] + 1
    flashjit.compile(spec, arch="sm_86")  # memory miss: disk hit or a compile
    flashjit.compile(spec, arch="sm_86")  # now in memory
    last = flashjit.runtime_stats()
    assert last["memory_hits"] >= after["memory_hits"] + 1
    assert last["tunings"] == stats["tunings"]  # compiling never tunes


def test_compile_without_cache(cache_dir):
    spec = Spec(dtype="bf16", head_dim=32)
    info = flashjit.compile(spec, arch="sm_80", use_cache=False)
    assert not info.cache_hit and info.cache_path == ""
    assert info.registers > 0


def test_compile_accepts_dict_and_json():
    d = {"dtype": "bf16", "head_dim": 64, "mask": {"kind": "causal"}}
    a = flashjit.compile(d, arch="sm_80")
    b = flashjit.compile(json.dumps(d), arch="sm_80")
    assert a.cache_key == b.cache_key


@pytest.mark.parametrize("mask, extra", [
    ("none", {}),
    ("causal", {}),
    ("sliding_window", {"window": (128, 0)}),
])
def test_emit_cuda(mask, extra):
    spec = Spec(dtype="fp16", head_dim=128, mask=mask, **extra)
    src = flashjit.emit(spec, arch="sm_80")
    assert 'extern "C" __global__' in src
    assert mask in src
    assert flashjit.emit(spec, arch="sm_80") == src  # deterministic


def test_emit_ir():
    spec = Spec(dtype="bf16", head_dim=64, mask="causal")
    ir = flashjit.emit_ir(spec, arch="sm_90a")
    assert "kernel @" in ir
    lowered = flashjit.emit_ir(spec, arch="sm_90a", after="lower")
    assert "kernel @" in lowered


def test_resolve_tile_matches_compile():
    spec = Spec(dtype="bf16", head_dim=128, mask="causal")
    tile = flashjit.resolve_tile(spec, arch="sm_80")
    assert isinstance(tile, Tile)
    assert flashjit.compile(spec, arch="sm_80").tile == tile
    forced = Tile(block_m=64, block_n=64, warps=4, stages=2)
    assert flashjit.resolve_tile(spec.replace(tile=forced), arch="sm_80") == forced


def test_gpu_reason_is_a_string():
    assert isinstance(flashjit.gpu_available(), bool)
    reason = flashjit.gpu_unavailable_reason()
    assert isinstance(reason, str)
    if not flashjit.gpu_available():
        assert reason


def test_version():
    assert flashjit.__version__ and flashjit.__version__ != "unknown"


def test_attention_rejects_non_tensors():
    with pytest.raises(TypeError, match="q must be a CUDA tensor"):
        flashjit.attention([1.0], [1.0], [1.0])


# --- hostile input (the hardening issue's findings 1-4): one behaviour in C++ and Python ---

@pytest.mark.parametrize("text, field, says", [
    # 1. deep nesting crashed the interpreter (via a BOM: Python's json rejected it, then C++ recursed)
    ('{"dtype":"bf16","head_dim":' + "[" * 20000 + "]" * 20000 + "}", "head_dim", "nesting deeper"),
    ("\ufeff" + "[" * 20000 + "]" * 20000, "json", "byte-order mark"),
    # 3. 1e400 raised RuntimeError without a field name
    ('{"dtype":"bf16","head_dim":64,"softmax_scale":1e400}', "softmax_scale", "number overflow"),
    ('{"dtype":"bf16","head_dim":64,"softmax_scale":1e39}', "softmax_scale", "allowed: 1e-30 to 1e+30"),
    ('{"dtype":"bf16","head_dim":64,"softmax_scale":1e-320}', "softmax_scale", "allowed: 1e-30"),
    # 4. duplicate keys were accepted (last wins), a BOM accepted by C++ only
    ('{"dtype":"bf16","head_dim":64,"head_dim":128}', "head_dim", "duplicate key"),
    ('{"dtype":"bf16","head_dim":64,"mask":{"kind":"causal","kind":"none"}}', "mask.kind", "duplicate key"),
    ("\ufeff" + '{"dtype":"bf16","head_dim":64}', "json", "byte-order mark"),
    ('{"dtype":"bf16","head_dim":64}\x00{"x":1}', "json", "NUL byte"),
    ('{"dtype":"\ud800","head_dim":64}', "dtype", "UTF-8"),  # a lone surrogate in a str
])
def test_from_json_hostile_text_is_a_spec_error(text, field, says):
    for form in (text, text.encode("utf-8", "surrogatepass")):
        with pytest.raises(flashjit.SpecError) as info:
            Spec.from_json(form)
        assert info.value.field == field, str(info.value)
        assert says in str(info.value)


@pytest.mark.parametrize("raw", [
    b'{"dtype":"\xff\xfe","head_dim":64}',
    b'{"dtype":"bf16","head_dim":64,"\xc3\x28":1}',
    b'{"dtype":"bf16","head_dim":\xff}',
    b'\xef\xbb\xbf{"dtype":"bf16","head_dim":64}',
])
def test_from_json_non_utf8_bytes_raise_spec_error_not_unicode_error(raw):
    # 4. these raised UnicodeDecodeError (the message quoted the raw bytes)
    with pytest.raises(flashjit.SpecError) as info:
        Spec.from_json(raw)
    str(info.value).encode("utf-8")  # a valid str


def test_huge_head_counts_raise_quickly():
    # 2. Spec(num_heads_q=2**31-1, num_heads_kv=2) killed Python with SIGFPE after 6-14 s
    import time
    t0 = time.perf_counter()
    with pytest.raises(flashjit.SpecError) as info:
        Spec(dtype="bf16", head_dim=64, num_heads_q=2**31 - 1, num_heads_kv=2)
    assert time.perf_counter() - t0 < 1.0
    assert info.value.field == "num_heads_q" and "allowed: 1 to 65535" in str(info.value)
    with pytest.raises(flashjit.SpecError) as info:
        Spec(dtype="bf16", head_dim=64, num_heads_q=2**40)
    assert info.value.field == "num_heads_q"


def test_from_dict_values_json_cannot_hold_are_spec_errors():
    with pytest.raises(flashjit.SpecError) as info:
        Spec.from_dict({"dtype": "bf16", "head_dim": 64, "softmax_scale": float("inf")})
    assert info.value.field == "softmax_scale"
    with pytest.raises(flashjit.SpecError) as info:
        Spec.from_dict({"dtype": "bf16", "head_dim": object()})
    assert info.value.field == "json"
    with pytest.raises(flashjit.SpecError):
        Spec(dtype="bf16", head_dim=float("nan"))


# --- dropout (issue 11): the spec field and the keep-mask through the binding ---------------

@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_p_out_of_range_is_a_spec_error(p):
    with pytest.raises(flashjit.SpecError) as info:
        Spec(dtype="bf16", head_dim=64, dropout_p=p)
    assert info.value.field == "dropout_p" and "dropout_p" in str(info.value)
    with pytest.raises(flashjit.SpecError) as info:
        flashjit.dropout_keep_mask(1, 1, 8, 8, p, (1, 2))
    assert info.value.field == "dropout_p"


def test_dropout_spec_round_trip_and_kernels():
    s = Spec(dtype="bf16", head_dim=64, mask="causal", dropout_p=0.2, return_lse=True)
    assert json.loads(s.to_json())["dropout_p"] == 0.2
    assert json.loads(s.canonical_json())["dropout_p"] == 0.2
    assert Spec.from_json(s.to_json()) == s
    assert "dropout_p" not in json.loads(Spec(dtype="bf16", head_dim=64).to_json())  # 0: the spec without it
    assert "dropout" in flashjit.emit_ir(s, arch="sm_80")
    assert "dropout" not in flashjit.emit_ir(s.replace(dropout_p=0.0), arch="sm_80")


def _philox4x32_7(c, k0, k1):
    """Philox4x32 with dropout's 7 rounds (kDropoutRounds in philox.cuh)."""
    m = 0xFFFFFFFF
    x, y, z, w = c
    for _ in range(7):
        p0, p1 = 0xD2511F53 * x, 0xCD9E8D57 * z
        x, y, z, w = ((p1 >> 32) ^ y ^ k0) & m, p1 & m, ((p0 >> 32) ^ w ^ k1) & m, p0 & m
        k0, k1 = (k0 + 0x9E3779B9) & m, (k1 + 0xBB67AE85) & m
    return x, y, z, w


def _kept(seed, offset, bh, i, j, p):
    """templates/flashjit/philox.cuh's element number, written out again in Python."""
    m = 0xFFFFFFFF
    def cls(x):  # the index's group class: its 16-block and its pair within the 8-half
        return ((x >> 4) << 2) | ((x & 7) >> 1)

    c = cls(j), cls(i), bh, offset & m
    words = _philox4x32_7(c, seed & m, ((seed >> 32) ^ (offset >> 32)) & m)
    slot = (((i ^ (j >> 4)) & 1) << 3) | (((i >> 3) & 1) << 2) | (((j >> 3) & 1) << 1) | (j & 1)  # row parity flipped in odd 16-key blocks
    r = (words[slot >> 2] >> (8 * (slot & 3))) & 0xFF
    return r >= int(p * 256)


def test_dropout_keep_mask_shape_rate_and_definition():
    from flashjit import _C

    b, h, sq, sk, p = 2, 3, 37, 70, 0.3
    seed, offset = 0x1234_5678_9ABC_DEF0, (5 << 32) + 17
    spec = Spec(dtype="fp16", head_dim=64, num_heads_q=h, dropout_p=p).to_json()
    raw = _C.dropout_keep_mask(spec, b, sq, sk, seed, offset)
    assert isinstance(raw, bytes) and len(raw) == b * h * sq * sk and set(raw) <= {0, 1}
    # the binding's bytes are (batch, head, query, key) in that order, as the kernels' definition says
    at = 0
    for bi in range(b):
        for hi in range(h):
            for i in range(sq):
                for j in range(sk):
                    assert raw[at] == _kept(seed, offset, bi * h + hi, i, j, p), (bi, hi, i, j)
                    at += 1
    # flashjit.dropout_keep_mask: the same mask as a bool array / tensor of shape (b, h, sq, sk)
    mask = flashjit.dropout_keep_mask(b, h, sq, sk, p, (seed, offset))
    assert tuple(mask.shape) == (b, h, sq, sk) and str(mask.dtype).endswith("bool")
    assert bytes(bytearray(int(x) for x in mask.reshape(-1).tolist())) == raw
    # another seed or offset: another mask
    assert _C.dropout_keep_mask(spec, b, sq, sk, seed + 1, offset) != raw
    assert _C.dropout_keep_mask(spec, b, sq, sk, seed, offset + 1) != raw
    # negative int64 values are their uint64 bits (a torch int64 tensor's)
    assert bytes(bytearray(int(x) for x in flashjit.dropout_keep_mask(1, 1, 8, 40, p, (-3, -4)).reshape(-1).tolist())) \
        == _C.dropout_keep_mask(Spec(dtype="fp16", head_dim=64, dropout_p=p).to_json(), 1, 8, 40, 2**64 - 3, 2**64 - 4)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keep_rate(p):
    from flashjit import _C

    b, h, sq, sk = 2, 4, 128, 200
    raw = _C.dropout_keep_mask(Spec(dtype="bf16", head_dim=64, num_heads_q=h, dropout_p=p).to_json(), b, sq, sk, 42, 7)
    n = len(raw)
    keep = 1 - int(p * 256) / 256
    sigma = (keep * (1 - keep) / n) ** 0.5
    assert abs(sum(raw) / n - keep) < 5 * sigma, (sum(raw) / n, keep)


def test_dropout_keep_mask_errors():
    from flashjit import _C

    with pytest.raises(flashjit.SpecError) as info:  # p = 0: no dropout, no mask
        flashjit.dropout_keep_mask(1, 1, 8, 8, 0.0, (1, 2))
    assert info.value.field == "dropout_p"
    with pytest.raises(flashjit.ArgumentError):
        flashjit.dropout_keep_mask(0, 1, 8, 8, 0.5, (1, 2))
    with pytest.raises(flashjit.ArgumentError):  # refused before allocating 2^60 bytes
        flashjit.dropout_keep_mask(1 << 20, 1, 1 << 20, 1 << 20, 0.5, (1, 2))
    with pytest.raises(ValueError, match="2 elements"):
        flashjit.dropout_keep_mask(1, 1, 8, 8, 0.5, (1, 2, 3))
    with pytest.raises(ValueError, match="64 bits"):
        flashjit.dropout_keep_mask(1, 1, 8, 8, 0.5, (1 << 64, 2))
    with pytest.raises(TypeError):
        flashjit.dropout_keep_mask(1, 1, 8, 8, 0.5, "seed")
    with pytest.raises(TypeError):
        _C.dropout_keep_mask(Spec(dtype="bf16", head_dim=64, dropout_p=0.5).to_json(), 1, 8, 8, -1, 0)


def test_attention_dropout_without_torch_needs_a_state():
    class FakeArray:  # enough of a DLPack producer for attention()'s front-end checks
        def __init__(self, shape):
            self.shape, self.dtype = shape, "float16"

        def __dlpack__(self, *a, **k):
            raise AssertionError("not launched")

    q, k, v = FakeArray((1, 1, 8, 64)), FakeArray((1, 1, 8, 64)), FakeArray((1, 1, 8, 64))
    with pytest.raises(ValueError, match="dropout_state"):
        flashjit.attention(q, k, v, dropout_p=0.5, out=FakeArray((1, 1, 8, 64)))
    with pytest.raises(flashjit.SpecError, match="dropout_p"):
        flashjit.attention(q, k, v, dropout_p=1.0, dropout_state=(1, 2), out=FakeArray((1, 1, 8, 64)))


# --- drop-in entry points (their GPU parity tests: test_dropin_gpu.py) -------------------

def test_dropin_argument_errors_without_a_gpu():
    np = pytest.importorskip("numpy")
    q = np.zeros((1, 4, 16, 64), dtype=np.float16)
    k = np.zeros((1, 2, 16, 64), dtype=np.float16)
    with pytest.raises(TypeError, match="query must be a torch.Tensor"):
        flashjit.scaled_dot_product_attention(q, q, q)
    with pytest.raises(ValueError, match="must have 4 dimensions"):
        flashjit.flex_attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="enable_gqa=True"):
        flashjit.flex_attention(q, k, k)
    with pytest.raises(ValueError, match=r"unknown kernel_options \['BLOKC_M'\]"):
        flashjit.flex_attention(q, q, q, kernel_options={"BLOKC_M": 64})
    with pytest.raises(ValueError, match="layout must be 'bhsd'"):
        flashjit.attention(q, q, q, layout="sbhd")
    with pytest.raises(ValueError, match="softcap must be a finite number > 0"):
        flashjit.attention(q, q, q, softcap=-2.0)
    with pytest.raises(ValueError, match="window= or window_size="):
        flashjit.attention(q, q, q, window=(1, 1), window_size=(1, 1))
    with pytest.raises(ValueError, match="scale= or softmax_scale="):
        flashjit.attention(q, q, q, scale=0.1, softmax_scale=0.1)


def test_sdpa_mask_expressions_compile():
    from flashjit._dropin import _mask_index

    assert _mask_index((2, 1, 100, 150), (2, 4, 100, 150)) == "b, 0, q_idx, kv_idx"
    assert _mask_index((1, 1, 1, 150), (2, 4, 100, 150)) == "0, 0, 0, kv_idx"
    assert _mask_index((4, 100, 150), (4, 100, 150)) == "h, q_idx, kv_idx"
    # the texts the SDPA drop-in writes are valid expressions over a declared capture
    for text, field in ((f"attn_mask[{_mask_index((2, 1, 100, 150), (2, 4, 100, 150))}]", "mask"),
                        (f"score + attn_mask[{_mask_index((1, 4, 1, 150), (2, 4, 100, 150))}]", "score")):
        dt = "bool" if field == "mask" else "bf16"
        spec = Spec(dtype="bf16", head_dim=64, num_heads_q=4, captures=(("attn_mask", dt, 4),),
                    **({"mask": "custom", "mask_expr": text} if field == "mask" else {"score_mod": text}))
        src = flashjit.emit(spec, arch="sm_90a")
        assert "attn_mask" in src


# --- Finding NVRTC (dlopen'ed on the first compile, runtime/include/flashjit/nvrtc_loader.h) ---

def _run_python(script, env):
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_nvrtc_library_is_one_of_the_candidates():
    lib = flashjit.nvrtc_library()
    assert (lib["path"], lib["origin"]) in flashjit.nvrtc_candidates()
    assert lib["version"].split(".")[0] == str(_C.nvrtc_built_major())
    assert _C.nvrtc_soname() == f"libnvrtc.so.{_C.nvrtc_built_major()}"


def test_without_nvrtc_import_and_emit_work_and_compile_says_how_to_fix(cache_dir):
    # An explicit FLASHJIT_NVRTC is the only candidate, so a missing file stands for a machine
    # without NVRTC (no fallback to the toolkit that this machine has).
    env = dict(os.environ, FLASHJIT_NVRTC="/nonexistent/flashjit-test/libnvrtc.so.13")
    out = _run_python("""
        import json, flashjit
        spec = flashjit.Spec(dtype="bf16", head_dim=128, mask="causal")
        src = flashjit.emit(spec, arch="sm_90a")
        ir = flashjit.emit_ir(spec, arch="sm_90a")
        tile = flashjit.resolve_tile(spec, "sm_90a")
        errors = []
        for call in (lambda: flashjit.compile(spec, arch="sm_90a"), flashjit.nvrtc_library):
            try:
                call()
                errors.append(None)
            except flashjit.CompileError as e:
                errors.append(str(e))
        try:
            flashjit.compile(spec, arch="sm_91")
            bad_arch = None
        except flashjit.ArgumentError as e:
            bad_arch = str(e)
        print(json.dumps({"global": "__global__" in src, "ir": len(ir), "wgmma": tile.mma,
                          "errors": errors, "bad_arch": bad_arch}))
    """, env)
    assert out["global"] and out["ir"] > 0 and out["wgmma"] == "wgmma"
    for msg in out["errors"]:
        assert msg is not None, "compiled without NVRTC"
        assert "/nonexistent/flashjit-test/libnvrtc.so.13 (FLASHJIT_NVRTC): not found" in msg
        assert "pip install" in msg and "nvidia-cuda-nvrtc" in msg
        assert "CUDA_HOME" in msg and "FLASHJIT_NVRTC to the full path" in msg
    # The arch is still checked, against flashjit's own list, before NVRTC is needed.
    assert out["bad_arch"] is not None and "'sm_91' is not a known target" in out["bad_arch"]


def test_pip_nvrtc_package_is_searched_before_the_toolkit(tmp_path, cache_dir):
    # A stand-in for `pip install nvidia-cuda-nvrtc`: the namespace package nvidia/ with
    # cu13/lib/libnvrtc.so.13 (links to this machine's NVRTC files) on sys.path.
    real = flashjit.nvrtc_library()["path"]
    if "/" not in real:
        pytest.skip(f"NVRTC was found by the loader's own search ({real}); no file to mirror")
    real_dir = os.path.dirname(os.path.realpath(real))
    lib_dir = tmp_path / "site" / "nvidia" / f"cu{_C.nvrtc_built_major()}" / "lib"
    lib_dir.mkdir(parents=True)
    for name in os.listdir(real_dir):
        if name.startswith("libnvrtc"):
            os.symlink(os.path.join(real_dir, name), lib_dir / name)
    env = {k: v for k, v in os.environ.items() if k != "FLASHJIT_NVRTC"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site")] + [p for p in sys.path if p])
    out = _run_python("""
        import json, flashjit
        lib = flashjit.nvrtc_library()
        info = flashjit.compile(flashjit.Spec(dtype="fp16", head_dim=64), arch="sm_80", use_cache=False)
        print(json.dumps({"lib": lib, "elf": info.cubin[:4] == b"\\x7fELF",
                          "first": flashjit.nvrtc_candidates()[0]}))
    """, env)
    expected = str(lib_dir / _C.nvrtc_soname())
    assert out["lib"]["path"] == expected
    assert out["lib"]["origin"] == "pip package nvidia-cuda-nvrtc"
    assert out["first"] == [expected, "pip package nvidia-cuda-nvrtc"]
    assert out["elf"]


# --- _C.forward_torch (eager torch calls: tensors as addresses, sizes, strides) ------------

def test_forward_torch_checks_arguments_before_any_launch():
    """The eager path's entry validates like forward() (the checks run before the GPU is
    needed, so they run here): each error names the parameter and what is allowed."""
    spec = Spec(dtype="bf16", head_dim=64, num_heads_q=2, num_heads_kv=2).to_json()
    sizes, strides = (1, 2, 16, 64), (2048, 1024, 64, 1)

    def call(**changes):
        args = dict(spec_json=spec, device=0, dtype="bfloat16", q=256, q_sizes=sizes, q_strides=strides, k=256,
                    k_sizes=sizes, k_strides=strides, v=256, v_sizes=sizes, v_strides=strides, o=256, lse=0,
                    stream=0, captures=[])
        args.update(changes)
        _C.forward_torch(**args)

    with pytest.raises(flashjit.ArgumentError, match=r"q: dtype is float32, the spec says bf16"):
        call(dtype="float32")
    with pytest.raises(flashjit.ArgumentError, match=r"q: dtype complex64 is not supported"):
        call(dtype="complex64")
    with pytest.raises(flashjit.ArgumentError, match=r"k: the last dim \(head_dim\) must be contiguous"):
        call(k_strides=(2048, 1024, 64, 2))
    with pytest.raises(flashjit.ArgumentError, match=r"q: size 3 of dim 1 \(num_heads_q of the spec\) must be 2"):
        call(q_sizes=(1, 3, 16, 64))
    with pytest.raises(flashjit.ArgumentError, match=r"lse"):
        _C.forward_torch(Spec(dtype="bf16", head_dim=64, return_lse=True).to_json(), 0, "bfloat16", 256,
                         (1, 1, 16, 64), (1024, 1024, 64, 1), 256, (1, 1, 16, 64), (1024, 1024, 64, 1), 256,
                         (1, 1, 16, 64), (1024, 1024, 64, 1), 256, 0, 0, [])
    capture_spec = Spec(dtype="bf16", head_dim=64, mask="custom", mask_expr="doc[q_idx] == doc[kv_idx]",
                        captures=(("doc", "i32", 1),)).to_json()
    with pytest.raises(flashjit.ArgumentError, match=r"captures.doc: dtype uint8 is not supported"):
        _C.forward_torch(capture_spec, 0, "bfloat16", 256, (1, 1, 16, 64), (1024, 1024, 64, 1), 256,
                         (1, 1, 16, 64), (1024, 1024, 64, 1), 256, (1, 1, 16, 64), (1024, 1024, 64, 1), 256, 0, 0,
                         [(512, "uint8", [16], [1])])


def test_tma_ws_tile_round_trips_and_emits_the_warp_specialised_kernel():
    tile = Tile(block_m=128, block_n=128, warps=12, stages=2, mma="wgmma", pipeline="tma_ws")
    spec = Spec(dtype="bf16", head_dim=128, mask="causal", tile=tile)
    d = json.loads(spec.to_json())["tile"]
    assert d["pipeline"] == "tma_ws" and d["warps"] == 12
    assert Spec.from_json(spec.to_json()).tile == tile
    src = flashjit.emit(spec, arch="sm_90a")
    assert "FwdTraitsSm90Ws" in src and "ws_produce<T>" in src
    with pytest.raises(flashjit.SpecError, match="tile.warps"):
        Spec(dtype="bf16", head_dim=128, tile=Tile(block_m=128, block_n=128, warps=8, mma="wgmma",
                                                   pipeline="tma_ws")).to_json()
