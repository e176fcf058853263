// Hoisting for the element loops (compiler/expr/factor.cpp): scopes, the hoisted terms, the
// explicit and split conversions (bit for bit the same values, in the domain where they are
// claimed exact), and the factored CUDA text the kernels include.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/expr.h"
#include "host_tensors.h"
#include "random_expr.h"

using namespace flashjit::expr;
using flashjit::testing::random_mask_expr;
using flashjit::testing::random_score_expr;
using flashjit::testing::random_tensors;

namespace {

Context ctx(bool score, std::vector<CaptureDecl> caps = {}) {
  Context c;
  c.allow_score = score;
  c.captures = std::move(caps);
  return c;
}

std::vector<CaptureDecl> test_caps() {
  return {{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f32, 2}, {"slopes", CaptureDType::f32, 1}};
}

// The subtree of node k as an expression of its own (nodes are in post-order).
Expr subtree(const Expr& e, int k) {
  Expr p;
  p.nodes.assign(e.nodes.begin(), e.nodes.begin() + k + 1);
  return p;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Same value: equal bits, or both NaN (a NaN's payload is not part of the semantics).
bool same(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Type::boolean: return a.b == b.b;
    case Type::integer: return a.i == b.i;
    case Type::floating: return bits(a.f) == bits(b.f) || (std::isnan(a.f) && std::isnan(b.f));
  }
  return false;
}

std::vector<std::string> hoisted_text(const Expr& e, Scope scope, const std::vector<CaptureDecl>& caps) {
  std::vector<std::string> out;
  for (const Hoisted& h : hoisted_terms(e))
    if (h.scope == scope) out.push_back(print(subtree(e, h.node), caps));
  return out;
}

}  // namespace

TEST_CASE("factor: the hoisted terms of the built-in shapes", "[expr][factor]") {
  const std::vector<CaptureDecl> caps = test_caps();
  {
    const Expr e = parse("(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", ctx(false, caps));
    CHECK(hoisted_text(e, Scope::row, caps) == std::vector<std::string>{"doc[q_idx]"});
    CHECK(hoisted_text(e, Scope::col, caps) == std::vector<std::string>{"doc[kv_idx]"});
    const FactoredCuda f = emit_factored(e, {CaptureDType::i32, CaptureDType::f32, CaptureDType::f32});
    CHECK(f.row_fields == std::vector<std::string>{"int t0"});
    CHECK(f.row_values == std::vector<std::string>{"fj_read_i32(params.caps[0], q_idx)"});
    CHECK(f.col_values == std::vector<std::string>{"fj_read_i32(params.caps[0], kv_idx)"});
    CHECK(f.elem == "fj_and((r.t0 == c.t0), (q_idx >= kv_idx))");
    CHECK_FALSE(f.elem_reads);
  }
  {  // causal: nothing to hoist; a row-only mask is one row term
    const Expr causal = parse("q_idx >= kv_idx", ctx(false));
    CHECK(hoisted_terms(causal).empty());
    CHECK(emit_factored(causal, {}).elem == "(q_idx >= kv_idx)");
    const Expr rows = parse("q_idx < 100", ctx(false));
    CHECK(emit_factored(rows, {}).elem == "r.t0");
  }
  {  // ALiBi: the slope (same for the whole CTA) is a row term, the index difference is not
    const Expr e = explicit_conversions(parse("score + slopes[h] * float(kv_idx - q_idx)", ctx(true, caps)));
    CHECK(hoisted_text(e, Scope::row, caps) == std::vector<std::string>{"slopes[h]"});
    CHECK(hoisted_text(e, Scope::col, caps).empty());
    const std::optional<Expr> narrow = split_index_conversions(e);
    REQUIRE(narrow);
    CHECK(hoisted_text(*narrow, Scope::row, caps) == std::vector<std::string>{"slopes[h]", "float(q_idx)"});
    CHECK(hoisted_text(*narrow, Scope::col, caps) == std::vector<std::string>{"float(kv_idx)"});
    const FactoredCuda f = emit_factored(*narrow, {CaptureDType::i32, CaptureDType::f32, CaptureDType::f32}, FloatMath::fast);
    CHECK(f.elem == "(score + (r.t0 * (c.t0 - r.t1)))");
  }
  {  // a read indexed by both the row and the key stays in the element
    const Expr e = parse("score + bias[q_idx, kv_idx]", ctx(true, caps));
    CHECK(emit_factored(e, {CaptureDType::i32, CaptureDType::f32, CaptureDType::f32}).elem_reads);
    const Expr m = parse("where(doc[q_idx] > 0, bias[q_idx, kv_idx] > 0.0, kv_idx < 3)", ctx(false, caps));
    const FactoredCuda f = emit_factored(m, {CaptureDType::i32, CaptureDType::f32, CaptureDType::f32});
    CHECK(f.elem_reads);
    CHECK(f.elem.find("fj_sel<bool>(r.t0") == 0);
  }
}

TEST_CASE("factor: split conversions only where they are exact", "[expr][factor]") {
  const std::vector<CaptureDecl> caps = test_caps();
  auto splits = [&](const std::string& text) {
    return split_index_conversions(explicit_conversions(parse(text, ctx(true, caps)))).has_value();
  };
  CHECK(splits("score + float(kv_idx - q_idx)"));
  CHECK(splits("score + (kv_idx - q_idx)"));  // the implicit promotion too
  CHECK(splits("score - 0.1 * float(q_idx - kv_idx + 7)"));
  CHECK(splits("score * float(-kv_idx + q_idx - 3 + 2)"));
  CHECK_FALSE(splits("score + float(kv_idx)"));                       // per column already
  CHECK_FALSE(splits("score + float(doc[q_idx] - kv_idx)"));          // a value, not an index
  CHECK_FALSE(splits("score + float(2 * q_idx - kv_idx)"));           // not a plain sum
  CHECK_FALSE(splits("score + float(kv_idx - q_idx + 4194305)"));     // literal past 2^22
  CHECK_FALSE(splits("score + float(kv_idx - q_idx + 1 - 2 + 3)"));   // five terms
  // Why the kernels check the lengths: past 2^24 the split form rounds differently.
  const Expr e = explicit_conversions(parse("score + float(kv_idx - q_idx)", ctx(true)));
  const Expr narrow = *split_index_conversions(e);
  Env env;
  env.q_idx = (1 << 24) + 1, env.kv_idx = (1 << 24) + 4;
  CHECK(eval_score(e, env) == 3.0f);
  CHECK(eval_score(narrow, env) != 3.0f);
}

TEST_CASE("factor: explicit and split conversions keep every value, on random expressions", "[expr][factor]") {
  std::mt19937_64 rng(515);
  const std::vector<CaptureDecl> caps = test_caps();
  const int size = 8;
  const flashjit::testing::HostTensors data = random_tensors(rng, caps, size);
  int split_count = 0, hoisted_rows = 0, hoisted_cols = 0, checked = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const bool score = iter % 2 == 0;
    std::string text = score ? random_score_expr(rng, caps, size, 1 + iter % 5) : random_mask_expr(rng, caps, size, 1 + iter % 5);
    if (score && iter % 8 == 0) text = "score + 0.25 * float(kv_idx - q_idx + " + std::to_string(iter % 5) + ") + (" + text + ")";
    INFO(text);
    const Expr e = parse(text, ctx(score, caps));
    const Expr x = explicit_conversions(e);
    const std::optional<Expr> narrow = score ? split_index_conversions(x) : std::nullopt;
    split_count += narrow.has_value();
    // The indices stay inside the tensors (the generator clamps reads into 0 .. size-1 only
    // where they are read, so any index value is fine) and below 2^22 for the split form.
    for (int p = 0; p < 24; ++p) {
      Env env;
      env.captures = &data.caps;
      env.b = static_cast<int>(rng() % 3), env.h = static_cast<int>(rng() % 4);
      const bool large = p % 3 == 0;
      env.q_idx = static_cast<int>(large ? (1 << 22) - static_cast<int>(rng() % 64) : static_cast<int>(rng() % 300));
      env.kv_idx = static_cast<int>(large ? (1 << 22) - static_cast<int>(rng() % 64) : static_cast<int>(rng() % 300));
      env.seqlen_q = 1 << 22, env.seqlen_k = 1 << 22;
      env.score = static_cast<float>(static_cast<double>(rng() % 4001) / 500.0 - 4.0);
      const Value v = evaluate(e, env);
      CHECK(same(v, evaluate(x, env)));
      if (narrow) CHECK(same(v, evaluate(*narrow, env)));
      ++checked;
    }
    // Every hoisted term is the same for every key (row terms) or every row (column terms).
    for (const Expr* f : {&x, narrow ? &*narrow : nullptr}) {
      if (!f) continue;
      for (const Hoisted& h : hoisted_terms(*f)) {
        (h.scope == Scope::row ? hoisted_rows : hoisted_cols)++;
        const Expr t = subtree(*f, h.node);
        Env env;
        env.captures = &data.caps;
        env.b = 1, env.h = 2, env.q_idx = 5, env.kv_idx = 6, env.seqlen_q = 300, env.seqlen_k = 300, env.score = 0.5f;
        const Value first = evaluate(t, env);
        for (int k = 0; k < 8; ++k) {
          (h.scope == Scope::row ? env.kv_idx : env.q_idx) = static_cast<int>(rng() % 300);
          env.score = static_cast<float>(rng() % 100) - 50.0f;
          CHECK(same(first, evaluate(t, env)));
        }
      }
    }
  }
  INFO("split " << split_count << ", hoisted row terms " << hoisted_rows << ", column terms " << hoisted_cols);
  CHECK(checked == 400 * 24);
  CHECK(split_count >= 25);
  CHECK(hoisted_rows > 100);
  CHECK(hoisted_cols > 100);
}
