// User-written variants on the GPU (docs/expressions.md): mask and score expressions,
// captured tensors, against the float64 reference of the CPU evaluator
// (eval::reference_attention evaluates the spec's expressions element by element, with no
// tile classification). Built-ins written as expressions, non-band masks classified by
// interval analysis, score modifications, 50+ random expressions, odd lengths,
// seqlen_q != seqlen_k, GQA, fp16/bf16, both back ends. Outputs are poisoned before each
// run; two runs must agree bit for bit; fully masked rows give 0 and LSE -inf.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include "catch.hpp"
#include "flashjit/block_mask.h"
#include "flashjit/block_mask_eval.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "gpu_harness.h"
#include "random_expr.h"
#include "variant_cases.h"

using flashjit::DType;
namespace expr = flashjit::expr;

namespace {

using namespace fjtest;

struct Errors {
  double rel = 0, max_abs = 0, lse_abs = 0;
  int64_t masked_rows = 0;
  int64_t nan_rows = 0;  // rows where the user's score_mod itself gives NaN (0 * inf, ...)
};

// `capture_size`: every dim of every capture (>= max(sq, sk) for index-read captures).
Errors run_case(const Case& c, int64_t capture_size, uint32_t seed) {
  const flashjit::AttentionSpec spec = spec_of(c);
  INFO(c.var.name << " " << flashjit::spec_to_json(spec) << " b=" << c.batch << " sq=" << c.sq << " sk=" << c.sk);
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const int64_t B = c.batch;
  auto make = [&](int64_t H, int64_t S, std::vector<uint16_t>& bits, flashjit::eval::HostTensor& host) {
    bits.resize(static_cast<size_t>(B * H * S * c.d));
    host = flashjit::eval::HostTensor(B, H, S, c.d);
    for (size_t i = 0; i < bits.size(); ++i) {
      bits[i] = fjtest::to_bits(normal(rng), c.dtype);
      host.data[i] = fjtest::from_bits(bits[i], c.dtype);
    }
  };
  std::vector<uint16_t> q, k, v;
  flashjit::eval::HostTensor hq_, hk_, hv_;
  make(c.hq, c.sq, q, hq_);
  make(c.hkv, c.sk, k, hk_);
  make(c.hkv, c.sk, v, hv_);

  std::vector<HostCap> caps;
  std::vector<expr::HostCapture> host_caps;
  for (const auto& d : spec.captures) {
    if (d.name == flashjit::kBlockMaskCapture) {
      const int64_t dims[4] = {c.bm_per_batch ? B : 1, c.bm_per_head ? c.hq : 1, (c.sq + c.block_q - 1) / c.block_q,
                               (c.sk + c.block_kv - 1) / c.block_kv};
      caps.push_back(make_cells(dims, rng));
    } else {
      caps.push_back(make_capture(d, capture_size, rng));
    }
  }
  for (auto& h : caps) {
    h.view.data = h.bytes.data();
    host_caps.push_back(h.view);
  }

  fjtest::DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv(v.size() * 2);
  fjtest::DeviceBuffer dout(static_cast<size_t>(B * c.hq * c.sq * c.d) * 2), dlse(static_cast<size_t>(B * c.hq * c.sq) * 4);
  dq.upload(q.data());
  dk.upload(k.data());
  dv.upload(v.data());
  std::vector<DeviceCapture> dcaps;
  for (const HostCap& h : caps) dcaps.push_back(upload_capture(h));
  const std::vector<flashjit::TensorView> tcaps = views_of(dcaps);
  const auto et = c.dtype == DType::bf16 ? flashjit::ElemType::bf16 : flashjit::ElemType::f16;
  const auto tq = flashjit::TensorView::bhsd(dq.data(), et, B, c.hq, c.sq, c.d);
  const auto tk = flashjit::TensorView::bhsd(dk.data(), et, B, c.hkv, c.sk, c.d);
  const auto tv = flashjit::TensorView::bhsd(dv.data(), et, B, c.hkv, c.sk, c.d);
  const auto to = flashjit::TensorView::bhsd(dout.data(), et, B, c.hq, c.sq, c.d);
  const auto tl = flashjit::TensorView::lse(static_cast<float*>(dlse.data()), B, c.hq, c.sq);

  auto& drv = flashjit::CudaDriver::get();
  auto run = [&](std::vector<uint16_t>& out, std::vector<float>& lse) {
    dout.poison();
    dlse.poison();
    flashjit::forward(spec, tq, tk, tv, to, &tl, nullptr, tcaps);
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after forward");
    out.resize(dout.bytes / 2);
    lse.resize(dlse.bytes / 4);
    dout.download(out.data());
    dlse.download(lse.data());
  };
  std::vector<uint16_t> out, out2;
  std::vector<float> lse, lse2;
  run(out, lse);
  run(out2, lse2);
  REQUIRE(std::memcmp(out.data(), out2.data(), out.size() * 2) == 0);  // no race
  REQUIRE(std::memcmp(lse.data(), lse2.data(), lse.size() * 4) == 0);

  const flashjit::eval::Result ref = flashjit::eval::reference_attention(spec, hq_, hk_, hv_, host_caps);
  Errors e;
  double err2 = 0, ref2 = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < c.hq; ++h)
      for (int64_t i = 0; i < c.sq; ++i) {
        const size_t row = static_cast<size_t>((b * c.hq + h) * c.sq + i);
        const double ref_lse = ref.lse[row];
        if (ref_lse == -INFINITY) {
          ++e.masked_rows;
          REQUIRE(lse[row] == -INFINITY);
          for (int col = 0; col < c.d; ++col) REQUIRE(fjtest::from_bits(out[row * c.d + col], c.dtype) == 0.0);
          continue;
        }
        if (std::isnan(ref_lse)) {  // NaN by the expression's own arithmetic: nothing to compare
          ++e.nan_rows;
          continue;
        }
        e.lse_abs = std::max(e.lse_abs, std::abs(lse[row] - ref_lse));
        for (int col = 0; col < c.d; ++col) {
          const double got = fjtest::from_bits(out[row * c.d + col], c.dtype);
          if (!std::isfinite(got)) FAIL("output (" << b << ", " << h << ", " << i << ", " << col << ") is " << got);
          const double r = ref.o.at(b, h, i, col);
          err2 += (got - r) * (got - r);
          ref2 += r * r;
          e.max_abs = std::max(e.max_abs, std::abs(got - r));
        }
      }
  e.rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  return e;
}

// The forward's bounds against the float64 reference (bf16 / fp16), and the worst errors
// seen per dtype for the summary line.
void check_forward_errors(const Errors& e, DType dtype, std::map<std::string, Errors>& worst) {
  const bool bf16 = dtype == DType::bf16;
  CHECK(e.rel < (bf16 ? 2e-2 : 5e-3));
  CHECK(e.max_abs < (bf16 ? 6e-2 : 1.5e-2));
  CHECK(e.lse_abs < 2e-3);
  Errors& w = worst[flashjit::to_string(dtype)];
  w.rel = std::max(w.rel, e.rel), w.max_abs = std::max(w.max_abs, e.max_abs), w.lse_abs = std::max(w.lse_abs, e.lse_abs);
}

}  // namespace

TEST_CASE("user-written variants match the float64 reference", "[gpu][variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<std::pair<int64_t, int64_t>> lens = {{1, 1}, {17, 17}, {1000, 1000}, {17, 1000}, {1000, 17}};
  const std::vector<std::pair<int, int>> heads = {{2, 2}, {6, 2}, {7, 1}};
  std::vector<Case> cases;
  for (const Variant& var : named_variants())
    for (DType dt : {DType::bf16, DType::f16})
      for (size_t li = 0; li < lens.size(); ++li) {
        const auto [hq, hkv] = heads[li % heads.size()];
        const int d = li % 2 ? 64 : 128;
        cases.push_back({var, dt, d, hq, hkv, lens[li].first, lens[li].second, lens[li].first >= 1000 ? 1 : 2, std::nullopt});
      }
  // The mma.sync back end on some, and one long case per variant.
  const flashjit::TileConfig sync_tile{128, 64, 4, 2, flashjit::MmaKind::mma_sync};
  const std::vector<Variant> named = named_variants();
  for (size_t i = 0; i < named.size(); ++i) {
    cases.push_back({named[i], DType::bf16, 64, 6, 2, 1000, 777, 1, sync_tile});
    if (i % 3 == 0) cases.push_back({named[i], DType::f16, 128, 2, 2, 4097, 4097, 1, std::nullopt});
  }
  std::map<std::string, Errors> worst;
  uint32_t seed = 99;
  int64_t masked = 0;
  for (const Case& c : cases) {
    const Errors e = run_case(c, 4097, seed++);
    INFO(c.var.name << " " << flashjit::spec_to_json(spec_of(c)) << " sq=" << c.sq << " sk=" << c.sk << ": rel "
                    << e.rel << " max_abs " << e.max_abs << " lse " << e.lse_abs);
    check_forward_errors(e, c.dtype, worst);
    masked += e.masked_rows;
  }
  std::printf("GPU variants: %zu cases checked (%lld fully masked rows)\n", cases.size(), (long long)masked);
  for (const auto& [dt, w] : worst)
    std::printf("  worst %s: rel %.3e  max_abs %.3e  lse_abs %.3e\n", dt.c_str(), w.rel, w.max_abs, w.lse_abs);
}

// The named variants whose masks have closed-form tiles (validate() refuses the others for
// tma_ws) on the warp-specialised kernel, plain and with ping-pong + a persistent grid:
// score_mods (ALiBi, softcap, a relative bias table) and captured tensors included.
TEST_CASE("user-written variants on the warp-specialised kernel", "[gpu][variants][tma_ws]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  auto& drv = flashjit::CudaDriver::get();
  if (drv.device_arch(drv.current_device()) != "sm_90a") {
    std::printf("skipped: tma_ws needs sm_90a\n");
    return;
  }
  using flashjit::TileConfig;
  const std::vector<TileConfig> tiles = {
      TileConfig{128, 128, 12, 2, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws},
      TileConfig{128, 64, 12, 3, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws, true, true}};
  const std::vector<std::pair<int64_t, int64_t>> lens = {{17, 17}, {1000, 1000}, {17, 1000}, {1000, 17}};
  std::vector<Case> cases;
  int refused = 0;
  for (const Variant& var : named_variants())
    for (size_t ti = 0; ti < tiles.size(); ++ti)
      for (size_t li = 0; li < lens.size(); ++li) {
        const DType dt = (li + ti) % 2 ? DType::f16 : DType::bf16;
        const Case c{var, dt, li % 2 ? 64 : 128, 6, 2, lens[li].first, lens[li].second, lens[li].first >= 1000 ? 1 : 2,
                     tiles[ti]};
        try {
          flashjit::validate(spec_of(c));
        } catch (const flashjit::SpecError& e) {
          CHECK(std::string(e.what()).find("tile.persistent") != std::string::npos);
          ++refused;
          continue;
        }
        cases.push_back(c);
      }
  std::map<std::string, Errors> worst;
  uint32_t seed = 313;
  for (const Case& c : cases) {
    const Errors e = run_case(c, 4097, seed++);
    INFO(c.var.name << " " << flashjit::spec_to_json(spec_of(c)) << " sq=" << c.sq << " sk=" << c.sk << ": rel "
                    << e.rel << " max_abs " << e.max_abs << " lse " << e.lse_abs);
    check_forward_errors(e, c.dtype, worst);
  }
  CHECK(cases.size() > 20);
  std::printf("GPU variants on tma_ws: %zu cases checked, %d refused (tile-list masks on persistent tiles)\n", cases.size(), refused);
  for (const auto& [dt, w] : worst)
    std::printf("  worst %s: rel %.3e  max_abs %.3e  lse_abs %.3e\n", dt.c_str(), w.rel, w.max_abs, w.lse_abs);
}

TEST_CASE("random mask and score expressions match the float64 reference", "[gpu][variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}, {"bias", expr::CaptureDType::f32, 2}};
  std::mt19937_64 gen(2026);
  std::mt19937 pick(7);
  const std::vector<std::pair<int64_t, int64_t>> lens = {{17, 17}, {200, 333}, {333, 200}, {129, 129}};
  int n = 0;
  int64_t nan_rows = 0, total_rows = 0;
  std::map<std::string, Errors> worst;
  for (int i = 0; i < 60; ++i) {
    Variant var;
    var.name = "random " + std::to_string(i);
    var.caps = caps;
    var.mask = flashjit::testing::random_mask_expr(gen, caps, 8, 5);
    if (i % 2 == 0) var.score_mod = flashjit::testing::random_score_expr(gen, caps, 8, 4);
    const auto [sq, sk] = lens[static_cast<size_t>(i) % lens.size()];
    const DType dt = i % 3 == 0 ? DType::f16 : DType::bf16;
    std::optional<flashjit::TileConfig> tile;
    if (i % 4 == 1) tile = flashjit::TileConfig{64, 64, 4, 2, flashjit::MmaKind::mma_sync};
    const Case c{var, dt, 64, 3, 1, sq, sk, 2, tile};
    const Errors e = run_case(c, 8, pick());
    total_rows += c.batch * c.hq * c.sq;
    // Random score_mods can produce large scores: compare with a relative bound.
    INFO(var.mask << " | " << var.score_mod << ": rel " << e.rel << " lse " << e.lse_abs);
    CHECK(e.rel < (dt == DType::bf16 ? 3e-2 : 1e-2));
    ++n;
    nan_rows += e.nan_rows;
    Errors& w = worst[flashjit::to_string(dt)];
    w.rel = std::max(w.rel, e.rel), w.lse_abs = std::max(w.lse_abs, e.lse_abs);
  }
  CHECK(nan_rows * 4 < total_rows);  // most random expressions stay finite: the test compares something
  std::printf("GPU random expressions: %d checked (%lld rows NaN by the expression itself, skipped)\n", n,
              (long long)nan_rows);
  for (const auto& [dt, w] : worst) std::printf("  worst %s: rel %.3e  lse_abs %.3e\n", dt.c_str(), w.rel, w.lse_abs);
}

TEST_CASE("captured-tensor reads out of bounds are refused before the launch", "[gpu][variants]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  Variant var{"doc", "doc[q_idx] == doc[kv_idx]", "", {{"doc", expr::CaptureDType::i32, 1}}};
  Case c{var, DType::bf16, 64, 2, 2, 300, 300, 1, std::nullopt};
  // doc has 299 elements: q_idx reaches 299.
  REQUIRE_THROWS_AS(run_case(c, 299, 1), flashjit::ArgumentError);
  var.mask = "doc[doc[q_idx]] == 0";  // data-dependent index: cannot be bounded
  c.var = var;
  REQUIRE_THROWS_AS(run_case(c, 300, 1), flashjit::ArgumentError);
}

TEST_CASE("block masks restrict the forward: random cells, every block size", "[gpu][variants][block_mask]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const expr::CaptureDecl doc{"doc", expr::CaptureDType::i32, 1};
  using MK = flashjit::MaskKind;
  const std::vector<Variant> vars = {
      {"cells only", "", "", {}, MK::none},
      {"cells + causal", "", "", {}, MK::causal},
      {"cells + document", "doc[q_idx] == doc[kv_idx]", "", {doc}},
      {"cells + prefix-LM + softcap", "(kv_idx <= q_idx) | (kv_idx < 37)", "30.0 * tanh(score / 30.0)", {}},
  };
  const std::vector<std::pair<int, int>> blocks = {{128, 128}, {64, 64}, {100, 48}, {256, 32}, {16, 128}};
  const std::vector<std::pair<int64_t, int64_t>> lens = {{1, 1}, {17, 1000}, {1000, 17}, {1000, 1000}, {777, 1500}};
  const flashjit::TileConfig sync_tile{64, 64, 4, 2, flashjit::MmaKind::mma_sync};
  const flashjit::TileConfig ws_tile{128, 64, 12, 2, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws, true};
  auto& drv = flashjit::CudaDriver::get();
  const bool hopper = drv.device_arch(drv.current_device()) == "sm_90a";
  std::vector<Case> cases;
  // One kernel per (variant, block size): dtype, head dim and back end vary between them
  // (each kernel is an NVRTC compile); the lengths vary within.
  int i = 0;
  for (const Variant& var : vars)
    for (const auto& [bq, bk] : blocks) {
      const DType dt = i % 3 == 0 ? DType::f16 : DType::bf16;
      const auto [hq, hkv] = i % 2 ? std::pair<int, int>{6, 2} : std::pair<int, int>{7, 1};
      std::optional<flashjit::TileConfig> tile;
      if (i % 4 == 1) tile = sync_tile;
      if (i % 4 == 3 && hopper) tile = ws_tile;  // the producer warpgroup lists the tiles
      for (const auto& [sq, sk] : lens)
        cases.push_back({var, dt, i % 2 ? 64 : 128, hq, hkv, sq, sk, 2, tile, bq, bk, i % 3 == 1, i % 2 == 0});
      ++i;
    }
  cases.push_back({vars[2], DType::bf16, 128, 2, 2, 4097, 4097, 1, std::nullopt, 128, 128, false, true});
  if (hopper)  // a long one on the warp-specialised kernel: more than one list chunk at block_n 64
    cases.push_back({vars[2], DType::bf16, 128, 2, 2, 4097, 17000, 1, ws_tile, 128, 128, false, true});
  std::map<std::string, Errors> worst;
  int64_t masked = 0;
  uint32_t seed = 4242;
  for (const Case& c : cases) {
    const Errors e = run_case(c, 4097, seed++);
    INFO(c.var.name << " blocks " << c.block_q << "x" << c.block_kv << " sq=" << c.sq << " sk=" << c.sk << ": rel "
                    << e.rel << " max_abs " << e.max_abs << " lse " << e.lse_abs);
    check_forward_errors(e, c.dtype, worst);
    masked += e.masked_rows;
  }
  CHECK(masked > 0);  // the empty cell rows gave fully masked rows, and they were checked
  std::printf("GPU block masks: %zu forward cases checked (%lld fully masked rows)\n", cases.size(), (long long)masked);
  for (const auto& [dt, w] : worst)
    std::printf("  worst %s: rel %.3e  max_abs %.3e  lse_abs %.3e\n", dt.c_str(), w.rel, w.max_abs, w.lse_abs);
}

TEST_CASE("the block-mask builder matches the CPU oracle cell for cell", "[gpu][variants][block_mask]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  std::vector<std::pair<std::string, std::vector<expr::CaptureDecl>>> masks;
  for (const Variant& v : named_variants())
    if (!v.mask.empty()) masks.push_back({v.mask, v.caps});
  masks.push_back({"(b == 1) ^ (h == 2) | kv_idx == q_idx", {}});
  const std::vector<expr::CaptureDecl> rcaps = {{"doc", expr::CaptureDType::i32, 1}, {"bias", expr::CaptureDType::f32, 2}};
  std::mt19937_64 gen(77);
  std::vector<bool> random;
  for (auto& m : masks) (void)m, random.push_back(false);
  for (int i = 0; i < 24; ++i) masks.push_back({flashjit::testing::random_mask_expr(gen, rcaps, 8, 5), rcaps}), random.push_back(true);
  struct Shape {
    int64_t sq, sk;
    int bq, bk;
  };
  const std::vector<Shape> shapes = {{1, 1, 128, 128}, {17, 1000, 64, 32}, {1000, 17, 100, 77},
                                     {1000, 1000, 128, 128}, {300, 200, 1, 1}, {4097, 4097, 128, 64}};
  std::mt19937 rng(5);
  auto& drv = flashjit::CudaDriver::get();
  int64_t counts[3] = {0, 0, 0};
  int checked = 0;
  for (size_t m = 0; m < masks.size(); ++m)
    for (size_t si = 0; si < shapes.size(); ++si) {
      const Shape& sh = shapes[si];
      if (random[m] && sh.sq > 1000) continue;  // the oracle evaluates every element
      const int64_t B = sh.sq > 1000 ? 1 : 2, H = sh.sq > 1000 ? 1 : 3;
      std::vector<HostCap> caps;
      std::vector<expr::HostCapture> host;
      std::vector<DeviceCapture> dcaps;
      for (const auto& d : masks[m].second) {
        caps.push_back(make_capture(d, random[m] ? 8 : 4097, rng));
        caps.back().view.data = caps.back().bytes.data();
        host.push_back(caps.back().view);
        dcaps.push_back(upload_capture(caps.back()));
      }
      const std::vector<flashjit::TensorView> views = views_of(dcaps);
      const flashjit::BlockMaskShape shape{B, H, sh.sq, sh.sk, sh.bq, sh.bk};
      const int64_t nq = shape.q_blocks(), nk = shape.kv_blocks();
      fjtest::DeviceBuffer dcells(static_cast<size_t>(B * H * nq * nk) * 4);
      dcells.poison();
      const int64_t dims[4] = {B, H, nq, nk};
      const flashjit::TensorView cv = cells_view(dcells.data(), dims);
      INFO(masks[m].first << " sq=" << sh.sq << " sk=" << sh.sk << " blocks " << sh.bq << "x" << sh.bk);
      flashjit::build_block_mask(masks[m].first, masks[m].second, shape, cv, nullptr, views);
      drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after build_block_mask");
      std::vector<int32_t> got(static_cast<size_t>(B * H * nq * nk));
      dcells.download(got.data());
      const std::vector<int32_t> want = flashjit::eval::block_mask_cells(masks[m].first, masks[m].second, host, B, H,
                                                                         sh.sq, sh.sk, sh.bq, sh.bk);
      REQUIRE(got.size() == want.size());
      size_t first_diff = got.size();
      for (size_t i = 0; i < got.size() && first_diff == got.size(); ++i)
        if (got[i] != want[i]) first_diff = i;
      INFO("first differing cell " << first_diff);
      REQUIRE(first_diff == got.size());
      for (int32_t c : got) ++counts[c];
      ++checked;
    }
  std::printf("GPU block-mask builder: %d masks x shapes equal to the CPU oracle (%lld empty, %lld partial, %lld full cells)\n",
              checked, (long long)counts[0], (long long)counts[1], (long long)counts[2]);
}

// Small cases for compute-sanitizer (memcheck, racecheck): the tile-list classification with
// a captured-tensor scan, a block-mask forward on both back ends, and the builder.
TEST_CASE("variants and block masks under compute-sanitizer", "[gpu][variants][block_mask][sanitize]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const expr::CaptureDecl doc{"doc", expr::CaptureDType::i32, 1};
  const Variant dvar{"document + causal", "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", "", {doc}};
  const Variant cells{"cells + causal", "", "", {}, flashjit::MaskKind::causal};
  const flashjit::TileConfig sync_tile{64, 64, 4, 2, flashjit::MmaKind::mma_sync};
  const std::vector<Case> cases = {
      {dvar, DType::bf16, 128, 2, 1, 300, 517, 1, std::nullopt},
      {cells, DType::bf16, 128, 2, 1, 300, 517, 1, std::nullopt, 64, 96, false, true},
      {cells, DType::f16, 64, 3, 3, 257, 300, 2, sync_tile, 128, 128, true, false},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) CHECK(run_case(c, 600, seed++).rel < 2e-2);
  std::mt19937 rng(9);
  HostCap d = make_capture(doc, 600, rng);
  const DeviceCapture dd = upload_capture(d);
  const flashjit::BlockMaskShape shape{1, 2, 600, 555, 64, 128};
  const int64_t n_cells = 2 * shape.q_blocks() * shape.kv_blocks();
  fjtest::DeviceBuffer dcells(static_cast<size_t>(n_cells) * 4);
  const int64_t dims[4] = {1, 2, shape.q_blocks(), shape.kv_blocks()};
  flashjit::build_block_mask(dvar.mask, {doc}, shape, cells_view(dcells.data(), dims), nullptr, {dd.view});
  auto& drv = flashjit::CudaDriver::get();
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after build_block_mask");
  std::vector<int32_t> got(static_cast<size_t>(n_cells));
  dcells.download(got.data());
  d.view.data = d.bytes.data();
  CHECK(got == flashjit::eval::block_mask_cells(dvar.mask, {doc}, {d.view}, 1, 2, 600, 555, 64, 128));
}
