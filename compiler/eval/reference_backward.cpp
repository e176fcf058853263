// The float64 backward reference: dQ, dK, dV of reference_attention for an upstream dO,
// from the definition (no tiling, no recomputation tricks), so a backward kernel and its
// CPU evaluation can be checked against it; it is itself checked by finite differences
// (tests/unit/test_backward_reference.cpp).
//
// Per row i of each (batch, query head), with w_ij the (modified) score of visible keys:
//   P = softmax(w),  O = P V,  dP = dO Vᵀ,  D_i = rowsum(dO ∘ O),  dW = P ∘ (dP − D)
//   With dropout (factor Z: 0 or 1 / (1 − p) per element): O = (P ∘ Z) V, dV = (P ∘ Z)ᵀ dO,
//   dP = Z ∘ (dO Vᵀ), and D_i = rowsum(dO ∘ O) is still Σ_j P_ij dP_ij.
//   dS = dW ∘ dscore/draw (scale, times score_mod' with a score_mod),
//   dQ = dS K,  dK = dSᵀ Q,  dV = Pᵀ dO;  dK and dV summed over the query heads of a kv head;
//   d capture[x] = Σ dW ∘ d score_mod / d capture[x] for float tensors score_mod reads.
#include <cmath>
#include <limits>

#include "flashjit/cpu_eval.h"
#include "reference_scores.h"

namespace flashjit::eval {

Grads reference_attention_backward(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k,
                                   const HostTensor& v, const HostTensor& dout,
                                   const std::vector<expr::HostCapture>& captures, const HostTensor* o_for_delta,
                                   const DropoutKey* dropout) {
  const ReferenceDims dims(spec, q, k, v, &dout);
  const ReferenceDropout drop(spec.normalized(), dropout);
  const int head_dim = dims.head_dim, head_dim_v = dims.head_dim_v, heads_q = dims.heads_q, heads_kv = dims.heads_kv,
            group = dims.group;
  const double scale = dims.scale;
  const int64_t sq = q.s, sk = k.s;
  const ReferenceScores scores(spec, sq, sk, captures, /*with_derivative=*/true);
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  Grads g;
  g.dq = HostTensor(q.b, heads_q, sq, head_dim);
  g.dk = HostTensor(q.b, heads_kv, sk, head_dim);
  g.dv = HostTensor(q.b, heads_kv, sk, head_dim_v);
  g.dcaptures.resize(captures.size());
  for (size_t c = 0; c < captures.size() && c < spec.captures.size(); ++c) {
    const expr::CaptureDType t = spec.captures[c].dtype;
    if (t != expr::CaptureDType::f32 && t != expr::CaptureDType::f16 && t != expr::CaptureDType::bf16) continue;
    int64_t n = 1;
    for (int d = 0; d < captures[c].rank; ++d) n *= captures[c].sizes[d];
    g.dcaptures[c].assign(static_cast<size_t>(n), 0.0);
  }
  std::vector<double> raw(static_cast<size_t>(sk)), p(static_cast<size_t>(sk)), z(static_cast<size_t>(sk));
  std::vector<char> vis(static_cast<size_t>(sk));
  std::vector<double> o(static_cast<size_t>(head_dim_v));
  for (int64_t b = 0; b < q.b; ++b)
    for (int64_t h = 0; h < heads_q; ++h) {
      const int64_t hk = h / group;
      for (int64_t i = 0; i < sq; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        bool nan_row = false;
        for (int64_t j = 0; j < sk; ++j) {
          vis[j] = scores.visible(b, h, i, j);
          if (!vis[j]) continue;
          double s = 0.0;
          for (int t = 0; t < head_dim; ++t) s += q.at(b, h, i, t) * k.at(b, hk, j, t);
          raw[j] = s;
          p[j] = scores.score(b, h, i, j, s, scale);
          nan_row = nan_row || std::isnan(p[j]);
          mx = std::max(mx, p[j]);
        }
        if (nan_row) {  // NaN by the score_mod's own arithmetic: NaN dq, nothing to dk / dv
          for (int t = 0; t < head_dim; ++t) g.dq.at(b, h, i, t) = kNaN;
          continue;
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // no visible key: zero gradients
        double sum = 0.0;
        for (int64_t j = 0; j < sk; ++j) sum += vis[j] ? (p[j] = std::exp(p[j] - mx)) : (p[j] = 0.0);
        for (int64_t j = 0; j < sk; ++j) p[j] /= sum;
        for (int64_t j = 0; j < sk; ++j) z[j] = vis[j] ? drop.factor(b, h, i, j) : 0.0;
        double d_row = 0.0;  // D_i = rowsum(dO ∘ O)
        for (int t = 0; t < head_dim_v; ++t) {
          double acc = 0.0;
          for (int64_t j = 0; j < sk; ++j)
            if (vis[j]) acc += p[j] * z[j] * v.at(b, hk, j, t);
          o[t] = acc;
          d_row += dout.at(b, h, i, t) * (o_for_delta ? o_for_delta->at(b, h, i, t) : acc);
        }
        for (int64_t j = 0; j < sk; ++j) {
          if (!vis[j]) continue;
          double dp = 0.0;
          for (int t = 0; t < head_dim_v; ++t) {
            dp += dout.at(b, h, i, t) * v.at(b, hk, j, t);
            g.dv.at(b, hk, j, t) += p[j] * z[j] * dout.at(b, h, i, t);
          }
          dp *= z[j];
          const double dw = p[j] * (dp - d_row);  // d loss / d (modified) score
          const double ds = dw * scores.dscore(b, h, i, j, raw[j], scale);
          scores.add_capture_grads(b, h, i, j, raw[j], scale, dw, g.dcaptures);
          for (int t = 0; t < head_dim; ++t) {
            g.dq.at(b, h, i, t) += ds * k.at(b, hk, j, t);
            g.dk.at(b, hk, j, t) += ds * q.at(b, h, i, t);
          }
        }
      }
    }
  return g;
}

}  // namespace flashjit::eval
