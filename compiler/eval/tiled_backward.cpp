// The backward pass as its kernels will tile it (FlashAttention-2's shape), on the CPU:
//   preprocess  D_i = rowsum(dO ∘ O);
//   dk/dv       per (batch, kv head, kv tile): dK, dV accumulate over the q heads of the
//               group and over the q tiles that see the kv tile (band_q_tiles for bands,
//               interval classification for expressions), P recomputed from the LSE;
//   dq          reduce-added per q tile into a float accumulator.
// P and dS are rounded to the spec's dtype, as the 16-bit operands of the GEMMs they feed.
// Dropout: P ∘ Z feeds dV and dP is Z ∘ (dO Vᵀ) (Z: 0 or 1 / (1 − p), philox.cuh).
// Skipping empty q tiles and not masking full ones must not change a bit, which the unit
// tests check against the same loop with every tile visited and masked.
#include <cmath>
#include <limits>

#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "reference_scores.h"

namespace flashjit::eval {

TiledGrads tiled_backward(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k, const HostTensor& v,
                          const HostTensor& o, const std::vector<double>& lse, const HostTensor& dout,
                          const std::vector<expr::HostCapture>& captures, bool classify, const DropoutKey* dropout) {
  if (!spec.tile) throw ArgumentError("spec.tile", "tiled_backward needs the tile (block_m, block_n)");
  const int bm = spec.tile->block_m, bn = spec.tile->block_n;
  const ReferenceDims dims(spec, q, k, v, &dout);
  const int head_dim = dims.head_dim, head_dim_v = dims.head_dim_v, heads_q = dims.heads_q, heads_kv = dims.heads_kv,
            group = dims.group;
  const double scale = dims.scale;
  const int64_t sq = q.s, sk = k.s;
  const ReferenceScores scores(spec, sq, sk, captures, /*with_derivative=*/true);
  const ReferenceDropout drop(spec.normalized(), dropout);
  // The loop's mask as the kernels get it from lowering: a band (built-in, or an expression
  // recognised as one) in closed form, else the expression, classified by interval analysis.
  const ir::Kernel lowered = ir::lower(spec);
  const bool is_band = lowered.loop.mask_expr.empty();
  const Band band = band_of_loop(lowered.loop.mask, sq, sk);
  std::optional<expr::Expr> mask_expr;
  if (!is_band) mask_expr = expr::parse(lowered.loop.mask_expr, expr::Context{false, spec.captures});
  auto rnd = [&](double x) { return round_to(spec.dtype, x); };

  TiledGrads out;
  Grads& g = out.grads;
  g.dq = HostTensor(q.b, heads_q, sq, head_dim);
  g.dk = HostTensor(q.b, heads_kv, sk, head_dim);
  g.dv = HostTensor(q.b, heads_kv, sk, head_dim_v);
  // Preprocess: D = rowsum(dO ∘ O).
  std::vector<double> drow(static_cast<size_t>(q.b * heads_q * sq));
  for (int64_t b = 0; b < q.b; ++b)
    for (int64_t h = 0; h < heads_q; ++h)
      for (int64_t i = 0; i < sq; ++i) {
        double acc = 0.0;
        for (int t = 0; t < head_dim_v; ++t) acc += dout.at(b, h, i, t) * o.at(b, h, i, t);
        drow[static_cast<size_t>((b * heads_q + h) * sq + i)] = acc;
      }
  const int64_t n_q_tiles = (sq + bm - 1) / bm;
  std::vector<double> p(static_cast<size_t>(bm * bn)), ds(static_cast<size_t>(bm * bn));
  for (int64_t b = 0; b < q.b; ++b)
    for (int64_t hk = 0; hk < heads_kv; ++hk)
      for (int64_t k0 = 0; k0 < sk; k0 += bn) {
        for (int64_t hq = hk * group; hq < (hk + 1) * group; ++hq) {
          KvTileRange r{0, static_cast<int>(n_q_tiles), 0, 0};  // unclassified: every tile, all masked
          if (classify && is_band) {
            r = band_q_tiles(band, k0, bn, sq, sk, bm);
            out.tiles_skipped += n_q_tiles - (r.end - r.begin);
          }
          for (int64_t t = r.begin; t < r.end; ++t) {
            const int64_t q0 = t * bm;
            bool full = classify && is_band && tile_is_full(r, static_cast<int>(t));
            if (classify && !is_band) {
              expr::Box box;
              box.b_lo = box.b_hi = b, box.h_lo = box.h_hi = hq;
              box.q_lo = q0, box.q_hi = std::min<int64_t>(q0 + bm, sq) - 1;
              box.kv_lo = k0, box.kv_hi = std::min<int64_t>(k0 + bn, sk) - 1;
              box.seqlen_q = sq, box.seqlen_k = sk;
              const expr::Truth c = expr::mask_over(*mask_expr, box, &captures);
              if (c == expr::Truth::never) {
                ++out.tiles_skipped;
                continue;
              }
              full = c == expr::Truth::always && q0 + bm <= sq && k0 + bn <= sk;
            }
            ++(full ? out.tiles_full : out.tiles_partial);
            // P (from the LSE) and dS of this (q tile, kv tile).
            for (int r_ = 0; r_ < bm; ++r_)
              for (int c = 0; c < bn; ++c) {
                const int64_t i = q0 + r_, j = k0 + c;
                const size_t at = static_cast<size_t>(r_ * bn + c);
                p[at] = ds[at] = 0.0;
                if (i >= sq || j >= sk) continue;
                if (!full && !scores.visible(b, hq, i, j)) continue;
                const double l = lse[static_cast<size_t>((b * heads_q + hq) * sq + i)];
                if (l == -std::numeric_limits<double>::infinity()) continue;  // a row with no key
                double s = 0.0;
                for (int e = 0; e < head_dim; ++e) s += q.at(b, hq, i, e) * k.at(b, hk, j, e);
                const double pe = std::exp(scores.score(b, hq, i, j, s, scale) - l);
                double dp = 0.0;
                for (int e = 0; e < head_dim_v; ++e) dp += dout.at(b, hq, i, e) * v.at(b, hk, j, e);
                const double z = drop.factor(b, hq, i, j);
                p[at] = rnd(pe * z);
                ds[at] = rnd(pe * (dp * z - drow[static_cast<size_t>((b * heads_q + hq) * sq + i)]) *
                             scores.dscore(b, hq, i, j, s, scale));
              }
            // dV += Pᵀ dO, dK += dSᵀ Q, dQ += dS K.
            for (int c = 0; c < bn && k0 + c < sk; ++c) {
              for (int e = 0; e < head_dim_v; ++e) {
                double acc = g.dv.at(b, hk, k0 + c, e);
                for (int r_ = 0; r_ < bm && q0 + r_ < sq; ++r_) acc += p[static_cast<size_t>(r_ * bn + c)] * dout.at(b, hq, q0 + r_, e);
                g.dv.at(b, hk, k0 + c, e) = acc;
              }
              for (int e = 0; e < head_dim; ++e) {
                double acc = g.dk.at(b, hk, k0 + c, e);
                for (int r_ = 0; r_ < bm && q0 + r_ < sq; ++r_) acc += ds[static_cast<size_t>(r_ * bn + c)] * q.at(b, hq, q0 + r_, e);
                g.dk.at(b, hk, k0 + c, e) = acc;
              }
            }
            for (int r_ = 0; r_ < bm && q0 + r_ < sq; ++r_)
              for (int e = 0; e < head_dim; ++e) {
                double acc = 0.0;
                for (int c = 0; c < bn && k0 + c < sk; ++c) acc += ds[static_cast<size_t>(r_ * bn + c)] * k.at(b, hk, k0 + c, e);
                g.dq.at(b, hq, q0 + r_, e) += acc;
              }
          }
        }
      }
  return out;  // dS is with respect to the raw q·k: the softmax scale is inside dscore
}

}  // namespace flashjit::eval
