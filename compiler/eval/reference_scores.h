// Internal to the CPU evaluator: the float64 references' view of a spec, straight from the
// spec's field definitions (not from the IR): its dimensions (checked against the tensors),
// which keys a query sees, the modified score, and (for the backward) d score_mod / d score.
// Shared by reference_attention, reference_attention_backward and tiled_backward so that
// they cannot disagree on the shapes or the mask.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "flashjit/band_mask.cuh"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/spec.h"

namespace flashjit::eval {

// The normalized spec's dimensions, spelled out from the field definitions in spec.h, after
// checking q, k, v (and dout, when given) against them.
struct ReferenceDims {
  int head_dim, head_dim_v, heads_q, heads_kv, group;
  double scale;

  ReferenceDims(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k, const HostTensor& v,
                const HostTensor* dout = nullptr)
      : head_dim(spec.head_dim), head_dim_v(spec.head_dim_v != 0 ? spec.head_dim_v : spec.head_dim),
        heads_q(spec.num_heads_q), heads_kv(spec.num_heads_kv != 0 ? spec.num_heads_kv : spec.num_heads_q),
        group(0), scale(spec.softmax_scale ? *spec.softmax_scale : 1.0 / std::sqrt(static_cast<double>(spec.head_dim))) {
    if (heads_kv <= 0 || heads_q % heads_kv != 0)
      throw ArgumentError("spec", "num_heads_q must be a multiple of num_heads_kv");
    group = heads_q / heads_kv;
    if (q.h != heads_q || q.d != head_dim) throw ArgumentError("q", "shape does not match the spec");
    if (k.h != heads_kv || k.d != head_dim || k.b != q.b) throw ArgumentError("k", "shape does not match the spec");
    if (v.h != heads_kv || v.d != head_dim_v || v.b != q.b || v.s != k.s)
      throw ArgumentError("v", "shape does not match the spec");
    if (dout && (dout->b != q.b || dout->h != heads_q || dout->s != q.s || dout->d != head_dim_v))
      throw ArgumentError("dout", "shape must be (batch, heads_q, seqlen_q, head_dim_v)");
  }
};

// Dropout's factor per element: 0 for a dropped one, 1 / (1 - p) for a kept one, 1 without
// dropout (philox.cuh's definition, the kernels' own).
class ReferenceDropout {
 public:
  ReferenceDropout(const AttentionSpec& spec, const DropoutKey* key)
      : key_(key), heads_q_(spec.num_heads_q), threshold_(dropout_threshold(spec.dropout_p)),
        scale_(dropout_keep_scale(threshold_)) {
    if (spec.dropout_p > 0 && !key)
      throw ArgumentError("dropout", "the spec has dropout_p > 0: pass the call's RNG state (DropoutKey)");
    if (spec.dropout_p == 0) key_ = nullptr;
  }
  bool active() const { return key_ != nullptr; }
  double factor(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!key_) return 1.0;
    const auto n = dropout_element_number(*key_, static_cast<uint32_t>(b * heads_q_ + h), static_cast<uint32_t>(i),
                                          static_cast<uint32_t>(j));
    return n < threshold_ ? 0.0 : scale_;
  }

 private:
  const DropoutKey* key_;
  int64_t heads_q_;
  uint32_t threshold_;
  double scale_;
};

// The closed-form band of a lowered KV loop (band_mask.cuh) for these sequence lengths.
inline Band band_of_loop(const ir::BandMask& m, int64_t seqlen_q, int64_t seqlen_k) {
  Band band{};
  band.has_lo = m.lo.has_value();
  band.has_hi = m.hi.has_value();
  band.lo = m.lo.value_or(0);
  band.hi = m.hi.value_or(0);
  band.offset = m.bottom_right ? seqlen_k - seqlen_q : 0;
  return band;
}

class ReferenceScores {
 public:
  ReferenceScores(const AttentionSpec& spec, int64_t seqlen_q, int64_t seqlen_k,
                  const std::vector<expr::HostCapture>& captures, bool with_derivative = false)
      : spec_(spec), sq_(seqlen_q), sk_(seqlen_k), captures_(captures),
        off_(spec.mask.align == MaskAlign::bottom_right ? seqlen_k - seqlen_q : 0) {
    if (spec.mask.kind == MaskKind::custom) mask_ = expr::parse(spec.mask.expr, expr::Context{false, spec.captures});
    if (!spec.score_mod.empty()) {
      score_ = expr::parse(spec.score_mod, expr::Context{true, spec.captures});
      if (with_derivative) {
        dscore_ = expr::score_derivative(*score_, spec.captures);
        read_grads_ = expr::read_gradients(*score_, spec.captures);
      }
    }
  }

  bool visible(int64_t b, int64_t h, int64_t i, int64_t j) const {
    switch (spec_.mask.kind) {
      case MaskKind::custom: return expr::eval_mask(*mask_, env(b, h, i, j, 0.f));
      case MaskKind::none: return true;
      case MaskKind::causal: return j <= i + off_;
      case MaskKind::sliding_window: {
        const int64_t a = i + off_;  // the aligned query position
        return (spec_.mask.left < 0 || j >= a - spec_.mask.left) && (spec_.mask.right < 0 || j <= a + spec_.mask.right);
      }
    }
    return false;
  }
  // The score the softmax sees for raw = q·k (float64): raw * scale, or score_mod of it
  // (evaluated in float, as the kernels do).
  double score(int64_t b, int64_t h, int64_t i, int64_t j, double raw, double scale) const {
    if (!score_) return raw * scale;
    return static_cast<double>(expr::eval_score(*score_, env(b, h, i, j, scaled(raw, scale))));
  }
  // Adds dw * d score / d (each float capture element score_mod reads) into dcaps[capture],
  // a dense row-major copy of that capture's elements.
  void add_capture_grads(int64_t b, int64_t h, int64_t i, int64_t j, double raw, double scale, double dw,
                         std::vector<std::vector<double>>& dcaps) const {
    if (read_grads_.empty()) return;
    const expr::Env e = env(b, h, i, j, scaled(raw, scale));
    for (const expr::ReadGradient& g : read_grads_) {
      const expr::HostCapture& c = captures_.at(static_cast<size_t>(g.capture));
      int64_t at = 0;
      for (size_t d = 0; d < g.index.size(); ++d) at = at * c.sizes[d] + expr::evaluate(g.index[d], e).i;
      dcaps.at(static_cast<size_t>(g.capture)).at(static_cast<size_t>(at)) +=
          dw * static_cast<double>(expr::eval_score(g.derivative, e));
    }
  }
  // d score / d raw = scale * score_mod'(raw * scale).
  double dscore(int64_t b, int64_t h, int64_t i, int64_t j, double raw, double scale) const {
    if (!score_) return scale;
    return scale * static_cast<double>(expr::eval_score(*dscore_, env(b, h, i, j, scaled(raw, scale))));
  }

 private:
  const AttentionSpec& spec_;
  int64_t sq_, sk_;
  const std::vector<expr::HostCapture>& captures_;
  int64_t off_;
  std::optional<expr::Expr> mask_, score_, dscore_;
  std::vector<expr::ReadGradient> read_grads_;

  static float scaled(double raw, double scale) { return static_cast<float>(raw) * static_cast<float>(scale); }
  expr::Env env(int64_t b, int64_t h, int64_t i, int64_t j, float score) const {
    expr::Env e;
    e.b = static_cast<int>(b), e.h = static_cast<int>(h), e.q_idx = static_cast<int>(i);
    e.kv_idx = static_cast<int>(j), e.seqlen_q = static_cast<int>(sq_), e.seqlen_k = static_cast<int>(sk_);
    e.score = score;
    e.captures = &captures_;
    return e;
  }
};

}  // namespace flashjit::eval
