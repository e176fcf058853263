// The backward's kernels on the GPU, against float64 (docs/architecture.md, "Backward").
// bwd_preprocess: D = rowsum(dO ∘ O) over odd lengths, every head-dim pair, both
// dtypes, BHSD and BSHD layouts; outputs poisoned (NaN) before each run; two runs agree bit
// for bit; the dQ accumulator comes back all zeros.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/autotune.h"
#include "flashjit/tuning.h"
#include "flashjit/backward.h"
#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/heuristics.h"
#include "gpu_harness.h"
#include "random_expr.h"
#include "variant_cases.h"

using flashjit::DType;
using flashjit::ElemType;
using flashjit::TensorView;

namespace {

struct PreCase {
  DType dtype;
  int d, dv;
  int64_t batch, heads, seqlen;
  bool bshd;
};

// Worst |D - ref| / (sum |o * do| + tiny) of one case; REQUIREs the rest.
double run_preprocess(const PreCase& c, uint32_t seed) {
  flashjit::AttentionSpec spec;
  spec.dtype = c.dtype;
  spec.head_dim = c.d;
  spec.head_dim_v = c.dv;
  spec.num_heads_q = spec.num_heads_kv = static_cast<int>(c.heads);
  const ElemType et = c.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  const int64_t B = c.batch, H = c.heads, S = c.seqlen, DV = c.dv;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint16_t> o(static_cast<size_t>(B * H * S * DV)), dout(o.size());
  for (size_t i = 0; i < o.size(); ++i) o[i] = fjtest::to_bits(normal(rng), c.dtype), dout[i] = fjtest::to_bits(normal(rng), c.dtype);
  fjtest::DeviceBuffer d_o(o.size() * 2), d_do(dout.size() * 2), d_d(static_cast<size_t>(B * H * S) * 4),
      d_dq(static_cast<size_t>(B * H * S * c.d) * 4);
  d_o.upload(o.data());
  d_do.upload(dout.data());
  auto view = [&](void* p) {
    return c.bshd ? TensorView::bshd(p, et, B, S, H, DV) : TensorView::bhsd(p, et, B, H, S, DV);
  };
  TensorView dv_{d_d.data(), ElemType::f32, 3, {B, H, S, 0}, {H * S, S, 1, 0}};
  TensorView dq{d_dq.data(), ElemType::f32, 4, {B, H, S, c.d}, {H * S * c.d, S * c.d, c.d, 1}};
  // The same memory order as the views: element (b, h, s, k) of o and dout.
  auto at = [&](const std::vector<uint16_t>& t, int64_t b, int64_t h, int64_t s, int64_t k) {
    const int64_t off = c.bshd ? ((b * S + s) * H + h) * DV + k : ((b * H + h) * S + s) * DV + k;
    return fjtest::from_bits(t[static_cast<size_t>(off)], c.dtype);
  };
  std::vector<float> d1(static_cast<size_t>(B * H * S)), d2(d1.size());
  std::vector<float> dqh(static_cast<size_t>(B * H * S * c.d));
  for (int run = 0; run < 2; ++run) {
    d_d.poison();
    d_dq.poison();
    flashjit::backward_preprocess(spec, view(d_o.data()), view(d_do.data()), dv_, dq, nullptr);
    auto& drv = flashjit::CudaDriver::get();
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
    d_d.download(run == 0 ? d1.data() : d2.data());
  }
  REQUIRE(std::memcmp(d1.data(), d2.data(), d1.size() * 4) == 0);  // bit-identical run to run
  d_dq.download(dqh.data());
  for (float x : dqh) REQUIRE(x == 0.0f);  // (also: not NaN, so every element was written)
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s) {
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < DV; ++k) {
          const double x = at(o, b, h, s, k) * at(dout, b, h, s, k);
          ref += x, mag += std::fabs(x);
        }
        const double got = d1[static_cast<size_t>((b * H + h) * S + s)];
        REQUIRE(std::isfinite(got));
        worst = std::max(worst, std::fabs(got - ref) / (mag + 1e-30));
      }
  return worst;
}

}  // namespace

TEST_CASE("bwd_preprocess: D = rowsum(dO * O) against float64, dQ accumulator zeroed", "[gpu][backward]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<std::pair<int, int>> dims = {{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 128}, {256, 256}, {64, 128}};
  const std::vector<int64_t> lens = {1, 17, 1000, 4097};
  int n = 0;
  double worst = 0;
  uint32_t seed = 7;
  for (DType dt : {DType::bf16, DType::f16})
    for (size_t i = 0; i < dims.size(); ++i)
      for (size_t l = 0; l < lens.size(); ++l) {
        const PreCase c{dt, dims[i].first, dims[i].second, lens[l] > 1000 ? 1 : 2, 3, lens[l], (i + l) % 2 == 1};
        INFO("dtype " << flashjit::to_string(dt) << " d " << c.d << " dv " << c.dv << " seqlen " << c.seqlen
                      << (c.bshd ? " bshd" : " bhsd"));
        const double e = run_preprocess(c, seed++);
        CHECK(e < 1e-5);  // fp32 accumulation of at most 256 products
        worst = std::max(worst, e);
        ++n;
      }
  std::printf("GPU bwd_preprocess: %d cases checked, worst |D - ref| / sum|o*do| = %.3e\n", n, worst);
}

// Small cases for compute-sanitizer (memcheck, racecheck): a partial last block of rows,
// both layouts, a head dim whose rows do not fill a warp's lanes.
TEST_CASE("bwd_preprocess under the sanitizers", "[gpu][sanitize][backward]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  CHECK(run_preprocess(PreCase{DType::bf16, 96, 96, 2, 2, 70, false}, 1) < 1e-5);
  CHECK(run_preprocess(PreCase{DType::f16, 256, 64, 1, 3, 33, true}, 2) < 1e-5);
}

// ---- backward(): dQ, dK, dV of every variant against the float64 reference -----------------

namespace {

struct BwdErrors {
  double dq = 0, dk = 0, dv = 0;  // ||got - ref|| / ||ref|| per gradient
  double o = -1;                  // the forward's output, checked only with dropout (-1: not)
  double dcap = 0;                // the worst capture gradient's, when asked for (vs the backward of O)
  double dcap_exact = 0;          // the same against the exact float64 reference (not bounded)
  int64_t masked_rows = 0;
  bool nan_reference = false;  // the score_mod's own arithmetic gives NaN / inf: not compared
};

// Element (b, h, s, c) of a (B, H, S, C) tensor in BHSD or BSHD memory order.
int64_t offset_of(bool bshd, int64_t B, int64_t H, int64_t S, int64_t C, int64_t b, int64_t h, int64_t s, int64_t c) {
  (void)B;
  return bshd ? ((b * S + s) * H + h) * C + c : ((b * H + h) * S + s) * C + c;
}

// tile: the bwd_dkdv tile (and so the skeleton: mma.sync or wgmma); empty: the device's default.
// deterministic: BackwardOptions::deterministic, with `runs` runs whose dq, dk, dv must all be
// bit-identical (otherwise two runs, dk and dv bit-identical).
// capture_grads: gradients into every capture the score_mod reads differentiably, compared
// with the reference's dcaptures (BwdErrors::dcap).
// dropout: the RNG state forward() and backward() get, and the key the float64 references
// draw the same mask from (equal to it, or to what its device_state holds); the forward's O
// is then checked too (BwdErrors::o).
struct DropoutCase {
  flashjit::DropoutRng rng;
  flashjit::DropoutKey key;
};
BwdErrors run_backward_case(const fjtest::Case& c, bool bshd, uint32_t seed,
                            const std::optional<flashjit::TileConfig>& tile = std::nullopt, bool deterministic = false,
                            int runs = 2, bool capture_grads = false, const std::optional<DropoutCase>& dropout = std::nullopt) {
  using flashjit::eval::HostTensor;
  const flashjit::AttentionSpec spec = fjtest::spec_of(c);
  const int d = c.d, dv = c.dv ? c.dv : c.d;
  const int64_t B = c.batch;
  INFO(c.var.name << " " << flashjit::spec_to_json(spec) << " b=" << B << " sq=" << c.sq << " sk=" << c.sk
                  << (bshd ? " bshd" : " bhsd") << " bwd tile " << (tile ? flashjit::to_string(tile->mma) : "default"));
  flashjit::BackwardOptions options;
  options.tile = tile;
  options.deterministic = deterministic;
  if (dropout) options.dropout = dropout->rng;
  const flashjit::DropoutKey* key = dropout ? &dropout->key : nullptr;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  // Random bits in the layout's memory order, and the same values as float64 (BHSD).
  auto make = [&](int64_t H, int64_t S, int C, std::vector<uint16_t>& bits, HostTensor& host) {
    bits.assign(static_cast<size_t>(B * H * S * C), 0);
    host = HostTensor(B, H, S, C);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t e = 0; e < C; ++e) {
            const uint16_t x = fjtest::to_bits(normal(rng), c.dtype);
            bits[static_cast<size_t>(offset_of(bshd, B, H, S, C, b, h, s, e))] = x;
            host.at(b, h, s, e) = fjtest::from_bits(x, c.dtype);
          }
  };
  std::vector<uint16_t> q, k, v, dout;
  HostTensor hq, hk, hv, hdo;
  make(c.hq, c.sq, d, q, hq);
  make(c.hkv, c.sk, d, k, hk);
  make(c.hkv, c.sk, dv, v, hv);
  make(c.hq, c.sq, dv, dout, hdo);
  std::vector<fjtest::HostCap> caps;
  std::vector<flashjit::expr::HostCapture> host_caps;
  for (const auto& decl : spec.captures) caps.push_back(fjtest::make_capture(decl, std::max<int64_t>({c.sq, c.sk, 128}), rng));
  for (auto& h : caps) {
    h.view.data = h.bytes.data();
    host_caps.push_back(h.view);
  }
  std::vector<fjtest::DeviceCapture> dcaps;
  for (const fjtest::HostCap& h : caps) dcaps.push_back(fjtest::upload_capture(h));
  const std::vector<TensorView> tcaps = fjtest::views_of(dcaps);
  // Capture gradients: fp32, dense, poisoned (the call zeroes them).
  std::vector<std::unique_ptr<fjtest::DeviceBuffer>> gcap_bufs(tcaps.size());
  std::vector<TensorView> gcaps;
  if (capture_grads) {
    const std::vector<int> diff = flashjit::codegen::score_grad_captures(spec.score_mod, spec.captures);
    REQUIRE(!diff.empty());
    gcaps.resize(tcaps.size());
    for (int ci : diff) {
      const TensorView& t = tcaps[static_cast<size_t>(ci)];
      int64_t n = 1;
      TensorView g;
      g.dtype = ElemType::f32;
      g.rank = t.rank;
      for (int r = t.rank - 1; r >= 0; --r) g.sizes[r] = t.sizes[r], g.strides[r] = n, n *= t.sizes[r];
      gcap_bufs[static_cast<size_t>(ci)] = std::make_unique<fjtest::DeviceBuffer>(static_cast<size_t>(n) * 4);
      gcap_bufs[static_cast<size_t>(ci)]->poison();
      g.data = gcap_bufs[static_cast<size_t>(ci)]->data();
      gcaps[static_cast<size_t>(ci)] = g;
    }
  }
  options.capture_grads = gcaps;

  fjtest::DeviceBuffer bq(q.size() * 2), bk(k.size() * 2), bv(v.size() * 2), bo(dout.size() * 2), bdo(dout.size() * 2),
      blse(static_cast<size_t>(B * c.hq * c.sq) * 4), bdq(q.size() * 2), bdk(k.size() * 2), bdv(v.size() * 2);
  bq.upload(q.data());
  bk.upload(k.data());
  bv.upload(v.data());
  bdo.upload(dout.data());
  const ElemType et = c.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  auto view = [&](const fjtest::DeviceBuffer& buf, int64_t H, int64_t S, int C) {
    return bshd ? TensorView::bshd(buf.data(), et, B, S, H, C) : TensorView::bhsd(buf.data(), et, B, H, S, C);
  };
  const TensorView tq = view(bq, c.hq, c.sq, d), tk = view(bk, c.hkv, c.sk, d), tv = view(bv, c.hkv, c.sk, dv);
  const TensorView to = view(bo, c.hq, c.sq, dv), tdo = view(bdo, c.hq, c.sq, dv);
  const TensorView tdq = view(bdq, c.hq, c.sq, d), tdk = view(bdk, c.hkv, c.sk, d), tdv = view(bdv, c.hkv, c.sk, dv);
  const TensorView tl = TensorView::lse(static_cast<float*>(blse.data()), B, c.hq, c.sq);
  auto& drv = flashjit::CudaDriver::get();
  bo.poison();
  blse.poison();
  flashjit::forward(spec, tq, tk, tv, to, &tl, nullptr, tcaps, dropout ? dropout->rng : flashjit::DropoutRng{});
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after forward");
  std::vector<float> lse(static_cast<size_t>(B * c.hq * c.sq));
  blse.download(lse.data());

  std::vector<std::vector<uint16_t>> gq(static_cast<size_t>(runs)), gk(gq.size()), gv(gq.size());
  for (size_t run = 0; run < gq.size(); ++run) {
    bdq.poison();
    bdk.poison();
    bdv.poison();
    flashjit::backward(spec, tq, tk, tv, to, tl, tdo, tdq, tdk, tdv, nullptr, tcaps, options);
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after backward");
    gq[run].resize(q.size()), gk[run].resize(k.size()), gv[run].resize(v.size());
    bdq.download(gq[run].data());
    bdk.download(gk[run].data());
    bdv.download(gv[run].data());
  }
  // dK and dV: each element summed by one block in a fixed order. dQ: fp32 atomics, whose
  // order varies, so the two runs may differ in the last bits of the accumulator.
  // Deterministic mode: dQ by bwd_dq, in one fixed order, so it too.
  for (size_t run = 1; run < gq.size(); ++run) {
    REQUIRE(std::memcmp(gk[0].data(), gk[run].data(), gk[0].size() * 2) == 0);
    REQUIRE(std::memcmp(gv[0].data(), gv[run].data(), gv[0].size() * 2) == 0);
    if (deterministic) REQUIRE(std::memcmp(gq[0].data(), gq[run].data(), gq[0].size() * 2) == 0);
  }

  const flashjit::eval::Grads ref =
      flashjit::eval::reference_attention_backward(spec, hq, hk, hv, hdo, host_caps, nullptr, key);
  BwdErrors e;
  for (const HostTensor* t : {&ref.dq, &ref.dk, &ref.dv})
    for (double x : t->data)
      if (!std::isfinite(x)) {
        e.nan_reference = true;
        return e;
      }
  auto compare = [&](const std::vector<uint16_t>& got, const HostTensor& r, const char* what) {
    double err2 = 0, ref2 = 0;
    for (int64_t b = 0; b < r.b; ++b)
      for (int64_t h = 0; h < r.h; ++h)
        for (int64_t s = 0; s < r.s; ++s)
          for (int64_t x = 0; x < r.d; ++x) {
            const double g = fjtest::from_bits(got[static_cast<size_t>(offset_of(bshd, r.b, r.h, r.s, r.d, b, h, s, x))], c.dtype);
            if (!std::isfinite(g)) FAIL(what << " (" << b << ", " << h << ", " << s << ", " << x << ") is " << g);
            const double want = r.at(b, h, s, x);
            err2 += (g - want) * (g - want);
            ref2 += want * want;
          }
    return ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  };
  // Capture gradients against the float64 backward of the O the forward stored (its D from
  // that O, as the kernels'): a capture gradient sums terms that cancel (every row of dS sums
  // to 0), so O's rounding to the dtype moves it by up to tens of percent of itself, the
  // same in any implementation; what is the kernel's own is then checked tightly.
  // BwdErrors::dcap_exact: the distance to the exact reference, for the record.
  // With dropout the gradients are checked against it too: a row whose visible keys are one
  // (top-left causal, row 0) has dS = Z·dP − D = 0 exactly, but the stored O = round(Z·V) makes
  // D differ from Z·dP by O's rounding, which the exact reference (dq = dk = 0) calls an
  // infinite relative error.
  flashjit::eval::Grads ref_of_o;
  if (!gcaps.empty() || dropout) {
    std::vector<uint16_t> obits(dout.size());
    bo.download(obits.data());
    HostTensor ho(B, c.hq, c.sq, dv);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t s = 0; s < c.sq; ++s)
          for (int x = 0; x < dv; ++x)
            ho.at(b, h, s, x) =
                fjtest::from_bits(obits[static_cast<size_t>(offset_of(bshd, B, c.hq, c.sq, dv, b, h, s, x))], c.dtype);
    ref_of_o = flashjit::eval::reference_attention_backward(spec, hq, hk, hv, hdo, host_caps, &ho, key);
  }
  for (size_t ci = 0; ci < gcaps.size(); ++ci) {
    if (gcaps[ci].data == nullptr) continue;
    const std::vector<double>& want = ref_of_o.dcaptures[ci];
    const std::vector<double>& exact = ref.dcaptures[ci];
    std::vector<float> got(want.size());
    gcap_bufs[ci]->download(got.data());
    double err2 = 0, ref2 = 0, exact_err2 = 0, exact2 = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (!std::isfinite(got[i])) FAIL("capture gradient " << ci << " element " << i << " is " << got[i]);
      err2 += (got[i] - want[i]) * (got[i] - want[i]);
      ref2 += want[i] * want[i];
      exact_err2 += (got[i] - exact[i]) * (got[i] - exact[i]);
      exact2 += exact[i] * exact[i];
    }
    e.dcap = std::max(e.dcap, ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2));
    e.dcap_exact = std::max(e.dcap_exact, exact2 > 0 ? std::sqrt(exact_err2 / exact2) : std::sqrt(exact_err2));
  }
  if (dropout) {  // the forward with the same mask, from the reference's own Philox
    std::vector<uint16_t> obits(dout.size());
    bo.download(obits.data());
    const flashjit::eval::Result fref = flashjit::eval::reference_attention(spec, hq, hk, hv, host_caps, key);
    e.o = compare(obits, fref.o, "o");
  }
  const flashjit::eval::Grads& gref = dropout ? ref_of_o : ref;
  e.dq = compare(gq[0], gref.dq, "dq");
  e.dk = compare(gk[0], gref.dk, "dk");
  e.dv = compare(gv[0], gref.dv, "dv");
  // A row with no visible key: exactly zero gradient.
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < c.hq; ++h)
      for (int64_t i = 0; i < c.sq; ++i)
        if (lse[static_cast<size_t>((b * c.hq + h) * c.sq + i)] == -INFINITY) {
          ++e.masked_rows;
          for (int x = 0; x < d; ++x)
            REQUIRE(fjtest::from_bits(gq[0][static_cast<size_t>(offset_of(bshd, B, c.hq, c.sq, d, b, h, i, x))], c.dtype) == 0.0);
        }
  return e;
}

// Bounds against float64: P and dS are rounded to the dtype as the GEMMs' operands, and the
// gradients are stored in it.
void check_backward_errors(const BwdErrors& e, DType dtype, std::map<std::string, BwdErrors>& worst) {
  const double bound = dtype == DType::bf16 ? 3e-2 : 6e-3;
  CHECK(e.dq < bound);
  CHECK(e.dk < bound);
  CHECK(e.dv < bound);
  BwdErrors& w = worst[flashjit::to_string(dtype)];
  w.dq = std::max(w.dq, e.dq), w.dk = std::max(w.dk, e.dk), w.dv = std::max(w.dv, e.dv);
  w.masked_rows += e.masked_rows;
}

void print_worst(const char* what, int n, const std::map<std::string, BwdErrors>& worst) {
  std::printf("GPU backward %s: %d cases checked;", what, n);
  for (const auto& [dt, w] : worst)
    std::printf(" %s worst rel dq %.2e dk %.2e dv %.2e (%lld fully masked rows);", dt.c_str(), w.dq, w.dk, w.dv,
                static_cast<long long>(w.masked_rows));
  std::printf("\n");
}

std::vector<fjtest::Variant> backward_variants() {
  using MK = flashjit::MaskKind;
  std::vector<fjtest::Variant> v = {{"no mask", "", "", {}, MK::none},
                                    {"causal", "", "", {}, MK::causal},
                                    {"sliding window", "", "", {}, MK::sliding_window}};
  for (const fjtest::Variant& n : fjtest::named_variants()) v.push_back(n);
  return v;
}

}  // namespace

// Every variant (built-ins, expressions recognised as bands, interval-classified masks,
// score_mods with their derivatives) over dtypes, head dims, GQA ratios (3:1 and 5:1
// included), odd lengths, seqlen_q != seqlen_k and both layouts: 4 specs per variant and
// dtype, each over 3 shapes (384 cases).
TEST_CASE("backward: every variant against the float64 reference", "[gpu][backward][bwd_variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  struct Shape {
    int64_t sq, sk;
    int batch;
  };
  const std::vector<Shape> shapes = {{1, 1, 1}, {17, 17, 2}, {100, 257, 1}, {257, 100, 2}, {1000, 130, 1}, {64, 1000, 1}};
  const std::vector<std::pair<int, int>> dims = {{64, 64}, {128, 128}, {32, 32}, {96, 96}, {256, 256}, {128, 64}, {192, 192}};
  const std::vector<std::pair<int, int>> heads = {{2, 2}, {3, 1}, {4, 2}, {5, 1}, {6, 2}};
  std::map<std::string, BwdErrors> worst;
  int n = 0;
  uint32_t seed = 11;
  const std::vector<fjtest::Variant> vars = backward_variants();
  for (size_t vi = 0; vi < vars.size(); ++vi)
    for (DType dt : {DType::bf16, DType::f16})
      for (int pick = 0; pick < 4; ++pick) {
        const size_t k = vi * 5 + pick * 3 + (dt == DType::f16 ? 1 : 0);
        fjtest::Case c{vars[vi], dt, dims[k % dims.size()].first, heads[k % heads.size()].first,
                       heads[k % heads.size()].second, 0, 0, 1, std::nullopt};
        c.dv = dims[k % dims.size()].second;
        for (size_t si = 0; si < 3; ++si) {
          const Shape& s = shapes[(k + 2 * si) % shapes.size()];
          c.sq = s.sq, c.sk = s.sk, c.batch = s.batch;
          const BwdErrors e = run_backward_case(c, (k + si) % 2 == 1, seed++);
          check_backward_errors(e, dt, worst);
          ++n;
        }
      }
  print_worst("variants", n, worst);
}

// The mma.sync skeleton where the device would pick wgmma (sm_90a, head dims 64 and 128):
// both back ends stay checked on a Hopper machine.
TEST_CASE("backward: the mma.sync skeleton on every arch against the float64 reference", "[gpu][backward][bwd_variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<fjtest::Variant> vars = backward_variants();
  const std::vector<std::pair<int, int>> dims = {{64, 64}, {128, 128}, {128, 64}};
  std::map<std::string, BwdErrors> worst;
  int n = 0;
  for (size_t vi = 0; vi < vars.size(); ++vi)
    for (DType dt : {DType::bf16, DType::f16}) {
      const auto [d, dv] = dims[(vi + (dt == DType::f16 ? 1 : 0)) % dims.size()];
      for (int layout = 0; layout < 2; ++layout) {
        fjtest::Case c{vars[vi], dt, d, 3, 1, (vi + layout) % 2 ? 100 : 257, (vi + layout) % 2 ? 257 : 100, 2, std::nullopt};
        c.dv = dv;
        const flashjit::TileConfig tile = flashjit::default_bwd_tile(fjtest::spec_of(c), "sm_80");
        check_backward_errors(run_backward_case(c, layout == 1, 500 + static_cast<uint32_t>(n), tile), dt, worst);
        ++n;
      }
    }
  print_worst("mma.sync skeleton", n, worst);
}

// Gradients into captured tensors (ALiBi slopes, a relative-bias table, a mixed score_mod)
// against the float64 reference's, on both skeletons and in the deterministic mode.
TEST_CASE("backward: gradients into captured tensors against the float64 reference", "[gpu][backward][bwd_variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  using MK = flashjit::MaskKind;
  const flashjit::expr::CaptureDecl slopes{"slopes", flashjit::expr::CaptureDType::f32, 1};
  const flashjit::expr::CaptureDecl table{"table", flashjit::expr::CaptureDType::f32, 2};
  const std::vector<fjtest::Variant> vars = {
      {"ALiBi + causal", "", "score + slopes[h] * float(kv_idx - q_idx)", {slopes}, MK::causal},
      {"relative bias table", "", "score + table[h, min(max(q_idx - kv_idx + 64, 0), 127)]", {table}, MK::none},
      {"scaled + bias", "", "score * (1.0 + 0.1 * slopes[h]) + table[h, min(max(kv_idx - q_idx + 64, 0), 127)]",
       {slopes, table}, MK::causal}};
  std::map<std::string, BwdErrors> worst;
  double worst_cap = 0, worst_cap_exact = 0;
  int n = 0;
  for (size_t vi = 0; vi < vars.size(); ++vi)
    for (DType dt : {DType::bf16, DType::f16})
      for (int mode = 0; mode < 3; ++mode) {  // default tile, mma.sync forced, deterministic
        const int d = (vi + mode) % 2 ? 128 : 64;
        fjtest::Case c{vars[vi], dt, d, 4, 2, mode == 1 ? 100 : 257, 200, 2, std::nullopt};
        std::optional<flashjit::TileConfig> tile;
        if (mode == 1) tile = flashjit::default_bwd_tile(fjtest::spec_of(c), "sm_80");
        const BwdErrors e = run_backward_case(c, mode == 2, 1300 + static_cast<uint32_t>(n), tile, mode == 2, 2, true);
        check_backward_errors(e, dt, worst);
        CHECK(e.dcap < 5e-3);  // fp32 arithmetic on sums that cancel (6e-4 in a numpy emulation)
        worst_cap = std::max(worst_cap, e.dcap);
        worst_cap_exact = std::max(worst_cap_exact, e.dcap_exact);
        ++n;
      }
  print_worst("capture gradients", n, worst);
  std::printf("  worst relative error of a capture gradient: %.2e against the backward of the stored O, %.2e against the "
              "exact reference\n",
              worst_cap, worst_cap_exact);
}

// Every tile the backward's tuner may pick (bwd_tile_candidates on this GPU's arch: both
// skeletons on sm_90a) against float64, so a winner is never a wrong kernel.
TEST_CASE("backward: every bwd_dkdv tuning candidate against the float64 reference", "[gpu][backward][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::string arch = flashjit::current_device_info().arch;
  const std::vector<fjtest::Variant> vars = backward_variants();
  std::map<std::string, BwdErrors> worst;
  int n = 0;
  for (size_t vi : {size_t{1}, size_t{7}})  // causal; document + causal (interval-classified)
    for (const auto& [d, dv] : std::vector<std::pair<int, int>>{{64, 64}, {128, 128}, {128, 64}}) {
      const DType dt = n % 2 ? DType::f16 : DType::bf16;
      fjtest::Case c{vars[vi], dt, d, 3, 1, 300, 257, 2, std::nullopt};
      c.dv = dv;
      for (const flashjit::TileConfig& t : flashjit::bwd_tile_candidates(fjtest::spec_of(c), arch)) {
        INFO("candidate " << flashjit::to_string(t));
        check_backward_errors(run_backward_case(c, n % 3 == 0, 6000 + static_cast<uint32_t>(n), t), dt, worst);
        ++n;
      }
    }
  print_worst("bwd_dkdv tuning candidates", n, worst);
}

// With FLASHJIT_AUTOTUNE on, the first backward() of an untiled spec and shape bucket times
// every bwd_tile_candidates() tile, stores the winner under kind bwd_dkdv and runs with it
// (correct against float64); the next call reuses the decision without tuning.
TEST_CASE("backward: the bwd_dkdv tile is tuned once, stored and correct", "[gpu][backward][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  fjtest::ScratchDir cache("bwd-autotune-gpu");
  fjtest::ScopedEnv cache_env("FLASHJIT_CACHE_DIR", cache.path.string());
  fjtest::ScopedEnv tune_env("FLASHJIT_AUTOTUNE", "1");
  fjtest::ScopedEnv mode_env("FLASHJIT_TUNE_MODE", "blocking");  // tuned inside the first call
  const std::vector<fjtest::Variant> vars = backward_variants();
  std::map<std::string, BwdErrors> worst;
  for (int d : {64, 128}) {
    fjtest::Case c{vars[1], DType::bf16, d, 6, 2, 1000, 1000, 2, std::nullopt};  // causal, GQA 3:1
    const flashjit::AttentionSpec spec = fjtest::spec_of(c);
    const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
    check_backward_errors(run_backward_case(c, false, 4000 + static_cast<uint32_t>(d)), DType::bf16, worst);
    const flashjit::RuntimeStats s1 = flashjit::runtime_stats();
    CHECK(s1.tunings >= s0.tunings + 2);  // the forward's tile and the backward's
    flashjit::AttentionSpec key_spec = spec;
    key_spec.return_lse = true;
    const flashjit::TuningKey key = flashjit::make_tuning_key(key_spec, flashjit::shape_bucket(2, 6, 1000, 1000),
                                                              flashjit::current_device_info(), "bwd_dkdv");
    const auto rec = flashjit::TuningDb(cache.path).lookup(key);
    REQUIRE(rec);
    const auto candidates = flashjit::bwd_tile_candidates(spec, flashjit::current_device_info().arch);
    REQUIRE(rec->candidates.size() == candidates.size());
    int timed = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      INFO(flashjit::to_string(rec->candidates[i].tile) << " " << rec->candidates[i].error);
      CHECK(rec->candidates[i].tile == candidates[i]);
      timed += rec->candidates[i].ok;
    }
    CHECK(timed == static_cast<int>(candidates.size()));
    std::printf("backward autotune d%d: %d candidates, winner %s at %.4f ms (heuristic %s)\n", d, timed,
                flashjit::to_string(rec->tile).c_str(), rec->median_ms, flashjit::to_string(candidates.front()).c_str());
    // Again: remembered in-process, no tuning.
    run_backward_case(c, true, 5000 + static_cast<uint32_t>(d));
    CHECK(flashjit::runtime_stats().tunings == s1.tunings);
  }
}

// Deterministic mode: dq, dk, dv bit-identical over 10 runs (dQ by the q-stationary bwd_dq
// kernel), and as accurate as the default mode, over masks, expressions, GQA, head dims.
TEST_CASE("backward: deterministic mode is bit-identical over 10 runs", "[gpu][backward][bwd_variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<fjtest::Variant> vars = backward_variants();
  const std::vector<std::pair<int, int>> dims = {{64, 64}, {128, 128}, {32, 32}, {96, 96}, {256, 256}, {128, 64}, {192, 192}};
  std::map<std::string, BwdErrors> worst;
  int n = 0;
  for (size_t vi = 0; vi < vars.size(); ++vi) {
    const DType dt = vi % 2 ? DType::f16 : DType::bf16;
    const auto [d, dv] = dims[vi % dims.size()];
    fjtest::Case c{vars[vi], dt, d, vi % 3 ? 3 : 2, vi % 3 ? 1 : 2, vi % 2 ? 130 : 257, vi % 2 ? 257 : 100, 2, std::nullopt};
    c.dv = dv;
    check_backward_errors(run_backward_case(c, vi % 2 == 0, 900 + static_cast<uint32_t>(vi), std::nullopt, true, 10), dt,
                          worst);
    ++n;
  }
  print_worst("deterministic (10 runs each, bit-identical)", n, worst);
}

// Random mask expressions (interval-classified, over captured tensors), every fourth with a
// random score_mod; cases whose reference is not finite (the expression's own NaN) are counted
// and skipped.
TEST_CASE("backward: random expressions against the float64 reference", "[gpu][backward][bwd_variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<flashjit::expr::CaptureDecl> caps = {{"doc", flashjit::expr::CaptureDType::i32, 1},
                                                         {"bias", flashjit::expr::CaptureDType::f32, 2}};
  std::mt19937_64 gen(2027);
  const std::vector<std::pair<int64_t, int64_t>> lens = {{17, 17}, {200, 333}, {333, 200}, {129, 129}};
  std::map<std::string, BwdErrors> worst;
  int n = 0, skipped = 0;
  for (int i = 0; i < 64; ++i) {
    fjtest::Variant var;
    var.name = "random " + std::to_string(i);
    var.caps = caps;
    var.mask = flashjit::testing::random_mask_expr(gen, caps, 8, 5);
    if (i % 4 == 0) var.score_mod = flashjit::testing::random_score_expr(gen, caps, 8, 3);
    const auto [sq, sk] = lens[static_cast<size_t>(i) % lens.size()];
    const DType dt = i % 3 == 0 ? DType::f16 : DType::bf16;
    const fjtest::Case c{var, dt, 64, 3, 1, sq, sk, 2, std::nullopt};
    INFO(var.mask << " | " << var.score_mod);
    const BwdErrors e = run_backward_case(c, i % 2 == 1, 100 + i);
    if (e.nan_reference) {
      ++skipped;
      continue;
    }
    check_backward_errors(e, dt, worst);
    ++n;
  }
  CHECK(skipped * 4 < n);
  print_worst("random expressions", n, worst);
  std::printf("  (%d cases with a non-finite reference skipped)\n", skipped);
}

// Small cases for compute-sanitizer: a partial key block and q tile, GQA, a classified mask
// with a score_mod, and a head dim whose warps share key rows.
TEST_CASE("backward under the sanitizers", "[gpu][sanitize][backward]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  std::map<std::string, BwdErrors> worst;
  const std::vector<fjtest::Variant> vars = backward_variants();
  fjtest::Case a{vars[1], DType::bf16, 64, 3, 1, 70, 90, 1, std::nullopt};
  check_backward_errors(run_backward_case(a, false, 1), DType::bf16, worst);
  fjtest::Case b{vars[7], DType::f16, 128, 2, 2, 33, 65, 1, std::nullopt};  // document + causal
  check_backward_errors(run_backward_case(b, true, 2), DType::f16, worst);
  fjtest::Case c{vars[13], DType::bf16, 64, 2, 1, 50, 50, 1, std::nullopt};  // softcap + causal
  check_backward_errors(run_backward_case(c, false, 3), DType::bf16, worst);
  check_backward_errors(run_backward_case(b, false, 4, std::nullopt, /*deterministic=*/true), DType::f16, worst);
  fjtest::Case e{vars[1], DType::bf16, 128, 3, 1, 70, 90, 1, std::nullopt};
  check_backward_errors(run_backward_case(e, true, 5, std::nullopt, /*deterministic=*/true), DType::bf16, worst);
  // Gradients into a captured bias table (the _dcap kernel's warp-aggregated atomics).
  const flashjit::expr::CaptureDecl table{"table", flashjit::expr::CaptureDType::f32, 2};
  const fjtest::Variant bias{"relative bias table", "", "score + table[h, min(max(q_idx - kv_idx + 64, 0), 127)]",
                             {table}, flashjit::MaskKind::causal};
  fjtest::Case f{bias, DType::bf16, 64, 2, 1, 70, 90, 1, std::nullopt};
  const BwdErrors ef = run_backward_case(f, false, 6, std::nullopt, false, 2, /*capture_grads=*/true);
  check_backward_errors(ef, DType::bf16, worst);
  CHECK(ef.dcap < 5e-3);
}

// Dropout under the sanitizers: the lane exchanges of dropout.cuh in the forward and in both
// backward skeletons' layouts (bwd_dkdv's Sᵀ, bwd_dq's S), with partial tiles and GQA.
TEST_CASE("dropout under the sanitizers", "[gpu][sanitize][backward][dropout]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  std::map<std::string, BwdErrors> worst;
  const std::vector<fjtest::Variant> vars = backward_variants();
  DropoutCase d;
  d.key = flashjit::DropoutKey{1234567u, 89u};
  d.rng.seed = d.key.seed, d.rng.offset = d.key.offset;
  fjtest::Case a{vars[1], DType::bf16, 64, 3, 1, 70, 90, 1, std::nullopt};
  a.dropout_p = 0.2;
  const BwdErrors ea = run_backward_case(a, false, 11, std::nullopt, false, 2, false, d);
  check_backward_errors(ea, DType::bf16, worst);
  CHECK(ea.o < 2e-2);
  fjtest::Case b{vars[7], DType::f16, 128, 2, 2, 33, 65, 1, std::nullopt};
  b.dropout_p = 0.5;
  const BwdErrors eb = run_backward_case(b, true, 12, std::nullopt, /*deterministic=*/true, 2, false, d);
  check_backward_errors(eb, DType::f16, worst);
  CHECK(eb.o < 4e-3);
}

// ---- dropout (issue 11): forward and backward with the same mask as the references' --------

// Every built-in and named variant with dropout over dtypes, head dims, GQA ratios, odd
// lengths, both layouts, both skeletons and the deterministic mode: the forward's O and the
// gradients against float64 references that draw the mask from philox.cuh themselves. Each
// case has its own RNG state; one in four reads it from device memory (CUDA-graph path) with
// other values in the host fields, so the kernels must take the device's.
TEST_CASE("dropout: forward and backward of every variant against the float64 reference", "[gpu][backward][dropout]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<fjtest::Variant> vars = backward_variants();
  const std::vector<std::pair<int64_t, int64_t>> lens = {{17, 17}, {100, 257}, {257, 100}, {1, 130}, {1000, 64}};
  const std::vector<std::pair<int, int>> dims = {{64, 64}, {128, 128}, {32, 32}, {96, 96}, {128, 64}, {256, 256}};
  const std::vector<std::pair<int, int>> heads = {{3, 1}, {2, 2}, {5, 1}, {4, 2}};
  std::map<std::string, BwdErrors> worst;
  double worst_o = 0;
  int n = 0;
  fjtest::DeviceBuffer state(16);
  for (size_t vi = 0; vi < vars.size(); ++vi)
    for (DType dt : {DType::bf16, DType::f16})
      for (int mode = 0; mode < 3; ++mode) {  // default tile, mma.sync forced, deterministic
        const size_t k = vi * 3 + static_cast<size_t>(mode) + (dt == DType::f16 ? 1 : 0);
        fjtest::Case c{vars[vi], dt, dims[k % dims.size()].first, heads[k % heads.size()].first,
                       heads[k % heads.size()].second, lens[k % lens.size()].first, lens[k % lens.size()].second,
                       1 + static_cast<int>(k % 2), std::nullopt};
        c.dv = dims[k % dims.size()].second;
        c.dropout_p = (k % 3 == 0) ? 0.5 : 0.15;
        std::optional<flashjit::TileConfig> tile;
        if (mode == 1) {  // both kernels on mma.sync: the forward's tile too
          tile = flashjit::default_bwd_tile(fjtest::spec_of(c), "sm_80");
          c.tile = flashjit::default_tile(fjtest::spec_of(c), "sm_80");
        }
        DropoutCase d;
        d.key = flashjit::DropoutKey{0x9e3779b97f4a7c15ull * (n + 1), static_cast<uint64_t>(n) << 33 | 7};
        d.rng.seed = d.key.seed, d.rng.offset = d.key.offset;
        if (n % 4 == 3) {  // from device memory; the host fields then hold other values
          const uint64_t dev[2] = {d.key.seed, d.key.offset};
          state.upload(dev);
          d.rng.device_state = static_cast<const uint64_t*>(state.data());
          d.rng.seed ^= 1, d.rng.offset ^= 1;
        }
        INFO("dropout_p " << c.dropout_p << " mode " << mode << (d.rng.device_state ? " device state" : ""));
        const BwdErrors e = run_backward_case(c, k % 2 == 1, 7000 + static_cast<uint32_t>(n), tile, mode == 2, mode == 2 ? 3 : 2,
                                              false, d);
        check_backward_errors(e, dt, worst);
        CHECK(e.o >= 0);
        CHECK(e.o < (dt == DType::bf16 ? 2e-2 : 4e-3));
        worst_o = std::max(worst_o, e.o);
        ++n;
      }
  // Capture gradients with dropout (ALiBi slopes, a bias table), default and deterministic.
  using MK = flashjit::MaskKind;
  const flashjit::expr::CaptureDecl slopes{"slopes", flashjit::expr::CaptureDType::f32, 1};
  const flashjit::expr::CaptureDecl table{"table", flashjit::expr::CaptureDType::f32, 2};
  const std::vector<fjtest::Variant> cap_vars = {
      {"ALiBi + causal", "", "score + slopes[h] * float(kv_idx - q_idx)", {slopes}, MK::causal},
      {"relative bias table", "", "score + table[h, min(max(q_idx - kv_idx + 64, 0), 127)]", {table}, MK::none}};
  double worst_cap = 0;
  for (size_t vi = 0; vi < cap_vars.size(); ++vi)
    for (int det = 0; det < 2; ++det) {
      fjtest::Case c{cap_vars[vi], vi ? DType::f16 : DType::bf16, det ? 128 : 64, 4, 2, 257, 200, 2, std::nullopt};
      c.dropout_p = 0.2;
      DropoutCase d;
      d.key = flashjit::DropoutKey{777u + vi, 3u + static_cast<uint64_t>(det)};
      d.rng.seed = d.key.seed, d.rng.offset = d.key.offset;
      const BwdErrors e = run_backward_case(c, det == 1, 9100 + static_cast<uint32_t>(2 * vi + det), std::nullopt, det == 1,
                                            2, true, d);
      check_backward_errors(e, c.dtype, worst);
      CHECK(e.dcap < 5e-3);
      worst_cap = std::max(worst_cap, e.dcap);
      ++n;
    }
  // Forward tiles whose 16-key blocks do not all pair up (dropout.cuh): mma.sync block_n 16
  // (one unpaired block), and on sm_90a wgmma block_n 176 (11 blocks: the last unpaired, and
  // every odd KV tile starting in an odd 16-key block).
  auto& drv = flashjit::CudaDriver::get();
  const bool sm90a = drv.device_arch(drv.current_device()) == "sm_90a";
  for (int t = 0; t < (sm90a ? 2 : 1); ++t) {
    fjtest::Case c{vars[0], t ? DType::bf16 : DType::f16, 64, 3, 1, 300, 1000, 2, std::nullopt};
    c.dv = 64;
    c.dropout_p = 0.3;
    c.tile = t ? flashjit::TileConfig{128, 176, 8, 2, flashjit::MmaKind::wgmma}
               : flashjit::TileConfig{64, 16, 4, 2, flashjit::MmaKind::mma_sync};
    DropoutCase d;
    d.key = flashjit::DropoutKey{0x5deece66dull + static_cast<uint64_t>(t), 11u};
    d.rng.seed = d.key.seed, d.rng.offset = d.key.offset;
    INFO("forward tile block_n " << c.tile->block_n);
    const BwdErrors e = run_backward_case(c, false, 9300 + static_cast<uint32_t>(t), std::nullopt, false, 2, false, d);
    check_backward_errors(e, c.dtype, worst);
    CHECK(e.o >= 0);
    CHECK(e.o < (c.dtype == DType::bf16 ? 2e-2 : 4e-3));
    worst_o = std::max(worst_o, e.o);
    ++n;
  }
  print_worst("with dropout", n, worst);
  std::printf("  worst relative error of the forward's O with dropout: %.2e; of a capture gradient: %.2e\n", worst_o,
              worst_cap);
}

