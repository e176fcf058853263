// The backward's kernels on the GPU, against float64 (docs/architecture.md, "Backward").
// Today: bwd_preprocess. D = rowsum(dO ∘ O) over odd lengths, every head-dim pair, both
// dtypes, BHSD and BSHD layouts; outputs poisoned (NaN) before each run; two runs agree bit
// for bit; the dQ accumulator comes back all zeros.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "catch.hpp"
#include "flashjit/backward.h"
#include "gpu_harness.h"

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
