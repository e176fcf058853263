// The CPU evaluator of the tile IR against naive float64 attention, and the band-mask
// tile arithmetic (templates/flashjit/band_mask.cuh) against brute force.
//
// The evaluator runs the IR as lowered (every tile masked) and after the pass pipeline
// (empty tiles skipped, full tiles unmasked, loads pipelined): both must match the
// reference within the rounding of P / O to the dtype, and must match each other
// bit for bit, because skipping an empty tile or not masking a full one changes no value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/band_mask.cuh"
#include "flashjit/cpu_eval.h"
#include "flashjit/ir.h"
#include "flashjit/passes.h"
#include "flashjit/spec.h"

using namespace flashjit;
using eval::HostTensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct SeqLens {
  int64_t q, k;
};

HostTensor random_tensor(std::mt19937& rng, DType dt, int64_t b, int64_t h, int64_t s, int64_t d) {
  std::normal_distribution<double> nd(0.0, 1.0);
  HostTensor t(b, h, s, d);
  for (double& x : t.data) x = eval::round_to(dt, nd(rng));
  return t;
}

std::string describe(const AttentionSpec& s, SeqLens sl) {
  std::ostringstream os;
  os << to_string(s.dtype) << " d=" << s.head_dim << "/" << s.normalized().head_dim_v << " heads=" << s.num_heads_q
     << "/" << s.normalized().num_heads_kv << " mask=" << to_string(s.mask.kind) << "(" << to_string(s.mask.align)
     << "," << s.mask.left << "," << s.mask.right << ") Sq=" << sl.q << " Sk=" << sl.k << " tile=" << s.tile->block_m
     << "x" << s.tile->block_n << " lse=" << s.return_lse;
  return os.str();
}

// Visibility from the spec's definition (spec.h), independent of band_mask.cuh.
bool spec_visible(const MaskSpec& m, int64_t i, int64_t j, int64_t sq, int64_t sk) {
  if (j < 0 || j >= sk) return false;
  const int64_t off = m.align == MaskAlign::bottom_right ? sk - sq : 0;
  switch (m.kind) {
    case MaskKind::none: return true;
    case MaskKind::causal: return j <= i + off;
    case MaskKind::sliding_window:
      return (m.left < 0 || j >= i + off - m.left) && (m.right < 0 || j <= i + off + m.right);
  }
  return false;
}

// Checks one evaluator result against the reference; returns "" or what is wrong.
std::string compare(const eval::Result& e, const eval::Result& r, const AttentionSpec& spec, double tol) {
  std::ostringstream err;
  if (e.o.data.size() != r.o.data.size()) return "output size differs";
  double max_ref = 0.0, max_diff = 0.0;
  for (size_t i = 0; i < r.o.data.size(); ++i) {
    if (std::isnan(e.o.data[i])) return "NaN (or unwritten) output at flat index " + std::to_string(i);
    max_ref = std::max(max_ref, std::fabs(r.o.data[i]));
    max_diff = std::max(max_diff, std::fabs(e.o.data[i] - r.o.data[i]));
  }
  if (max_ref == 0.0 ? max_diff != 0.0 : max_diff / max_ref >= tol)
    err << "max |o - ref| = " << max_diff << " with max |ref| = " << max_ref << " (tol " << tol << "); ";
  // Fully masked rows: exactly 0 output, -inf lse.
  const int64_t rows = r.o.b * r.o.h * r.o.s, dv = r.o.d;
  for (int64_t row = 0; row < rows; ++row) {
    if (r.lse[row] != -kInf) continue;
    for (int64_t c = 0; c < dv; ++c)
      if (e.o.data[row * dv + c] != 0.0) {
        err << "fully masked row " << row << " has output " << e.o.data[row * dv + c] << "; ";
        break;
      }
  }
  if (spec.return_lse) {
    if (e.lse.size() != r.lse.size()) return err.str() + "lse size differs";
    for (int64_t row = 0; row < rows; ++row) {
      const double a = e.lse[row], b = r.lse[row];
      if (std::isnan(a)) {
        err << "lse NaN at row " << row << "; ";
        break;
      }
      if (b == -kInf ? a != -kInf : !(std::fabs(a - b) < 1e-3)) {
        err << "lse row " << row << ": " << a << " vs ref " << b << "; ";
        break;
      }
    }
  } else if (!e.lse.empty()) {
    err << "lse written although return_lse is false; ";
  }
  return err.str();
}

AttentionSpec make_spec(DType dt, int d, int dv, int hq, int hkv, MaskSpec mask, int bm, int bn) {
  AttentionSpec s;
  s.dtype = dt;
  s.head_dim = d;
  s.head_dim_v = dv;
  s.num_heads_q = hq;
  s.num_heads_kv = hkv;
  s.mask = mask;
  s.return_lse = true;
  TileConfig t;
  t.block_m = bm;
  t.block_n = bn;
  t.warps = std::min(4, bm / 16);
  t.stages = 2;
  s.tile = t;
  return s;
}

MaskSpec mask_of(MaskKind kind, MaskAlign align, int left = -1, int right = -1) {
  MaskSpec m;
  m.kind = kind;
  m.align = align;
  m.left = left;
  m.right = right;
  return m;
}

std::vector<MaskSpec> all_masks() {
  std::vector<MaskSpec> v = {mask_of(MaskKind::none, MaskAlign::bottom_right),
                             mask_of(MaskKind::causal, MaskAlign::top_left),
                             mask_of(MaskKind::causal, MaskAlign::bottom_right)};
  for (auto a : {MaskAlign::top_left, MaskAlign::bottom_right}) {
    v.push_back(mask_of(MaskKind::sliding_window, a, 5, 0));
    v.push_back(mask_of(MaskKind::sliding_window, a, -1, 3));
    v.push_back(mask_of(MaskKind::sliding_window, a, 7, 7));
  }
  return v;
}

struct Inputs {
  HostTensor q, k, v;
};

Inputs make_inputs(const AttentionSpec& spec, int64_t batch, SeqLens sl, uint32_t seed) {
  const AttentionSpec n = spec.normalized();
  std::mt19937 rng(seed);
  Inputs in;
  in.q = random_tensor(rng, n.dtype, batch, n.num_heads_q, sl.q, n.head_dim);
  in.k = random_tensor(rng, n.dtype, batch, n.num_heads_kv, sl.k, n.head_dim);
  in.v = random_tensor(rng, n.dtype, batch, n.num_heads_kv, sl.k, n.head_dim_v);
  return in;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

TEST_CASE("round_to rounds to nearest even in bf16 and fp16", "[eval]") {
  using eval::round_to;
  // bf16: 8 significant bits, ulp(1) = 2^-7.
  CHECK(round_to(DType::bf16, 1.0) == 1.0);
  CHECK(round_to(DType::bf16, 1.0 + std::ldexp(1, -8)) == 1.0);                       // tie -> even
  CHECK(round_to(DType::bf16, 1.0 + 3 * std::ldexp(1, -8)) == 1.0 + std::ldexp(1, -6));  // tie -> even
  // Just above a tie: a plain double->float cast would land on the tie and round down.
  CHECK(round_to(DType::bf16, 1.0 + std::ldexp(1, -8) + std::ldexp(1, -40)) == 1.0 + std::ldexp(1, -7));
  CHECK(round_to(DType::bf16, -(1.0 + std::ldexp(1, -8) + std::ldexp(1, -40))) == -(1.0 + std::ldexp(1, -7)));
  CHECK(std::isinf(round_to(DType::bf16, 3.4e38)));
  const double bf16_max = std::ldexp(2.0 - std::ldexp(1, -7), 127);
  CHECK(round_to(DType::bf16, bf16_max) == bf16_max);
  CHECK(std::isinf(round_to(DType::bf16, bf16_max + std::ldexp(1, 119))));  // tie, odd max -> inf
  CHECK(round_to(DType::bf16, bf16_max + std::ldexp(1, 118)) == bf16_max);
  // fp16: 11 significant bits, max 65504, subnormals down to 2^-24.
  CHECK(round_to(DType::f16, 1.0 + std::ldexp(1, -11)) == 1.0);
  CHECK(round_to(DType::f16, 1.0 + std::ldexp(1, -11) + std::ldexp(1, -30)) == 1.0 + std::ldexp(1, -10));
  CHECK(round_to(DType::f16, 65504.0) == 65504.0);
  CHECK(round_to(DType::f16, 65519.99) == 65504.0);
  CHECK(std::isinf(round_to(DType::f16, 65520.0)));
  CHECK(round_to(DType::f16, -65520.0) == -kInf);
  CHECK(round_to(DType::f16, std::ldexp(1, -24)) == std::ldexp(1, -24));
  CHECK(round_to(DType::f16, std::ldexp(1, -25)) == 0.0);                                  // tie -> even (0)
  CHECK(round_to(DType::f16, std::ldexp(1, -25) + std::ldexp(1, -60)) == std::ldexp(1, -24));
  CHECK(round_to(DType::f16, 3 * std::ldexp(1, -25)) == std::ldexp(1, -23));                // tie -> even
  CHECK(round_to(DType::f16, 1e-30) == 0.0);
  CHECK(std::isnan(round_to(DType::f16, std::nan(""))));
  CHECK(round_to(DType::bf16, -kInf) == -kInf);
}

// Every finite value of both formats, decoded from its bits; round_to must pick the
// nearest one, and on a tie the one with an even last bit.
TEST_CASE("round_to agrees with a search over all 16-bit values", "[eval]") {
  for (DType dt : {DType::bf16, DType::f16}) {
    struct V {
      double x;
      bool even;
    };
    std::vector<V> vals;
    for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
      double x;
      if (dt == DType::bf16) {
        const uint32_t fb = bits << 16;
        float f;
        std::memcpy(&f, &fb, 4);
        x = f;
      } else {
        const int e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
        if (e == 31) continue;
        x = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
        if (bits & 0x8000) x = -x;
      }
      if (!std::isfinite(x) || (x == 0.0 && (bits & 0x8000))) continue;
      vals.push_back({x, (bits & 1u) == 0});
    }
    std::sort(vals.begin(), vals.end(), [](const V& a, const V& b) { return a.x < b.x; });
    auto nearest = [&](double x) -> double {
      auto it = std::lower_bound(vals.begin(), vals.end(), x, [](const V& a, double y) { return a.x < y; });
      if (it == vals.end()) return kInf;  // only reached for x beyond max (checked below)
      if (it->x == x || it == vals.begin()) return it->x;
      const V& hi = *it;
      const V& lo = *(it - 1);
      const double dl = x - lo.x, dh = hi.x - x;
      if (dl < dh) return lo.x;
      if (dh < dl) return hi.x;
      return lo.even ? lo.x : hi.x;
    };
    std::mt19937 rng(7);
    int bad = 0;
    // Midpoints of neighbours (ties), nudged up and down by less than a float ulp.
    for (size_t i = 0; i + 1 < vals.size(); i += 7) {
      const double mid = 0.5 * (vals[i].x + vals[i + 1].x);
      for (double x : {mid, std::nextafter(mid, kInf), std::nextafter(mid, -kInf), vals[i].x})
        if (eval::round_to(dt, x) != nearest(x) && ++bad < 5) FAIL_CHECK(to_string(dt) << " x=" << x);
    }
    std::uniform_real_distribution<double> mant(1.0, 2.0);
    std::uniform_int_distribution<int> ex(dt == DType::f16 ? -30 : -140, dt == DType::f16 ? 15 : 127);
    for (int i = 0; i < 20000; ++i) {
      const double x = std::ldexp(mant(rng), ex(rng)) * (i % 2 ? -1 : 1);
      if (eval::round_to(dt, x) != nearest(x) && ++bad < 5) FAIL_CHECK(to_string(dt) << " x=" << x);
    }
    CHECK(bad == 0);
  }
}

namespace {
// A random non-empty band (either side possibly unbounded), sequence lengths 1..90, tile
// sizes 16..128, with offsets bottom-right, top-left or arbitrary by turns.
struct RandomBandCase {
  Band band;
  long long sq, sk;
  int bm, bn;
};
RandomBandCase random_band_case(std::mt19937& rng, int iter) {
  std::uniform_int_distribution<int> coin(0, 1), len(1, 90), val(-40, 40), off(-50, 50), bsel(0, 3);
  const int blocks[] = {16, 32, 64, 128};
  RandomBandCase c{};
  Band& b = c.band;
  b.has_lo = coin(rng);
  b.has_hi = coin(rng);
  b.lo = val(rng);
  b.hi = val(rng);
  if (b.has_lo && b.has_hi && b.lo > b.hi) std::swap(b.lo, b.hi);  // lo <= hi: a non-empty band
  c.sq = len(rng), c.sk = len(rng);
  b.offset = iter % 3 == 0 ? c.sk - c.sq : (iter % 3 == 1 ? 0 : off(rng));
  c.bm = blocks[bsel(rng)], c.bn = blocks[bsel(rng)];
  return c;
}
}  // namespace

// band_kv_tiles against brute force over (i, j): the range covers every visible pair,
// starts and ends on non-empty tiles, and the "full" sub-range holds exactly the tiles in
// which every real row sees every key (j < seqlen_k included).
TEST_CASE("band_kv_tiles matches brute force", "[eval]") {
  std::mt19937 rng(1234);
  int checked = 0, with_full = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    const RandomBandCase c = random_band_case(rng, iter);
    const Band& b = c.band;
    const long long sq = c.sq, sk = c.sk;
    const int bm = c.bm, bn = c.bn;
    const long long n_tiles = ceil_div(sk, bn);
    for (long long q0 = 0; q0 < sq; q0 += bm) {
      const KvTileRange r = band_kv_tiles(b, q0, bm, sq, sk, bn);
      const long long qb = std::min<long long>(q0 + bm, sq);
      INFO("band lo=" << (b.has_lo ? std::to_string(b.lo) : "none") << " hi="
                      << (b.has_hi ? std::to_string(b.hi) : "none") << " off=" << b.offset << " Sq=" << sq
                      << " Sk=" << sk << " q0=" << q0 << " bm=" << bm << " bn=" << bn << " -> [" << r.begin << ","
                      << r.end << ") full [" << r.full_begin << "," << r.full_end << ")");
      REQUIRE(r.begin <= r.end);
      REQUIRE(r.begin >= 0);
      REQUIRE(r.end <= n_tiles);
      REQUIRE(r.full_begin <= r.full_end);
      if (r.full_begin < r.full_end) {
        REQUIRE(r.full_begin >= r.begin);
        REQUIRE(r.full_end <= r.end);
      }
      for (long long n = 0; n < n_tiles; ++n) {
        bool any = false, all = true;
        for (long long i = q0; i < qb; ++i)
          for (long long j = n * bn; j < (n + 1) * bn; ++j) {
            const bool vis = band_visible(b, i, j, sk);
            any |= vis;
            all &= vis;
          }
        const bool in_range = n >= r.begin && n < r.end;
        if (!in_range) REQUIRE_FALSE(any);
        if ((n == r.begin || n == r.end - 1) && in_range) REQUIRE(any);
        REQUIRE(tile_is_full(r, static_cast<int>(n)) == all);
        with_full += all;
      }
      ++checked;
    }
  }
  CHECK(checked > 1500);
  CHECK(with_full > 100);
}

// band_q_tiles (the backward's transposed view) against brute force: for a kv tile, the
// q-tile range holds exactly the q tiles with a visible pair, and the full sub-range exactly
// those whose every row sees every key, both tiles lying inside the tensors.
TEST_CASE("band_q_tiles matches brute force", "[eval][backward]") {
  std::mt19937 rng(4321);
  int checked = 0, with_full = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    const RandomBandCase c = random_band_case(rng, iter);
    const Band& b = c.band;
    const long long sq = c.sq, sk = c.sk;
    const int bm = c.bm, bn = c.bn;
    const long long n_q_tiles = ceil_div(sq, bm);
    for (long long k0 = 0; k0 < sk; k0 += bn) {
      const KvTileRange r = band_q_tiles(b, k0, bn, sq, sk, bm);
      INFO("band lo=" << (b.has_lo ? std::to_string(b.lo) : "none") << " hi="
                      << (b.has_hi ? std::to_string(b.hi) : "none") << " off=" << b.offset << " Sq=" << sq
                      << " Sk=" << sk << " k0=" << k0 << " bm=" << bm << " bn=" << bn << " -> [" << r.begin << ","
                      << r.end << ") full [" << r.full_begin << "," << r.full_end << ")");
      REQUIRE(r.begin <= r.end);
      REQUIRE(r.begin >= 0);
      REQUIRE(r.end <= n_q_tiles);
      REQUIRE(r.full_begin <= r.full_end);
      for (long long t = 0; t < n_q_tiles; ++t) {
        bool any = false, all = (t + 1) * bm <= sq && k0 + bn <= sk;
        for (long long i = t * bm; i < (t + 1) * bm; ++i)
          for (long long j = k0; j < k0 + bn; ++j) {
            const bool vis = i < sq && band_visible(b, i, j, sk);
            any |= vis;
            all &= vis;
          }
        REQUIRE((t >= r.begin && t < r.end) == any);
        REQUIRE(tile_is_full(r, static_cast<int>(t)) == all);
        with_full += all;
      }
      ++checked;
    }
  }
  CHECK(checked > 1500);
  CHECK(with_full > 100);
}

// The IR (as lowered, and after the sm_80 pipeline) against the reference, over masks,
// alignments, sequence lengths (empty rows, single rows / keys, ragged last tiles), tiles,
// dtypes, head dims and GQA groups.
TEST_CASE("evaluated IR matches reference attention", "[eval]") {
  const SeqLens seqlens[] = {{1, 1}, {17, 17}, {1, 33}, {33, 1}, {70, 45}, {45, 70}, {100, 100}};
  const int tiles[][2] = {{16, 16}, {16, 32}, {64, 16}, {64, 32}};
  const int dims[][2] = {{32, 32}, {64, 64}, {64, 32}};
  const int heads[][2] = {{1, 1}, {3, 1}, {4, 2}, {7, 1}};
  int c = 0, failures = 0;
  for (DType dt : {DType::bf16, DType::f16})
    for (const MaskSpec& mask : all_masks())
      for (const auto& tile : tiles)
        for (const SeqLens& sl : seqlens) {
          ++c;
          // Head dims and GQA rotate with the case number (a full product would be slow);
          // each value meets every mask and sequence length over the run.
          const auto& dim = dims[c % 3];
          const auto& hd = heads[(c / 3) % 4];
          AttentionSpec spec = make_spec(dt, dim[0], dim[1], hd[0], hd[1], mask, tile[0], tile[1]);
          if (c % 11 == 0) spec.softmax_scale = 0.3;
          if (c % 13 == 0) spec.return_lse = false;
          validate(spec);
          const int64_t batch = c % 5 == 0 ? 2 : 1;
          const Inputs in = make_inputs(spec, batch, sl, static_cast<uint32_t>(c));
          const double tol = dt == DType::bf16 ? 1e-2 : 2e-3;
          INFO("case " << c << ": " << describe(spec, sl));

          const eval::Result ref = eval::reference_attention(spec, in.q, in.k, in.v);
          const ir::Kernel lowered = ir::lower(spec);
          const ir::Kernel piped = passes::run_pipeline(lowered, "sm_80");
          const eval::Result a = eval::evaluate(lowered, in.q, in.k, in.v);
          const eval::Result b = eval::evaluate(piped, in.q, in.k, in.v);

          const std::string ea = compare(a, ref, spec, tol), eb = compare(b, ref, spec, tol);
          if (!ea.empty()) FAIL_CHECK("lowered IR: " << ea);
          if (!eb.empty()) FAIL_CHECK("after pipeline: " << eb);
          // Skipping empty tiles and not masking full ones must not change a single bit.
          const bool same = a.o.data == b.o.data && a.lse == b.lse;
          if (!same) FAIL_CHECK("classified IR differs from unclassified IR");
          const int64_t total = batch * spec.num_heads_q * ceil_div(sl.q, tile[0]) * ceil_div(sl.k, tile[1]);
          CHECK(a.tiles_skipped == 0);
          CHECK(a.tiles_full == 0);  // the lowered loop masks every tile
          CHECK(a.tiles_partial == total);
          CHECK(b.tiles_skipped + b.tiles_full + b.tiles_partial == total);
          failures += !ea.empty() || !eb.empty() || !same;
          if (failures > 20) FAIL("too many failures");
        }
  CHECK(c == 2 * 9 * 4 * 7);
}

TEST_CASE("fully masked rows give 0 output and -inf lse", "[eval]") {
  struct Case {
    MaskSpec mask;
    SeqLens sl;
    int64_t masked_rows;  // per (batch, head)
  };
  // Bottom-right causal with Sq > Sk: row i sees j <= i - (Sq - Sk), so the first Sq - Sk
  // rows see nothing. Bottom-right window (5, 0), Sq=70, Sk=45: rows i < 25 see nothing.
  // Top-left window (7, 7), Sq=100, Sk=17: rows i > 16 + 7 see nothing.
  const Case cases[] = {
      {mask_of(MaskKind::causal, MaskAlign::bottom_right), {33, 1}, 32},
      {mask_of(MaskKind::causal, MaskAlign::bottom_right), {70, 45}, 25},
      {mask_of(MaskKind::sliding_window, MaskAlign::bottom_right, 5, 0), {70, 45}, 25},
      {mask_of(MaskKind::sliding_window, MaskAlign::top_left, 7, 7), {100, 17}, 100 - 24},
  };
  int c = 0;
  for (const Case& cs : cases)
    for (DType dt : {DType::bf16, DType::f16}) {
      AttentionSpec spec = make_spec(dt, 64, 64, 2, 1, cs.mask, 16, 16);
      const Inputs in = make_inputs(spec, 1, cs.sl, static_cast<uint32_t>(100 + c++));
      INFO(describe(spec, cs.sl));
      const eval::Result ref = eval::reference_attention(spec, in.q, in.k, in.v);
      const int64_t ref_masked = std::count(ref.lse.begin(), ref.lse.end(), -kInf);
      REQUIRE(ref_masked == cs.masked_rows * 2);
      for (const ir::Kernel& k : {ir::lower(spec), passes::run_pipeline(ir::lower(spec), "sm_80")}) {
        const eval::Result e = eval::evaluate(k, in.q, in.k, in.v);
        int64_t masked = 0;
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t i = 0; i < cs.sl.q; ++i) {
            const double lse = e.lse[static_cast<size_t>(h * cs.sl.q + i)];
            REQUIRE_FALSE(std::isnan(lse));
            if (lse != -kInf) continue;
            ++masked;
            for (int64_t d = 0; d < 64; ++d) REQUIRE(e.o.at(0, h, i, d) == 0.0);
          }
        CHECK(masked == ref_masked);
      }
    }
}

// Tile counts after classify_tiles equal a brute-force classification of (q tile, kv
// tile) pairs from the spec's mask definition: empty tiles are skipped, tiles where every
// (real row, key) pair is visible run unmasked, the rest are masked.
TEST_CASE("classification skips empty tiles and leaves full tiles unmasked", "[eval]") {
  struct Case {
    MaskSpec mask;
    SeqLens sl;
    int bm, bn;
  };
  const Case cases[] = {
      {mask_of(MaskKind::causal, MaskAlign::bottom_right), {100, 100}, 16, 16},
      {mask_of(MaskKind::causal, MaskAlign::top_left), {45, 70}, 16, 32},
      {mask_of(MaskKind::causal, MaskAlign::bottom_right), {45, 70}, 64, 16},
      {mask_of(MaskKind::sliding_window, MaskAlign::bottom_right, 5, 0), {100, 100}, 16, 16},
      {mask_of(MaskKind::sliding_window, MaskAlign::top_left, -1, 3), {70, 45}, 16, 16},
      {mask_of(MaskKind::sliding_window, MaskAlign::bottom_right, 7, 7), {100, 100}, 16, 32},
      {mask_of(MaskKind::none, MaskAlign::bottom_right), {70, 45}, 16, 16},
  };
  for (const Case& cs : cases) {
    AttentionSpec spec = make_spec(DType::bf16, 32, 32, 1, 1, cs.mask, cs.bm, cs.bn);
    INFO(describe(spec, cs.sl));
    int64_t skip = 0, full = 0, partial = 0;
    for (int64_t q0 = 0; q0 < cs.sl.q; q0 += cs.bm)
      for (int64_t j0 = 0; j0 < cs.sl.k; j0 += cs.bn) {
        bool any = false, all = true;
        for (int64_t i = q0; i < std::min<int64_t>(q0 + cs.bm, cs.sl.q); ++i)
          for (int64_t j = j0; j < j0 + cs.bn; ++j) {
            const bool v = spec_visible(cs.mask, i, j, cs.sl.q, cs.sl.k);
            any |= v;
            all &= v;
          }
        (!any ? skip : all ? full : partial) += 1;
      }
    const Inputs in = make_inputs(spec, 1, cs.sl, 99);
    const eval::Result e = eval::evaluate(passes::run_pipeline(ir::lower(spec), "sm_80"), in.q, in.k, in.v);
    CHECK(e.tiles_skipped == skip);
    CHECK(e.tiles_full == full);
    CHECK(e.tiles_partial == partial);
    if (cs.mask.kind == MaskKind::causal && cs.sl.q == 100 && cs.bm == 16) {
      // 7 x 7 tiles: 21 above the diagonal are skipped, 21 below run unmasked, 7 on it.
      CHECK(e.tiles_skipped == 21);
      CHECK(e.tiles_full == 21);
      CHECK(e.tiles_partial == 7);
    }
    const eval::Result ref = eval::reference_attention(spec, in.q, in.k, in.v);
    CHECK(compare(e, ref, spec, 1e-2).empty());
  }
}

TEST_CASE("evaluate rejects inputs that do not match the kernel", "[eval]") {
  AttentionSpec spec = make_spec(DType::bf16, 32, 32, 4, 2, mask_of(MaskKind::none, MaskAlign::bottom_right), 16, 16);
  const ir::Kernel k = ir::lower(spec);
  const Inputs in = make_inputs(spec, 1, {20, 20}, 5);
  HostTensor q3(1, 3, 20, 32);  // 3 query heads for 2 kv heads with group 2
  CHECK_THROWS_AS(eval::evaluate(k, q3, in.k, in.v), std::invalid_argument);
  HostTensor v_short(1, 2, 19, 32);
  CHECK_THROWS_AS(eval::evaluate(k, in.q, in.k, v_short), std::invalid_argument);
  CHECK_THROWS_AS(eval::reference_attention(spec, q3, in.k, in.v), std::invalid_argument);
}

// P goes into the PV matmul rounded to the dtype while l sums the unrounded values, as
// on the GPU. One query, two keys: key 0 scores 0 (the row max, p = 1) and has v = 0,
// key 1 scores s < 0 and has v = 1, so O = round(p1) / (1 + p1) with p1 = exp2(s * scale_log2).
TEST_CASE("P is rounded to the dtype before the PV matmul", "[eval]") {
  for (DType dt : {DType::bf16, DType::f16}) {
    AttentionSpec spec = make_spec(dt, 32, 32, 1, 1, mask_of(MaskKind::none, MaskAlign::bottom_right), 16, 16);
    const ir::Kernel k = passes::run_pipeline(ir::lower(spec), "sm_80");
    const double sl = ir::find_op(k, ir::OpKind::online_softmax)->float_attr("scale_log2");
    HostTensor q(1, 1, 1, 32), kk(1, 1, 2, 32), v(1, 1, 2, 32);
    q.at(0, 0, 0, 0) = 1.0;
    for (int d = 0; d < 32; ++d) v.at(0, 0, 1, d) = 1.0;
    // Pick a score whose p is far from representable, so the two orders of rounding differ.
    bool found = false;
    for (int t = 1; t < 200 && !found; ++t) {
      const double s = eval::round_to(dt, -0.0173 * t);
      kk.at(0, 0, 1, 0) = s;
      const double p1 = std::exp2(s * sl);
      const double gpu = eval::round_to(dt, eval::round_to(dt, p1) / (1.0 + p1));
      const double unrounded = eval::round_to(dt, p1 / (1.0 + p1));
      if (gpu == unrounded) continue;
      found = true;
      const eval::Result e = eval::evaluate(k, q, kk, v);
      INFO(to_string(dt) << " s=" << s);
      for (int d = 0; d < 32; ++d) CHECK(e.o.at(0, 0, 0, d) == gpu);
    }
    CHECK(found);
  }
}

// The evaluator interprets whatever ops the kernel holds, by kind and value name.
TEST_CASE("evaluate executes the IR it is given", "[eval]") {
  AttentionSpec spec = make_spec(DType::f16, 32, 32, 1, 1, mask_of(MaskKind::none, MaskAlign::bottom_right), 16, 16);
  const SeqLens sl{20, 17};  // the second kv tile holds 1 key and 15 padding rows
  const Inputs in = make_inputs(spec, 1, sl, 3);
  const ir::Kernel k = ir::lower(spec);
  const eval::Result base = eval::evaluate(k, in.q, in.k, in.v);

  // Renaming every value changes nothing.
  ir::Kernel renamed = k;
  auto rename = [](std::vector<ir::Op>& ops) {
    for (ir::Op& op : ops) {
      for (auto& r : op.results) r = "t_" + r;
      for (auto& o : op.operands) o = "t_" + o;
    }
  };
  rename(renamed.prologue);
  rename(renamed.loop.body);
  rename(renamed.epilogue);
  const eval::Result r = eval::evaluate(renamed, in.q, in.k, in.v);
  CHECK(r.o.data == base.o.data);
  CHECK(r.lse == base.lse);

  // Without apply_mask the zero-filled padding keys get weight: the result is wrong,
  // which is what the GPU would do with that IR.
  ir::Kernel unmasked = k;
  auto& body = unmasked.loop.body;
  body.erase(std::remove_if(body.begin(), body.end(), [](const ir::Op& op) { return op.kind == ir::OpKind::apply_mask; }),
             body.end());
  const eval::Result u = eval::evaluate(unmasked, in.q, in.k, in.v);
  const eval::Result ref = eval::reference_attention(spec, in.q, in.k, in.v);
  CHECK(compare(base, ref, spec, 2e-3).empty());
  CHECK_FALSE(compare(u, ref, spec, 2e-3).empty());

  // An op that reads a value nobody defined is an IR error, reported with the op.
  ir::Kernel broken = k;
  broken.loop.body[1].operands[1] = "nope";
  CHECK_THROWS_AS(eval::evaluate(broken, in.q, in.k, in.v), std::logic_error);
}
