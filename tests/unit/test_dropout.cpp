// Dropout without a GPU (issue 11): Philox against Random123's known answers; the element ->
// group -> number map; the keep-mask's statistics (rate within binomial bounds, no correlation
// between neighbouring rows, columns, heads, batches); the CPU evaluator with dropout against
// the float64 reference for different tiles; the tiled backward and the float64 backward
// with dropout against each other and against finite differences; spec validation.
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/passes.h"
#include "flashjit/philox.cuh"
#include "flashjit/tuning.h"

using flashjit::AttentionSpec;
using flashjit::DropoutKey;
using flashjit::MaskKind;
namespace eval = flashjit::eval;
namespace philox = flashjit::philox;

namespace {

eval::HostTensor random_tensor(std::mt19937& rng, flashjit::DType dt, int64_t b, int64_t h, int64_t s, int64_t d) {
  std::normal_distribution<double> nd(0.0, 1.0);
  eval::HostTensor t(b, h, s, d);
  for (double& x : t.data) x = eval::round_to(dt, nd(rng));
  return t;
}

double rel_error(const eval::HostTensor& got, const eval::HostTensor& want) {
  double e2 = 0, r2 = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    e2 += (got.data[i] - want.data[i]) * (got.data[i] - want.data[i]);
    r2 += want.data[i] * want.data[i];
  }
  return r2 > 0 ? std::sqrt(e2 / r2) : std::sqrt(e2);
}

AttentionSpec dropout_spec(double p, MaskKind mask, int d = 32, int hq = 3, int hkv = 1) {
  AttentionSpec s;
  s.dtype = flashjit::DType::bf16;
  s.head_dim = d;
  s.num_heads_q = hq;
  s.num_heads_kv = hkv;
  s.mask.kind = mask;
  if (mask == MaskKind::sliding_window) s.mask.left = 20, s.mask.right = 3;
  s.dropout_p = p;
  s.return_lse = true;
  return s;
}

}  // namespace

TEST_CASE("dropout: Philox4x32-10 gives Random123's known answers", "[dropout]") {
  struct Kat {
    philox::U32x4 ctr;
    uint32_t k0, k1;
    philox::U32x4 out;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffu, 0xffffffffu,
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0xa4093822u, 0x299f31d0u,
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const philox::U32x4 r = philox::philox4x32_10(k.ctr, k.k0, k.k1);
    CHECK(r.x == k.out.x);
    CHECK(r.y == k.out.y);
    CHECK(r.z == k.out.z);
    CHECK(r.w == k.out.w);
  }
}

// The 16 elements of a group (rows {16a + 2r + ρ + 8η} × keys {16s + 2c + e + 8m}) share
// one Philox call and take its 16 numbers, one each: what the kernels' lane exchange relies on.
TEST_CASE("dropout: a group's 16 elements share one Philox call and take distinct numbers", "[dropout]") {
  const DropoutKey key{0x1234567890abcdefull, 0x0fedcba987654321ull};
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const uint32_t bh = rng() % 1000, i = rng() % 100000, j = rng() % 100000;
    const uint32_t r0 = (i & ~15u) + (i & 6u), c0 = (j & ~15u) + (j & 6u);  // the group's first row and key
    const philox::U32x4 g = flashjit::dropout_group_bits(key, bh, i, j);
    std::set<int> slots;
    for (uint32_t rho = 0; rho < 2; ++rho)
      for (uint32_t eta = 0; eta < 2; ++eta)
        for (uint32_t m = 0; m < 2; ++m)
          for (uint32_t e = 0; e < 2; ++e) {
            const uint32_t ii = r0 + 8 * eta + rho, jj = c0 + 8 * m + e;
            const philox::U32x4 h = flashjit::dropout_group_bits(key, bh, ii, jj);
            REQUIRE((h.x == g.x && h.y == g.y && h.z == g.z && h.w == g.w));
            slots.insert(flashjit::dropout_slot(ii, jj));
            CHECK(flashjit::dropout_element_number(key, bh, ii, jj) ==
                  flashjit::dropout_number(g, flashjit::dropout_slot(ii, jj)));
          }
    CHECK(slots.size() == 16);
    // The neighbouring groups are other calls.
    const philox::U32x4 right = flashjit::dropout_group_bits(key, bh, i, j + 16), down = flashjit::dropout_group_bits(key, bh, i + 16, j);
    CHECK(right.x != g.x);
    CHECK(down.x != g.x);
  }
  // Anything else in the key changes the numbers: offset, seed, head, batch.
  const uint32_t a = flashjit::dropout_element_number(key, 5, 10, 20);
  int differ = 0;
  for (const DropoutKey& k2 : {DropoutKey{key.seed + 1, key.offset}, DropoutKey{key.seed, key.offset + 1},
                               DropoutKey{key.seed ^ (1ull << 40), key.offset}, DropoutKey{key.seed, key.offset ^ (1ull << 40)}})
    differ += flashjit::dropout_element_number(k2, 5, 10, 20) != a;
  CHECK(differ >= 2);  // 8-bit numbers: one or two may collide by chance (2^-8 each)
}

// The rows layout's lane pairs keep words x, y of the block they draw and hand over z, w
// (dropout.cuh): the row parity's slot bit flips between neighbouring 16-key blocks.
TEST_CASE("dropout: the slot's row bit flips with the 16-key block", "[dropout]") {
  for (uint32_t i = 0; i < 64; ++i)
    for (uint32_t j = 0; j < 64; ++j) {
      const int s = flashjit::dropout_slot(i, j), s16 = flashjit::dropout_slot(i, j + 16);
      CHECK((s ^ s16) == 8);
      CHECK(((s >> 3) & 1) == static_cast<int>((i ^ (j >> 4)) & 1u));
    }
}

// The forward's SWAR compare (four numbers per word) against the plain one, for every
// threshold and every byte value in each position.
TEST_CASE("dropout: kept_bytes flags exactly the numbers >= threshold", "[dropout]") {
  std::mt19937 rng(11);
  for (uint32_t t = 0; t < 256; ++t)
    for (uint32_t v = 0; v < 256; ++v)
      for (int pos = 0; pos < 4; ++pos) {
        const uint32_t noise = rng(), w = (noise & ~(0xFFu << (8 * pos))) | (v << (8 * pos));
        const uint32_t f = flashjit::dropout_kept_bytes(w, t);
        for (int b = 0; b < 4; ++b) {
          const uint32_t byte = (w >> (8 * b)) & 0xFFu;
          REQUIRE(((f >> (8 * b + 7)) & 1u) == (byte >= t ? 1u : 0u));
        }
      }
}

TEST_CASE("dropout: thresholds and scales", "[dropout]") {
  CHECK(flashjit::dropout_threshold(0.0) == 0u);
  CHECK(flashjit::dropout_threshold(0.5) == 128u);
  CHECK(flashjit::dropout_threshold(0.1) == 25u);
  CHECK(flashjit::dropout_threshold(0.2) == 51u);
  CHECK(flashjit::dropout_threshold(0.999999) == 255u);
  CHECK(flashjit::dropout_keep_scale(128u) == 2.0);
  CHECK(flashjit::dropout_keep_scale(64u) == 256.0 / 192.0);
  CHECK(std::abs(flashjit::dropout_keep_scale(flashjit::dropout_threshold(0.25)) - 4.0 / 3.0) < 1e-12);
}

// The keep-mask from the debug entry: for each p its rate within 5 sigma of 1 - p (p as the
// threshold rounds it), and the correlation of neighbours along every index within 5 sigma of 0.
TEST_CASE("dropout: keep-mask rate and independence of neighbours", "[dropout]") {
  const int64_t B = 2, H = 4, S = 256, K = 512;
  for (double p : {0.1, 0.2, 0.5, 0.9}) {
    INFO("p = " << p);
    const AttentionSpec spec = dropout_spec(p, MaskKind::none, 64, static_cast<int>(H), 2);
    const std::vector<uint8_t> keep = eval::dropout_keep_mask(spec, B, S, K, DropoutKey{12345u + static_cast<uint64_t>(p * 100), 7});
    REQUIRE(keep.size() == static_cast<size_t>(B * H * S * K));
    const double q = 1.0 - flashjit::dropout_threshold(p) / 256.0;  // the kept probability
    double n = 0, kept = 0;
    for (uint8_t x : keep) n += 1, kept += x;
    const double sigma = std::sqrt(q * (1 - q) / n);
    CHECK(std::abs(kept / n - q) < 5 * sigma);
    auto at = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
      return static_cast<double>(keep[static_cast<size_t>(((b * H + h) * S + i) * K + j)]);
    };
    // Pearson correlation of x with its neighbour one step along each axis.
    struct Axis {
      const char* name;
      int64_t db, dh, di, dj;
    };
    for (const Axis& a : {Axis{"column", 0, 0, 0, 1}, Axis{"column + 8", 0, 0, 0, 8}, Axis{"row", 0, 0, 1, 0},
                          Axis{"head", 0, 1, 0, 0}, Axis{"batch", 1, 0, 0, 0}}) {
      double sx = 0, sy = 0, sxy = 0, sxx = 0, syy = 0, m = 0;
      for (int64_t b = 0; b + a.db < B; ++b)
        for (int64_t h = 0; h + a.dh < H; ++h)
          for (int64_t i = 0; i + a.di < S; ++i)
            for (int64_t j = 0; j + a.dj < K; ++j) {
              const double x = at(b, h, i, j), y = at(b + a.db, h + a.dh, i + a.di, j + a.dj);
              sx += x, sy += y, sxy += x * y, sxx += x * x, syy += y * y, m += 1;
            }
      const double cov = sxy / m - (sx / m) * (sy / m);
      const double corr = cov / std::sqrt((sxx / m - (sx / m) * (sx / m)) * (syy / m - (sy / m) * (sy / m)));
      INFO(a.name << " correlation " << corr << " over " << m);
      CHECK(std::abs(corr) < 5.0 / std::sqrt(m));
    }
  }
}

// The evaluator runs the IR with its dropout op; for every tile (and both back ends' IR) it
// must agree with the float64 reference that applies the same mask from its own definition.
TEST_CASE("dropout: the CPU evaluator matches the float64 reference for every tile", "[dropout][cpu_eval]") {
  std::mt19937 rng(21);
  const DropoutKey key{987654321u, 42u};
  const std::vector<flashjit::TileConfig> tiles = {{64, 64, 4, 2}, {128, 32, 4, 2}, {32, 32, 2, 2},
                                                   {128, 128, 8, 2, flashjit::MmaKind::wgmma}};
  for (MaskKind mask : {MaskKind::none, MaskKind::causal, MaskKind::sliding_window})
    for (const auto& [sq, sk] : std::vector<std::pair<int, int>>{{17, 17}, {100, 257}, {130, 64}}) {
      const AttentionSpec spec = dropout_spec(0.3, mask);
      const eval::HostTensor q = random_tensor(rng, spec.dtype, 2, 3, sq, 32), k = random_tensor(rng, spec.dtype, 2, 1, sk, 32),
                             v = random_tensor(rng, spec.dtype, 2, 1, sk, 32);
      const eval::Result ref = eval::reference_attention(spec, q, k, v, {}, &key);
      const eval::Result undropped = eval::reference_attention(dropout_spec(0.0, mask), q, k, v);
      CHECK(rel_error(undropped.o, ref.o) > 0.2);  // the mask changes the output a lot
      for (size_t i = 0; i < ref.lse.size(); ++i) CHECK(ref.lse[i] == undropped.lse[i]);  // not the LSE
      for (const flashjit::TileConfig& t : tiles) {
        AttentionSpec ts = spec;
        ts.tile = t;
        const std::string arch = t.mma == flashjit::MmaKind::wgmma ? "sm_90a" : "sm_80";
        const eval::Result r = eval::evaluate(flashjit::passes::run_pipeline(flashjit::ir::lower(ts), arch), q, k, v, {}, &key);
        INFO("mask " << flashjit::to_string(mask) << " sq " << sq << " sk " << sk << " tile " << flashjit::to_string(t));
        CHECK(rel_error(r.o, ref.o) < 1e-2);
        for (size_t i = 0; i < ref.lse.size(); ++i)
          CHECK((r.lse[i] == ref.lse[i] || std::abs(r.lse[i] - ref.lse[i]) <= 1e-3 * std::max(1.0, std::abs(ref.lse[i]))));
      }
      CHECK_THROWS_AS(eval::reference_attention(spec, q, k, v, {}), flashjit::ArgumentError);  // no RNG state
    }
}

// The backward as the kernels tile it (P ∘ Z for dV, Z ∘ dP for dS) against the float64
// backward, and the float64 backward against finite differences of the forward with the
// mask held fixed (the output is then a smooth function of q, k, v).
TEST_CASE("dropout: the backward references agree with each other and with finite differences", "[dropout][backward]") {
  std::mt19937 rng(8);
  const DropoutKey key{55u, 3u};
  for (MaskKind mask : {MaskKind::none, MaskKind::causal}) {
    AttentionSpec spec = dropout_spec(0.25, mask, 32, 2, 1);
    spec.tile = flashjit::default_bwd_tile(spec, "sm_80");
    const int64_t sq = 70, sk = 90;
    const eval::HostTensor q = random_tensor(rng, spec.dtype, 1, 2, sq, 32), k = random_tensor(rng, spec.dtype, 1, 1, sk, 32),
                           v = random_tensor(rng, spec.dtype, 1, 1, sk, 32), dout = random_tensor(rng, spec.dtype, 1, 2, sq, 32);
    const eval::Result fwd = eval::reference_attention(spec, q, k, v, {}, &key);
    const eval::Grads ref = eval::reference_attention_backward(spec, q, k, v, dout, {}, nullptr, &key);
    const eval::TiledGrads tiled = eval::tiled_backward(spec, q, k, v, fwd.o, fwd.lse, dout, {}, true, &key);
    INFO("mask " << flashjit::to_string(mask));
    CHECK(rel_error(tiled.grads.dq, ref.dq) < 1e-2);
    CHECK(rel_error(tiled.grads.dk, ref.dk) < 1e-2);
    CHECK(rel_error(tiled.grads.dv, ref.dv) < 1e-2);
    const eval::Grads plain = eval::reference_attention_backward(dropout_spec(0.0, mask, 32, 2, 1), q, k, v, dout);
    CHECK(rel_error(plain.dv, ref.dv) > 0.1);
  }
  // Finite differences on a tiny shape (float64 throughout: no rounding of inputs here).
  AttentionSpec spec = dropout_spec(0.4, MaskKind::causal, 4, 2, 1);
  std::normal_distribution<double> nd(0.0, 1.0);
  eval::HostTensor q(1, 2, 5, 4), k(1, 1, 7, 4), v(1, 1, 7, 4), dout(1, 2, 5, 4);
  for (auto* t : {&q, &k, &v, &dout})
    for (double& x : t->data) x = nd(rng);
  const eval::Grads g = eval::reference_attention_backward(spec, q, k, v, dout, {}, nullptr, &key);
  auto loss = [&] {
    const eval::Result r = eval::reference_attention(spec, q, k, v, {}, &key);
    double l = 0;
    for (size_t i = 0; i < r.o.data.size(); ++i) l += r.o.data[i] * dout.data[i];
    return l;
  };
  for (auto [t, grad] : {std::pair{&q, &g.dq}, {&k, &g.dk}, {&v, &g.dv}})
    for (size_t i = 0; i < t->data.size(); ++i) {
      const double keep = t->data[i];
      t->data[i] = keep + 1e-6;
      const double lp = loss();
      t->data[i] = keep - 1e-6;
      const double lm = loss();
      t->data[i] = keep;
      CHECK(std::abs((lp - lm) / 2e-6 - grad->data[i]) < 1e-5 * std::max(1.0, std::abs(grad->data[i])));
    }
}

TEST_CASE("dropout: spec validation and the keep-mask entry's errors", "[dropout][spec]") {
  // The message of what f throws ("" when it does not throw).
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  AttentionSpec s = dropout_spec(0.5, MaskKind::none);
  CHECK_NOTHROW(flashjit::validate(s));
  for (double bad : {1.0, -0.1, 2.0, std::nan("")}) {
    s.dropout_p = bad;
    const std::string m = message([&] { flashjit::validate(s); });
    CHECK(m.find("dropout_p") != std::string::npos);
    CHECK(m.find("0 <= dropout_p < 1") != std::string::npos);
  }
  s.dropout_p = 0.0;
  CHECK(message([&] { eval::dropout_keep_mask(s, 1, 4, 4, DropoutKey{}); }).find("dropout_p") != std::string::npos);
  s.dropout_p = 0.1;
  CHECK(message([&] { eval::dropout_keep_mask(s, 0, 4, 4, DropoutKey{}); }).find("batch") != std::string::npos);
}
