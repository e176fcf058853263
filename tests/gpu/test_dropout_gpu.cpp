// The kernels' dropout mask, read out exactly (issue 11). With V the identity (seqlen_k =
// head_dim_v), the forward's O[i][j] = P[i][j] · Z[i][j]: nonzero exactly where the kernel
// kept (i, j). With dO the identity (seqlen_q = head_dim_v), the backward's dV[j][i] =
// P[i][j] · Z[i][j]: the same for bwd_dkdv's regenerated mask. Both must equal the host
// keep-mask (eval::dropout_keep_mask, philox.cuh) bit for bit, on both skeletons and for
// tiles of different sizes; and the kernel's keep rate must be within binomial bounds of
// 1 - p for p in {0.1, 0.2, 0.5, 0.9}. Then: the mean of O over many seeds approaches the
// output without dropout.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "catch.hpp"
#include "flashjit/backward.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/heuristics.h"
#include "flashjit/runtime.h"
#include "gpu_harness.h"

using flashjit::DType;
using flashjit::ElemType;
using flashjit::TensorView;

namespace {

struct MaskRun {
  std::vector<uint8_t> fwd_keep, bwd_keep;  // (b, h, i, j), 1 = kept
};

// One forward (and backward) with identity V (and dO); the keep-masks they reveal.
MaskRun read_kernel_masks(const flashjit::AttentionSpec& spec, int B, int S, const flashjit::DropoutRng& rng,
                          const std::optional<flashjit::TileConfig>& bwd_tile, uint32_t seed) {
  const int H = spec.num_heads_q, D = spec.head_dim, DV = spec.head_dim_v;
  REQUIRE(S == DV);
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  const size_t nq = static_cast<size_t>(B) * H * S * D, nv = static_cast<size_t>(B) * H * S * DV;
  std::vector<uint16_t> q(nq), k(nq), v(nv, 0), dout(nv, 0);
  for (auto& x : q) x = fjtest::to_bits(nd(gen), spec.dtype);
  for (auto& x : k) x = fjtest::to_bits(nd(gen), spec.dtype);
  for (int bh = 0; bh < B * H; ++bh)
    for (int r = 0; r < S; ++r) {
      v[(static_cast<size_t>(bh) * S + r) * DV + r] = fjtest::to_bits(1.0, spec.dtype);
      dout[(static_cast<size_t>(bh) * S + r) * DV + r] = fjtest::to_bits(1.0, spec.dtype);
    }
  fjtest::DeviceBuffer bq(nq * 2), bk(nq * 2), bv(nv * 2), bo(nv * 2), bdo(nv * 2), blse(static_cast<size_t>(B) * H * S * 4),
      bdq(nq * 2), bdk(nq * 2), bdv(nv * 2);
  bq.upload(q.data()), bk.upload(k.data()), bv.upload(v.data()), bdo.upload(dout.data());
  bo.poison(), blse.poison(), bdq.poison(), bdk.poison(), bdv.poison();
  const ElemType et = spec.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  const TensorView tq = TensorView::bhsd(bq.data(), et, B, H, S, D), tk = TensorView::bhsd(bk.data(), et, B, H, S, D),
                   tv = TensorView::bhsd(bv.data(), et, B, H, S, DV), to = TensorView::bhsd(bo.data(), et, B, H, S, DV),
                   tdo = TensorView::bhsd(bdo.data(), et, B, H, S, DV), tdq = TensorView::bhsd(bdq.data(), et, B, H, S, D),
                   tdk = TensorView::bhsd(bdk.data(), et, B, H, S, D), tdv = TensorView::bhsd(bdv.data(), et, B, H, S, DV);
  const TensorView tl = TensorView::lse(static_cast<float*>(blse.data()), B, H, S);
  flashjit::forward(spec, tq, tk, tv, to, &tl, nullptr, {}, rng);
  flashjit::BackwardOptions opt;
  opt.tile = bwd_tile;
  opt.dropout = rng;
  flashjit::backward(spec, tq, tk, tv, to, tl, tdo, tdq, tdk, tdv, nullptr, {}, opt);
  auto& drv = flashjit::CudaDriver::get();
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
  std::vector<uint16_t> o(nv), dvv(nv);
  bo.download(o.data());
  bdv.download(dvv.data());
  MaskRun m;
  m.fwd_keep.resize(static_cast<size_t>(B) * H * S * S);
  m.bwd_keep.resize(m.fwd_keep.size());
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < S; ++i)
        for (int j = 0; j < S; ++j) {
          const size_t at = ((static_cast<size_t>(b) * H + h) * S + i) * S + j;
          const double x = fjtest::from_bits(o[((static_cast<size_t>(b) * H + h) * S + i) * DV + j], spec.dtype);
          const double y = fjtest::from_bits(dvv[((static_cast<size_t>(b) * H + h) * S + j) * DV + i], spec.dtype);
          REQUIRE(std::isfinite(x));
          REQUIRE(std::isfinite(y));
          m.fwd_keep[at] = x != 0.0;
          m.bwd_keep[at] = y != 0.0;
        }
  return m;
}

flashjit::AttentionSpec mask_spec(DType dt, double p, int d, int heads) {
  flashjit::AttentionSpec s;
  s.dtype = dt;
  s.head_dim = d;
  s.head_dim_v = 128;
  s.num_heads_q = heads;
  s.num_heads_kv = heads;  // identity V per head: no GQA here (the variant matrix has it)
  s.dropout_p = p;
  s.return_lse = true;
  return s;
}

}  // namespace

TEST_CASE("dropout: the kernels drop exactly the host keep-mask's elements", "[gpu][dropout]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const int B = 2, H = 3, S = 128;
  int checked = 0;
  for (DType dt : {DType::bf16, DType::f16})
    for (int d : {64, 128})
      for (int back_end = 0; back_end < 2; ++back_end) {  // device default (wgmma on sm_90a), mma.sync
        flashjit::AttentionSpec spec = mask_spec(dt, 0.3, d, H);
        std::optional<flashjit::TileConfig> bwd_tile;
        if (back_end == 1) {
          spec.tile = flashjit::default_tile(spec, "sm_80");
          bwd_tile = flashjit::default_bwd_tile(spec, "sm_80");
        }
        const flashjit::DropoutRng rng{0xabcdef12345ull + static_cast<uint64_t>(checked), 99u + static_cast<uint64_t>(checked)};
        const MaskRun m = read_kernel_masks(spec, B, S, rng, bwd_tile, 40 + static_cast<uint32_t>(checked));
        const std::vector<uint8_t> host = flashjit::eval::dropout_keep_mask(spec, B, S, S, flashjit::DropoutKey{rng.seed, rng.offset});
        INFO(flashjit::to_string(dt) << " d " << d << (back_end ? " mma.sync" : " default"));
        size_t fwd_diff = 0, bwd_diff = 0;
        for (size_t i = 0; i < host.size(); ++i) fwd_diff += m.fwd_keep[i] != host[i], bwd_diff += m.bwd_keep[i] != host[i];
        CHECK(fwd_diff == 0);
        CHECK(bwd_diff == 0);
        ++checked;
      }
  std::printf("GPU dropout masks: %d configurations, forward and bwd_dkdv equal to the host keep-mask\n", checked);
}

TEST_CASE("dropout: the kernels' keep rate is 1 - p within binomial bounds", "[gpu][dropout]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const int B = 4, H = 8, S = 128;
  for (double p : {0.1, 0.2, 0.5, 0.9}) {
    const flashjit::AttentionSpec spec = mask_spec(DType::bf16, p, 64, H);
    const flashjit::DropoutRng rng{static_cast<uint64_t>(p * 1e6) + 17, 5};
    const MaskRun m = read_kernel_masks(spec, B, S, rng, std::nullopt, 77);
    double kept = 0;
    for (uint8_t x : m.fwd_keep) kept += x;
    const double n = static_cast<double>(m.fwd_keep.size());
    const double q = 1.0 - flashjit::dropout_threshold(p) / 256.0;
    const double sigma = std::sqrt(q * (1 - q) / n);
    INFO("p " << p << " kept " << kept / n << " expected " << q << " sigma " << sigma);
    CHECK(std::abs(kept / n - q) < 5 * sigma);
    std::printf("GPU dropout p %.1f: kept %.5f of %.0f (expected %.5f, 5 sigma %.5f)\n", p, kept / n, n, q, 5 * sigma);
  }
}

// E[O with dropout] = O without: the mean over 64 seeds is within a few standard errors.
TEST_CASE("dropout: the mean output over many seeds approaches the output without dropout", "[gpu][dropout]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const int B = 1, H = 2, S = 200, D = 64, runs = 64;
  std::mt19937 gen(5);
  std::normal_distribution<double> nd(0.0, 1.0);
  const size_t n = static_cast<size_t>(B) * H * S * D;
  std::vector<uint16_t> q(n), k(n), v(n);
  for (auto* t : {&q, &k, &v})
    for (auto& x : *t) x = fjtest::to_bits(nd(gen), DType::f16);
  fjtest::DeviceBuffer bq(n * 2), bk(n * 2), bv(n * 2), bo(n * 2);
  bq.upload(q.data()), bk.upload(k.data()), bv.upload(v.data());
  const TensorView tq = TensorView::bhsd(bq.data(), ElemType::f16, B, H, S, D), tk = TensorView::bhsd(bk.data(), ElemType::f16, B, H, S, D),
                   tv = TensorView::bhsd(bv.data(), ElemType::f16, B, H, S, D), to = TensorView::bhsd(bo.data(), ElemType::f16, B, H, S, D);
  flashjit::AttentionSpec spec;
  spec.dtype = DType::f16;
  spec.head_dim = D;
  spec.num_heads_q = H;
  spec.mask.kind = flashjit::MaskKind::causal;
  auto& drv = flashjit::CudaDriver::get();
  std::vector<uint16_t> bits(n);
  flashjit::forward(spec, tq, tk, tv, to, nullptr, nullptr);
  drv.check(drv.cuCtxSynchronize(), "sync");
  bo.download(bits.data());
  std::vector<double> plain(n), mean(n, 0.0), sq(n, 0.0);
  for (size_t i = 0; i < n; ++i) plain[i] = fjtest::from_bits(bits[i], DType::f16);
  spec.dropout_p = 0.2;
  for (int r = 0; r < runs; ++r) {
    bo.poison();
    flashjit::forward(spec, tq, tk, tv, to, nullptr, nullptr, {}, flashjit::DropoutRng{1000u + static_cast<uint64_t>(r), 0});
    drv.check(drv.cuCtxSynchronize(), "sync");
    bo.download(bits.data());
    for (size_t i = 0; i < n; ++i) {
      const double x = fjtest::from_bits(bits[i], DType::f16);
      REQUIRE(std::isfinite(x));
      mean[i] += x / runs, sq[i] += x * x / runs;
    }
  }
  // Per element, |mean - plain| against its standard error; few may pass 4 of them.
  int far = 0;
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double se = std::sqrt(std::max(sq[i] - mean[i] * mean[i], 1e-12) / runs);
    const double z = std::abs(mean[i] - plain[i]) / (se + 1e-3);
    far += z > 4;
    worst = std::max(worst, z);
  }
  INFO("elements beyond 4 standard errors: " << far << " of " << n << "; worst " << worst);
  CHECK(far < static_cast<int>(n / 1000) + 1);
  std::printf("GPU dropout mean over %d seeds: %d of %zu elements beyond 4 standard errors of the undropped output\n", runs,
              far, n);
}
