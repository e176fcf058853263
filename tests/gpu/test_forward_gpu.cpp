// Forward pass on the GPU against a float64 reference, over the variant matrix:
// dtypes x head dims x masks x GQA ratios x sequence lengths (odd ones, seqlen_q != seqlen_k)
// x memory layouts. Outputs are poisoned (NaN) before each run; every element must be
// written; fully masked rows must give exactly 0 and LSE -inf; a second run must match
// the first bit for bit (a moving result is a race). Skipped, with the reason printed,
// where no GPU exists.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "catch.hpp"
#include "flashjit/autotune.h"
#include "flashjit/error.h"
#include "gpu_harness.h"

using flashjit::DType;
using flashjit::MaskAlign;
using flashjit::MaskKind;

namespace {

struct Case {
  DType dtype;
  int d, dv;
  flashjit::MaskSpec mask;
  int hq, hkv;
  int64_t sq, sk;
  bool bshd;  // memory layout (batch, seq, heads, dim) instead of (batch, heads, seq, dim)
  int batch;
  std::optional<flashjit::TileConfig> tile = std::nullopt;  // none: the heuristic (tuning is off in tests)
};

std::string describe(const Case& c) {
  std::string m = flashjit::to_string(c.mask.kind);
  if (c.mask.kind != MaskKind::none) m += std::string("/") + flashjit::to_string(c.mask.align);
  if (c.mask.kind == MaskKind::sliding_window) m += "(" + std::to_string(c.mask.left) + "," + std::to_string(c.mask.right) + ")";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s d=%d/%d %s heads=%d/%d b=%d sq=%lld sk=%lld %s", flashjit::to_string(c.dtype), c.d,
                c.dv, m.c_str(), c.hq, c.hkv, c.batch, (long long)c.sq, (long long)c.sk, c.bshd ? "BSHD" : "BHSD");
  return c.tile ? std::string(buf) + " tile " + flashjit::to_string(*c.tile) : std::string(buf);
}

flashjit::AttentionSpec spec_of(const Case& c) {
  flashjit::AttentionSpec s;
  s.dtype = c.dtype;
  s.head_dim = c.d;
  s.head_dim_v = c.dv;
  s.num_heads_q = c.hq;
  s.num_heads_kv = c.hkv;
  s.mask = c.mask;
  s.return_lse = true;
  s.tile = c.tile;
  return s;
}

bool visible(const flashjit::MaskSpec& m, int64_t i, int64_t j, int64_t sq, int64_t sk) {
  const int64_t a = i + (m.align == MaskAlign::bottom_right ? sk - sq : 0);
  switch (m.kind) {
    case MaskKind::none: return true;
    case MaskKind::causal: return j <= a;
    case MaskKind::sliding_window:
      return (m.left < 0 || j >= a - m.left) && (m.right < 0 || j <= a + m.right);
    case MaskKind::custom: break;  // the dense matrix has built-in masks only (expressions: test_variants_gpu.cpp)
  }
  return false;
}

flashjit::MaskSpec mask(MaskKind k, MaskAlign a = MaskAlign::bottom_right, int left = -1, int right = -1) {
  flashjit::MaskSpec m;
  m.kind = k;
  m.align = a;
  m.left = left;
  m.right = right;
  return m;
}

std::vector<Case> variant_matrix() {
  std::vector<Case> cases;
  const std::vector<flashjit::MaskSpec> masks = {
      mask(MaskKind::none),
      mask(MaskKind::causal, MaskAlign::top_left),
      mask(MaskKind::causal, MaskAlign::bottom_right),
      mask(MaskKind::sliding_window, MaskAlign::bottom_right, 100, 0),
      mask(MaskKind::sliding_window, MaskAlign::top_left, 37, 11),
      mask(MaskKind::sliding_window, MaskAlign::bottom_right, -1, 5),
  };
  const std::vector<std::pair<int, int>> heads = {{2, 2}, {6, 2}, {7, 1}};
  const std::vector<std::pair<int64_t, int64_t>> lens = {{1, 1}, {17, 17}, {1000, 1000}, {17, 1000}, {1000, 17}, {4097, 4097}};
  // Full matrix for the two most used head dims.
  for (DType dt : {DType::bf16, DType::f16})
    for (int d : {64, 128})
      for (const auto& m : masks)
        for (const auto& [hq, hkv] : heads)
          for (const auto& [sq, sk] : lens)
            for (bool bshd : {false, true}) {
              if (sq == 4097 && (hq != 2 || bshd)) continue;  // the long case once per mask
              cases.push_back({dt, d, d, m, hq, hkv, sq, sk, bshd, sq >= 1000 ? 1 : 2});
            }
  // Other head dims (and head_dim_v != head_dim) on a reduced matrix.
  const std::vector<std::pair<int, int>> dims = {{32, 32}, {96, 96}, {192, 192}, {256, 256}, {192, 128}, {64, 128}};
  for (DType dt : {DType::bf16, DType::f16})
    for (const auto& [d, dv] : dims)
      for (const auto& m : {masks[0], masks[2], masks[4]})
        for (const auto& [sq, sk] : std::vector<std::pair<int64_t, int64_t>>{{17, 17}, {1000, 1000}, {4097, 1000}, {1, 33}})
          cases.push_back({dt, d, dv, m, 6, 2, sq, sk, sq == 1000, 1});
  return cases;
}

// Rows checked against the reference: all of them for short sequences, else a sample
// that includes both ends and the tile boundaries around 64 and 128.
std::vector<int64_t> rows_to_check(int64_t sq, std::mt19937& rng) {
  std::vector<int64_t> rows;
  if (sq <= 96) {
    for (int64_t i = 0; i < sq; ++i) rows.push_back(i);
    return rows;
  }
  for (int64_t i : {int64_t(0), int64_t(1), int64_t(63), int64_t(64), int64_t(127), int64_t(128), sq - 2, sq - 1})
    if (i >= 0 && i < sq) rows.push_back(i);
  std::uniform_int_distribution<int64_t> pick(0, sq - 1);
  for (int n = 0; n < 40; ++n) rows.push_back(pick(rng));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

struct Errors {
  double rel = 0;      // ||out - ref|| / ||ref|| over checked rows
  double max_abs = 0;  // max |out - ref|
  double lse_abs = 0;  // max |lse - ref_lse| over rows with a visible key
};

Errors run_case(const Case& c, uint32_t seed) {
  const auto spec = spec_of(c);
  const int64_t B = c.batch;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);

  // Host tensors in the chosen layout; index helpers map logical (b, h, s, d) to memory.
  auto offset = [&](int64_t b, int64_t h, int64_t s, int64_t d, int64_t H, int64_t S, int64_t D) {
    return c.bshd ? ((b * S + s) * H + h) * D + d : ((b * H + h) * S + s) * D + d;
  };
  auto make = [&](int64_t H, int64_t S, int64_t D) {
    std::vector<uint16_t> t(static_cast<size_t>(B * H * S * D));
    for (auto& x : t) x = fjtest::to_bits(normal(rng), c.dtype);
    return t;
  };
  const auto q = make(c.hq, c.sq, c.d), k = make(c.hkv, c.sk, c.d), v = make(c.hkv, c.sk, c.dv);
  fjtest::DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv_(v.size() * 2);
  fjtest::DeviceBuffer dout(static_cast<size_t>(B * c.hq * c.sq * c.dv) * 2), dlse(static_cast<size_t>(B * c.hq * c.sq) * 4);
  dq.upload(q.data());
  dk.upload(k.data());
  dv_.upload(v.data());

  const auto et = c.dtype == DType::bf16 ? flashjit::ElemType::bf16 : flashjit::ElemType::f16;
  auto view = [&](void* p, int64_t H, int64_t S, int64_t D) {
    return c.bshd ? flashjit::TensorView::bshd(p, et, B, S, H, D) : flashjit::TensorView::bhsd(p, et, B, H, S, D);
  };
  const auto tq = view(dq.data(), c.hq, c.sq, c.d), tk = view(dk.data(), c.hkv, c.sk, c.d),
             tv = view(dv_.data(), c.hkv, c.sk, c.dv), to = view(dout.data(), c.hq, c.sq, c.dv);
  const auto tl = flashjit::TensorView::lse(static_cast<float*>(dlse.data()), B, c.hq, c.sq);

  auto& drv = flashjit::CudaDriver::get();
  auto run = [&](std::vector<uint16_t>& out, std::vector<float>& lse) {
    dout.poison();
    dlse.poison();
    flashjit::forward(spec, tq, tk, tv, to, &tl, nullptr);
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
  INFO(describe(c));
  REQUIRE(std::memcmp(out.data(), out2.data(), out.size() * 2) == 0);  // deterministic: no race
  REQUIRE(std::memcmp(lse.data(), lse2.data(), lse.size() * 4) == 0);

  // Every element written (the poison is NaN) and finite.
  for (size_t i = 0; i < out.size(); ++i) {
    const double x = fjtest::from_bits(out[i], c.dtype);
    if (!std::isfinite(x)) FAIL("output element " << i << " is " << x);
  }

  Errors e;
  double err2 = 0, ref2 = 0;
  const double scale = spec.effective_scale();
  const int group = c.hq / c.hkv;
  std::vector<double> ref;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < c.hq; ++h) {
      const int64_t hk = h / group;
      for (int64_t i : rows_to_check(c.sq, rng)) {
        auto qf = [&](int col) { return fjtest::from_bits(q[offset(b, h, i, col, c.hq, c.sq, c.d)], c.dtype); };
        auto kf = [&](int64_t j, int col) { return fjtest::from_bits(k[offset(b, hk, j, col, c.hkv, c.sk, c.d)], c.dtype); };
        auto vf = [&](int64_t j, int col) { return fjtest::from_bits(v[offset(b, hk, j, col, c.hkv, c.sk, c.dv)], c.dtype); };
        auto vis = [&](int64_t ii, int64_t j) { return visible(c.mask, ii, j, c.sq, c.sk); };
        const double ref_lse = fjtest::reference_row(i, c.sk, c.d, c.dv, scale, qf, kf, vf, vis, ref);
        const float got_lse = lse[(b * c.hq + h) * c.sq + i];
        if (ref_lse == -INFINITY) {
          // A fully masked row: exactly zero output and LSE -inf.
          REQUIRE(got_lse == -INFINITY);
          for (int col = 0; col < c.dv; ++col)
            REQUIRE(fjtest::from_bits(out[offset(b, h, i, col, c.hq, c.sq, c.dv)], c.dtype) == 0.0);
          continue;
        }
        e.lse_abs = std::max(e.lse_abs, std::abs(got_lse - ref_lse));
        for (int col = 0; col < c.dv; ++col) {
          const double got = fjtest::from_bits(out[offset(b, h, i, col, c.hq, c.sq, c.dv)], c.dtype);
          err2 += (got - ref[col]) * (got - ref[col]);
          ref2 += ref[col] * ref[col];
          e.max_abs = std::max(e.max_abs, std::abs(got - ref[col]));
        }
      }
    }
  e.rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  return e;
}

// The GPU's arch ("sm_90a" on Hopper).
std::string current_arch() {
  auto& drv = flashjit::CudaDriver::get();
  return drv.device_arch(drv.current_device());
}

// Compiles the distinct kernels of `cases` up front, in parallel (NVRTC is thread-safe),
// so the runs below find them in the cache. Returns how many there were.
size_t compile_all(const std::vector<Case>& cases, const std::string& arch) {
  std::map<std::string, flashjit::AttentionSpec> specs;
  for (const auto& c : cases) specs.emplace(flashjit::spec_to_json(spec_of(c)), spec_of(c));
  std::vector<flashjit::AttentionSpec> todo;
  for (auto& [_, s] : specs) todo.push_back(s);
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(2u, std::thread::hardware_concurrency()); ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < todo.size();) flashjit::compile(todo[i], {arch, true});
    });
  for (auto& th : pool) th.join();
  return todo.size();
}

// Runs every case against the float64 reference with the forward's bounds, and prints the
// worst errors per dtype under `label`.
void check_cases(const std::vector<Case>& cases, uint32_t seed, const char* label) {
  std::map<std::string, Errors> worst;  // per dtype
  for (const auto& c : cases) {
    const Errors e = run_case(c, seed++);
    const bool bf16 = c.dtype == DType::bf16;
    INFO(describe(c) << ": rel " << e.rel << " max_abs " << e.max_abs << " lse " << e.lse_abs);
    CHECK(e.rel < (bf16 ? 2e-2 : 5e-3));
    CHECK(e.max_abs < (bf16 ? 6e-2 : 1.5e-2));
    CHECK(e.lse_abs < 2e-3);
    Errors& w = worst[flashjit::to_string(c.dtype)];
    w.rel = std::max(w.rel, e.rel);
    w.max_abs = std::max(w.max_abs, e.max_abs);
    w.lse_abs = std::max(w.lse_abs, e.lse_abs);
  }
  std::printf("%s: %zu cases checked\n", label, cases.size());
  for (const auto& [dt, w] : worst)
    std::printf("  worst %s: rel %.3e  max_abs %.3e  lse_abs %.3e\n", dt.c_str(), w.rel, w.max_abs, w.lse_abs);
}

}  // namespace

TEST_CASE("forward matches a float64 reference over the variant matrix", "[gpu]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const auto cases = variant_matrix();
  const std::string arch = current_arch();
  std::printf("compiled %zu distinct kernels for %s\n", compile_all(cases, arch), arch.c_str());
  check_cases(cases, 1234, "GPU forward matrix");
}

// Every tile config the autotuner may pick on this GPU (both the mma.sync and, on Hopper,
// the wgmma grid) gives the right answer, not only the heuristic's.
TEST_CASE("every tuning candidate is correct", "[gpu]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::string arch = current_arch();
  setenv("FLASHJIT_TUNE_TMA_WS", "1", 1);  // the warp-specialised candidates too
  std::vector<Case> cases;
  for (int d : {64, 128})
    for (const auto& m : {mask(MaskKind::causal, MaskAlign::bottom_right),
                          mask(MaskKind::sliding_window, MaskAlign::top_left, 150, 20)}) {
      const Case base{DType::bf16, d, d, m, 6, 2, 1000, 1000, false, 1};
      for (const flashjit::TileConfig& t : flashjit::tile_candidates(spec_of(base), arch)) {
        Case a = base, b{DType::f16, d, d, m, 3, 1, 17, 1000, true, 2};
        a.tile = b.tile = t;
        cases.push_back(a);
        cases.push_back(b);
      }
    }
  compile_all(cases, arch);
  int wgmma = 0;
  uint32_t seed = 777;
  for (const auto& c : cases) {
    const Errors e = run_case(c, seed++);
    INFO(describe(c) << ": rel " << e.rel << " max_abs " << e.max_abs << " lse " << e.lse_abs);
    CHECK(e.rel < (c.dtype == DType::bf16 ? 2e-2 : 5e-3));
    CHECK(e.lse_abs < 2e-3);
    wgmma += c.tile->mma == flashjit::MmaKind::wgmma;
  }
  std::printf("tuning candidates on %s: %zu runs correct (%d on the wgmma path)\n", arch.c_str(), cases.size(), wgmma);
  if (arch == "sm_90a") CHECK(wgmma > 0);
}

// The warp-specialised kernel (tile.pipeline = tma_ws: a TMA producer warpgroup, 2 or 3
// consumer warpgroups) over masks, head dims, GQA, odd and unequal lengths and both layouts:
// TMA's zero fill of rows past the ends, its strides (BSHD), and the rings' parities over
// long and short tile sequences.
TEST_CASE("warp-specialised tiles match the reference", "[gpu][tma_ws]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::string arch = current_arch();
  if (arch != "sm_90a") {
    std::printf("skipped: tma_ws needs sm_90a; this GPU is %s\n", arch.c_str());
    return;
  }
  using flashjit::TileConfig;
  const auto ws = [](int bm, int bn, int stages, bool pingpong = false, bool persistent = false) {
    return TileConfig{bm, bn, bm / 16 + 4, stages, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws, pingpong,
                      persistent};
  };
  const std::vector<std::pair<int, std::vector<TileConfig>>> tiles = {
      {64, {ws(128, 128, 2), ws(192, 64, 3, false, true), ws(128, 192, 2, true)}},
      {128, {ws(128, 128, 2), ws(128, 176, 2, true), ws(128, 64, 3, false, true), ws(128, 128, 2, true, true)}},
      {192, {ws(128, 96, 2)}},
      {256, {ws(128, 64, 2)}},
  };
  const std::vector<flashjit::MaskSpec> masks = {
      mask(MaskKind::none), mask(MaskKind::causal, MaskAlign::top_left), mask(MaskKind::causal, MaskAlign::bottom_right),
      mask(MaskKind::sliding_window, MaskAlign::bottom_right, 100, 0),
      mask(MaskKind::sliding_window, MaskAlign::top_left, 37, 11)};
  const std::vector<std::pair<int64_t, int64_t>> lens = {{1, 1}, {17, 17}, {1000, 1000}, {17, 1000}, {1000, 17}, {4097, 1000}};
  std::vector<Case> cases;
  for (const auto& [d, ts] : tiles)
    for (const TileConfig& t : ts)
      for (const auto& m : masks)
        for (const auto& [sq, sk] : lens) {
          const bool wide = d >= 192;
          if (wide && sq != sk && sq != 4097) continue;  // the wide head dims on a reduced set
          const DType dt = (sq + sk) % 2 ? DType::f16 : DType::bf16;
          Case c{dt, d, d, m, 6, 2, sq, sk, sq == 1000, sq >= 1000 ? 1 : 2, t};
          cases.push_back(c);
          if (sq == 17 && sk == 17) {  // the other dtype and a GQA ratio of 7
            Case o{dt == DType::bf16 ? DType::f16 : DType::bf16, d, d, m, 7, 1, sq, sk, true, 3, t};
            cases.push_back(o);
          }
        }
  std::printf("compiled %zu distinct tma_ws kernels\n", compile_all(cases, arch));
  check_cases(cases, 4242, "tma_ws matrix");
}

// K and V broadcast over heads (head stride 0, a view torch's expand() gives): TMA cannot
// describe a zero stride, so a tma_ws tile runs the same tile on the cp.async pipeline; the
// result must equal the dense tensors' with a plain tile, bit for bit.
TEST_CASE("tma_ws tiles fall back for broadcast (zero-stride) K and V", "[gpu][tma_ws]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  if (current_arch() != "sm_90a") {
    std::printf("skipped: tma_ws needs sm_90a\n");
    return;
  }
  const int64_t B = 1, H = 4, S = 300, D = 128;
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint16_t> q(B * H * S * D), k1(B * S * D), v1(B * S * D);
  for (auto* t : {&q, &k1, &v1})
    for (auto& x : *t) x = fjtest::to_bits(normal(rng), DType::bf16);
  std::vector<uint16_t> kd, vd;  // the same K / V copied to every head
  for (int64_t h = 0; h < H; ++h) {
    kd.insert(kd.end(), k1.begin(), k1.end());
    vd.insert(vd.end(), v1.begin(), v1.end());
  }
  fjtest::DeviceBuffer dq(q.size() * 2), dk1(k1.size() * 2), dv1(v1.size() * 2), dkd(kd.size() * 2),
      dvd(vd.size() * 2), o1(q.size() * 2), o2(q.size() * 2);
  dq.upload(q.data());
  dk1.upload(k1.data());
  dv1.upload(v1.data());
  dkd.upload(kd.data());
  dvd.upload(vd.data());
  o1.poison();
  o2.poison();
  const auto et = flashjit::ElemType::bf16;
  auto broadcast = [&](void* p) {
    auto t = flashjit::TensorView::bhsd(p, et, B, H, S, D);
    t.strides[1] = 0;
    return t;
  };
  flashjit::AttentionSpec ws;
  ws.dtype = DType::bf16;
  ws.head_dim = ws.head_dim_v = D;
  ws.num_heads_q = ws.num_heads_kv = H;
  ws.mask = mask(MaskKind::causal);
  ws.tile = flashjit::TileConfig{128, 128, 12, 2, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws};
  flashjit::AttentionSpec plain = ws;
  plain.tile = flashjit::TileConfig{128, 128, 8, 2, flashjit::MmaKind::wgmma};
  const auto tq = flashjit::TensorView::bhsd(dq.data(), et, B, H, S, D);
  flashjit::forward(ws, tq, broadcast(dk1.data()), broadcast(dv1.data()), flashjit::TensorView::bhsd(o1.data(), et, B, H, S, D),
                    nullptr, nullptr);
  flashjit::forward(plain, tq, flashjit::TensorView::bhsd(dkd.data(), et, B, H, S, D),
                    flashjit::TensorView::bhsd(dvd.data(), et, B, H, S, D), flashjit::TensorView::bhsd(o2.data(), et, B, H, S, D),
                    nullptr, nullptr);
  auto& drv = flashjit::CudaDriver::get();
  drv.check(drv.cuCtxSynchronize(), "sync");
  std::vector<uint16_t> a(q.size()), b(q.size());
  o1.download(a.data());
  o2.download(b.data());
  REQUIRE(std::memcmp(a.data(), b.data(), a.size() * 2) == 0);
}

TEST_CASE("forward with seqlen_k == 0 gives zeros and LSE -inf", "[gpu]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  Case c{DType::bf16, 64, 64, mask(MaskKind::none), 2, 2, 33, 0, false, 1};
  const auto spec = spec_of(c);
  fjtest::DeviceBuffer dq(2 * 33 * 64 * 2), dk(16), dv(16), dout(2 * 33 * 64 * 2), dlse(2 * 33 * 4);
  std::vector<uint16_t> q(2 * 33 * 64, fjtest::to_bits(0.5, DType::bf16));
  dq.upload(q.data());
  dout.poison();
  dlse.poison();
  const auto et = flashjit::ElemType::bf16;
  const auto tl = flashjit::TensorView::lse(static_cast<float*>(dlse.data()), 1, 2, 33);
  flashjit::forward(spec, flashjit::TensorView::bhsd(dq.data(), et, 1, 2, 33, 64),
                    flashjit::TensorView::bhsd(dk.data(), et, 1, 2, 0, 64),
                    flashjit::TensorView::bhsd(dv.data(), et, 1, 2, 0, 64),
                    flashjit::TensorView::bhsd(dout.data(), et, 1, 2, 33, 64), &tl, nullptr);
  auto& drv = flashjit::CudaDriver::get();
  drv.check(drv.cuCtxSynchronize(), "sync");
  std::vector<uint16_t> out(2 * 33 * 64);
  std::vector<float> lse(2 * 33);
  dout.download(out.data());
  dlse.download(lse.data());
  for (auto x : out) REQUIRE(x == 0);
  for (float l : lse) REQUIRE(l == -INFINITY);
}

// A small subset for compute-sanitizer (memcheck, racecheck) runs on the device machine:
// every mask, odd lengths, both layouts, a GQA ratio of 3.
TEST_CASE("forward small subset (for compute-sanitizer)", "[gpu][sanitize]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  uint32_t seed = 99;
  for (DType dt : {DType::bf16, DType::f16})
    for (const auto& m : {mask(MaskKind::none), mask(MaskKind::causal, MaskAlign::top_left),
                          mask(MaskKind::sliding_window, MaskAlign::bottom_right, 9, 3)})
      for (const auto& [sq, sk] : std::vector<std::pair<int64_t, int64_t>>{{17, 17}, {1, 33}, {130, 45}})
        for (bool bshd : {false, true}) {
          Case c{dt, 64, 64, m, 3, 1, sq, sk, bshd, 2};
          for (int pass = 0; pass < (current_arch() == "sm_90a" ? 2 : 1); ++pass) {
            if (pass == 1)  // the warp-specialised kernel (TMA, mbarrier rings) too
              c.tile = flashjit::TileConfig{128, 64, 12, 2, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws};
            const Errors e = run_case(c, seed++);
            INFO(describe(c));
            CHECK(e.rel < (dt == DType::bf16 ? 2e-2 : 5e-3));
          }
        }
}
