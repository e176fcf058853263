// AttentionSpec value semantics: defaults, equality, hashing and enum names.
// JSON lives in spec_json.cpp, validation in spec_validate.cpp.
#include "flashjit/spec.h"

#include <cmath>

namespace flashjit {

AttentionSpec AttentionSpec::normalized() const {
  AttentionSpec n = *this;
  if (n.head_dim_v == 0) n.head_dim_v = n.head_dim;
  if (n.num_heads_kv == 0) n.num_heads_kv = n.num_heads_q;
  // Canonical expression text, so spellings of one expression share a key; text that does
  // not parse stays as it is, for validate() to report.
  auto canonical = [&](std::string& text, bool score) {
    if (text.empty()) return;
    try {
      text = expr::canonical_text(text, expr::Context{score, n.captures});
    } catch (const expr::ExprError&) {
    }
  };
  if (n.mask.kind == MaskKind::custom) {
    canonical(n.mask.expr, false);
    n.mask.align = MaskAlign::bottom_right;  // meaningless for an expression: one key for both
  }
  canonical(n.score_mod, true);
  return n;
}

double AttentionSpec::effective_scale() const {
  if (softmax_scale) return *softmax_scale;
  return 1.0 / std::sqrt(static_cast<double>(head_dim));
}

int AttentionSpec::gqa_group() const {
  const AttentionSpec n = normalized();
  // Not validated here: report 0 instead of dividing by zero on a broken spec.
  return n.num_heads_kv > 0 ? n.num_heads_q / n.num_heads_kv : 0;
}

// Equality of meaning: a spec that leaves head_dim_v / num_heads_kv at 0 ("same as")
// equals one that spells the value out, exactly as their canonical JSON (and hash) agree.
// softmax_scale stays distinct when unset vs set, even to the default value.
bool AttentionSpec::operator==(const AttentionSpec& o) const {
  const AttentionSpec a = normalized();
  const AttentionSpec b = o.normalized();
  return a.dtype == b.dtype && a.head_dim == b.head_dim && a.head_dim_v == b.head_dim_v &&
         a.num_heads_q == b.num_heads_q && a.num_heads_kv == b.num_heads_kv && a.mask == b.mask &&
         a.softmax_scale == b.softmax_scale && a.return_lse == b.return_lse &&
         a.dropout_p == b.dropout_p && a.score_mod == b.score_mod && a.captures == b.captures &&
         a.tile == b.tile;
}

uint64_t spec_hash(const AttentionSpec& spec) {
  // FNV-1a over the canonical JSON: depends only on the text, so it is the same on
  // every platform, compiler and run.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : spec_to_json(spec)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

AttentionSpec without_tile(const AttentionSpec& spec) {
  AttentionSpec s = spec;
  s.tile.reset();
  return s;
}

const char* to_string(DType t) {
  switch (t) {
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
  }
  return "unknown";
}

const char* to_string(MaskKind k) {
  switch (k) {
    case MaskKind::none: return "none";
    case MaskKind::causal: return "causal";
    case MaskKind::sliding_window: return "sliding_window";
    case MaskKind::custom: return "custom";
  }
  return "unknown";
}

const char* to_string(MaskAlign a) {
  switch (a) {
    case MaskAlign::top_left: return "top_left";
    case MaskAlign::bottom_right: return "bottom_right";
  }
  return "unknown";
}

const char* to_string(MmaKind m) {
  switch (m) {
    case MmaKind::mma_sync: return "mma_sync";
    case MmaKind::wgmma: return "wgmma";
  }
  return "unknown";
}

const char* to_string(PipelineKind p) {
  switch (p) {
    case PipelineKind::cp_async: return "cp_async";
    case PipelineKind::tma_ws: return "tma_ws";
  }
  return "unknown";
}

int dtype_size(DType) { return 2; }  // both supported element types are 16-bit

}  // namespace flashjit
