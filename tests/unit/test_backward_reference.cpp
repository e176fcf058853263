// The pieces of the backward pass that need no GPU (issue 10): the symbolic derivative of a
// score_mod against closed forms and finite differences, and the float64 backward reference
// against finite differences of the forward reference on tiny shapes (GQA, masks with fully
// masked rows, score_mods, head_dim != head_dim_v).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/cpu_eval.h"
#include "flashjit/expr.h"
#include "random_expr.h"

using flashjit::AttentionSpec;
using flashjit::MaskKind;
namespace expr = flashjit::expr;
namespace eval = flashjit::eval;

namespace {

float eval_at(const expr::Expr& e, float score, const std::vector<expr::HostCapture>* caps = nullptr, int h = 0,
              int q = 3, int kv = 5) {
  expr::Env env;
  env.score = score, env.h = h, env.q_idx = q, env.kv_idx = kv, env.seqlen_q = 8, env.seqlen_k = 8;
  env.captures = caps;
  return expr::eval_score(e, env);
}

// Central difference of e at s, in double from float evaluations.
double central(const expr::Expr& e, float s, double eps, const std::vector<expr::HostCapture>* caps = nullptr) {
  const float hi = static_cast<float>(s + eps), lo = static_cast<float>(s - eps);
  return (static_cast<double>(eval_at(e, hi, caps)) - eval_at(e, lo, caps)) / (static_cast<double>(hi) - lo);
}

eval::HostTensor random_tensor(std::mt19937& rng, int64_t b, int64_t h, int64_t s, int64_t d) {
  std::normal_distribution<double> nd(0.0, 1.0);
  eval::HostTensor t(b, h, s, d);
  for (double& x : t.data) x = nd(rng);
  return t;
}

double loss(const eval::Result& r, const eval::HostTensor& g) {
  double l = 0.0;
  for (size_t i = 0; i < g.data.size(); ++i) l += r.o.data[i] * g.data[i];
  return l;
}

}  // namespace

TEST_CASE("backward: score_mod derivatives match closed forms", "[backward][expr]") {
  const std::vector<expr::CaptureDecl> caps = {{"slopes", expr::CaptureDType::f32, 1}};
  std::vector<float> slopes = {0.5f, 0.25f};
  const std::vector<expr::HostCapture> host = {{slopes.data(), expr::CaptureDType::f32, 1, {2, 0, 0, 0}, {1, 0, 0, 0}}};
  struct Case {
    std::string f;
    double (*df)(double);
  };
  const std::vector<Case> cases = {
      {"score", [](double) { return 1.0; }},
      {"-score", [](double) { return -1.0; }},
      {"30.0 * tanh(score / 30.0)", [](double s) { const double t = std::tanh(s / 30.0); return 1.0 - t * t; }},
      {"score + slopes[h] * float(kv_idx - q_idx)", [](double) { return 1.0; }},
      {"score * score", [](double s) { return 2.0 * s; }},
      {"exp(score)", [](double s) { return std::exp(s); }},
      {"log(abs(score) + 1.0)", [](double s) { return (s > 0 ? 1.0 : -1.0) / (std::abs(s) + 1.0); }},
      {"sigmoid(score)", [](double s) { const double g = 1.0 / (1.0 + std::exp(-s)); return g * (1.0 - g); }},
      {"sqrt(score * score + 1.0)", [](double s) { return s / std::sqrt(s * s + 1.0); }},
      {"where(score > 0.0, score, 0.1 * score)", [](double s) { return s > 0 ? 1.0 : 0.1; }},
      {"min(score, 5.0) + max(score, -5.0)", [](double s) { return (s <= 5 ? 1.0 : 0.0) + (s >= -5 ? 1.0 : 0.0); }},
      {"score / (1.0 + abs(score))", [](double s) { const double a = 1.0 + std::abs(s); return 1.0 / (a * a); }},
      {"score % 3.0", [](double) { return 1.0; }},
      {"7.0 % score", [](double s) { return -std::floor(7.0 / s); }},
      {"float(int(score)) + float(kv_idx)", [](double) { return 0.0; }},
      {"2.0 / score", [](double s) { return -2.0 / (s * s); }},
  };
  for (const Case& c : cases) {
    const expr::Expr e = expr::parse(c.f, expr::Context{true, caps});
    const expr::Expr d = expr::score_derivative(e, caps);
    INFO(c.f << "  ->  " << expr::print(d, caps));
    CHECK(d.type() == expr::Type::floating);
    for (double s : {-7.3, -2.2, -0.6, 0.45, 1.7, 4.1, 6.9}) {
      const double got = eval_at(d, static_cast<float>(s), &host);
      INFO("score " << s);
      CHECK(std::abs(got - c.df(static_cast<float>(s))) <= 1e-5 * (1.0 + std::abs(c.df(s))));
    }
  }
  // What does not depend on score has derivative 0 and says so.
  CHECK(expr::score_derivative_text(expr::parse("float(q_idx) * 0.5", expr::Context{true, caps}), caps) == "0.0");
}

TEST_CASE("backward: derivatives of random score_mods agree with finite differences", "[backward][expr]") {
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}, {"bias", expr::CaptureDType::f32, 2}};
  std::vector<int32_t> doc = {0, 0, 1, 1, 1, 2, 3, 3};
  std::vector<float> bias(64);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  const std::vector<expr::HostCapture> host = {{doc.data(), expr::CaptureDType::i32, 1, {8, 0, 0, 0}, {1, 0, 0, 0}},
                                               {bias.data(), expr::CaptureDType::f32, 2, {8, 8, 0, 0}, {8, 1, 0, 0}}};
  std::mt19937_64 gen(31);
  int compared = 0, exprs = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string text = flashjit::testing::random_score_expr(gen, caps, 8, 4);
    const expr::Expr e = expr::parse(text, expr::Context{true, caps});
    expr::Expr d;
    try {
      d = expr::score_derivative(e, caps);
    } catch (const expr::ExprError& err) {  // only for a derivative past the size limits
      CHECK(std::string(err.what()).find("too") != std::string::npos);
      continue;
    }
    ++exprs;
    for (float s : {-3.1f, -0.7f, 0.3f, 1.9f, 5.3f}) {
      const double f1 = central(e, s, 1e-2, &host), f2 = central(e, s, 5e-3, &host);
      const double got = eval_at(d, s, &host);
      if (!std::isfinite(f1) || !std::isfinite(f2) || !std::isfinite(got)) continue;
      // Differences of float values resolve derivatives only where the value is small
      // (score - 1e30 is -1e30 whatever the score: its float differences are 0).
      if (std::abs(eval_at(e, s, &host)) > 1e3) continue;
      if (std::abs(f1 - f2) > 1e-3 * (1.0 + std::abs(f2))) continue;  // not smooth here (a jump, a kink)
      INFO(text << "  ->  " << expr::print(d, caps) << "  at " << s);
      CHECK(std::abs(got - f2) <= 1e-2 * (1.0 + std::abs(f2)));
      ++compared;
    }
  }
  CHECK(exprs > 150);
  CHECK(compared > 500);
}

TEST_CASE("backward: the float64 backward reference agrees with finite differences", "[backward][eval]") {
  const std::vector<expr::CaptureDecl> caps = {{"slopes", expr::CaptureDType::f32, 1}};
  std::vector<float> slopes = {0.5f, -0.25f};
  const std::vector<expr::HostCapture> host = {{slopes.data(), expr::CaptureDType::f32, 1, {2, 0, 0, 0}, {1, 0, 0, 0}}};
  struct Variant {
    MaskKind kind;
    std::string mask, score;
  };
  const std::vector<Variant> variants = {
      {MaskKind::none, "", ""},
      {MaskKind::causal, "", ""},
      {MaskKind::custom, "(q_idx != 2) & (kv_idx <= q_idx + 2)", ""},  // row 2 sees nothing
      {MaskKind::causal, "", "5.0 * tanh(score / 5.0)"},
      {MaskKind::none, "", "score + slopes[h] * float(kv_idx - q_idx)"},
      {MaskKind::custom, "kv_idx % 3 != 1", "where(score > 0.0, score, 0.2 * score) + 0.1 * sigmoid(score)"},
  };
  std::mt19937 rng(17);
  for (const Variant& var : variants) {
    AttentionSpec spec;
    spec.head_dim = 4;
    spec.head_dim_v = 3;
    spec.num_heads_q = 2;
    spec.num_heads_kv = 1;
    spec.mask.kind = var.kind;
    spec.mask.expr = var.mask;
    spec.score_mod = var.score;
    spec.captures = caps;
    const int64_t sq = 5, sk = 7;
    eval::HostTensor q = random_tensor(rng, 1, 2, sq, 4), k = random_tensor(rng, 1, 1, sk, 4),
                     v = random_tensor(rng, 1, 1, sk, 3), dout = random_tensor(rng, 1, 2, sq, 3);
    const eval::Grads g = eval::reference_attention_backward(spec, q, k, v, dout, host);
    // With a score_mod the forward evaluates it in float: a larger step, a looser bound.
    const double eps = var.score.empty() ? 1e-5 : 2e-3, tol = var.score.empty() ? 1e-7 : 3e-3;
    double scale_of_grads = 1e-12;
    for (const auto* t : {&g.dq, &g.dk, &g.dv})
      for (double x : t->data) scale_of_grads = std::max(scale_of_grads, std::abs(x));
    auto check_fd = [&](eval::HostTensor& x, const eval::HostTensor& grad, const char* name) {
      for (size_t i = 0; i < x.data.size(); ++i) {
        const double keep = x.data[i];
        x.data[i] = keep + eps;
        const double lp = loss(eval::reference_attention(spec, q, k, v, host), dout);
        x.data[i] = keep - eps;
        const double lm = loss(eval::reference_attention(spec, q, k, v, host), dout);
        x.data[i] = keep;
        const double fd = (lp - lm) / (2 * eps);
        INFO(var.mask << " | " << var.score << ": d" << name << "[" << i << "] analytic " << grad.data[i] << " fd " << fd);
        CHECK(std::abs(grad.data[i] - fd) <= tol * scale_of_grads + 1e-9);
      }
    };
    check_fd(q, g.dq, "q");
    check_fd(k, g.dk, "k");
    check_fd(v, g.dv, "v");
    if (var.mask == "(q_idx != 2) & (kv_idx <= q_idx + 2)")
      for (int h = 0; h < 2; ++h)
        for (int t = 0; t < 4; ++t) CHECK(g.dq.at(0, h, 2, t) == 0.0);  // a fully masked row: zero, not NaN
  }
}

TEST_CASE("backward: the tiled backward matches the reference, classified or not", "[backward][eval]") {
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}};
  std::vector<int32_t> doc(320);
  for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<int32_t>(i / 23);
  const std::vector<expr::HostCapture> host = {{doc.data(), expr::CaptureDType::i32, 1, {320, 0, 0, 0}, {1, 0, 0, 0}}};
  struct Variant {
    MaskKind kind;
    flashjit::MaskAlign align;
    int left, right;
    std::string mask, score;
  };
  using A = flashjit::MaskAlign;
  const std::vector<Variant> variants = {
      {MaskKind::none, A::bottom_right, -1, -1, "", ""},
      {MaskKind::causal, A::bottom_right, -1, -1, "", ""},
      {MaskKind::causal, A::top_left, -1, -1, "", ""},
      {MaskKind::sliding_window, A::bottom_right, 9, 3, "", ""},
      {MaskKind::custom, A::bottom_right, -1, -1, "(kv_idx <= q_idx) | (kv_idx < 5)", ""},
      {MaskKind::custom, A::bottom_right, -1, -1, "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx) & (q_idx != 4)", ""},
      {MaskKind::causal, A::bottom_right, -1, -1, "", "8.0 * tanh(score / 8.0)"},
  };
  const std::vector<std::pair<int64_t, int64_t>> lens = {{1, 1}, {17, 33}, {33, 17}, {70, 45}, {200, 300}, {300, 130}};
  // Small tiles, and the kernels' own: 64 x 128 (wgmma, D128; mma.sync, D64), 128 x 128 (wgmma,
  // D64), 64 x 64 (mma.sync, D128; one warpgroup), 128 x 64.
  const std::vector<std::pair<int, int>> tiles = {{16, 16}, {32, 16}, {16, 32}, {64, 128}, {128, 128}, {64, 64}, {128, 64}};
  std::mt19937 rng(23);
  int64_t skipped = 0, full = 0, partial = 0;
  int n = 0;
  for (const Variant& var : variants)
    for (size_t li = 0; li < lens.size(); ++li) {
      const auto [sq, sk] = lens[li];
      const auto [bm, bn] = tiles[(n++) % tiles.size()];
      AttentionSpec spec;
      spec.dtype = li % 2 ? flashjit::DType::f16 : flashjit::DType::bf16;
      spec.head_dim = 8;
      spec.head_dim_v = li % 2 ? 8 : 4;
      spec.num_heads_q = 3;
      spec.num_heads_kv = 1;
      spec.mask.kind = var.kind;
      spec.mask.align = var.align;
      spec.mask.left = var.left, spec.mask.right = var.right;
      spec.mask.expr = var.mask;
      spec.score_mod = var.score;
      spec.captures = var.mask.find("doc") != std::string::npos ? caps : std::vector<expr::CaptureDecl>{};
      spec.tile = flashjit::TileConfig{bm, bn, 1, 2, flashjit::MmaKind::mma_sync};
      auto rounded = [&](int64_t h, int64_t s, int64_t d) {
        eval::HostTensor t = random_tensor(rng, 2, h, s, d);
        for (double& x : t.data) x = eval::round_to(spec.dtype, x);
        return t;
      };
      const eval::HostTensor q = rounded(3, sq, 8), k = rounded(1, sk, 8), v = rounded(1, sk, spec.head_dim_v),
                             dout = rounded(3, sq, spec.head_dim_v);
      const std::vector<expr::HostCapture>& hc = spec.captures.empty() ? std::vector<expr::HostCapture>{} : host;
      eval::Result fwd = eval::reference_attention(spec, q, k, v, hc);
      for (double& x : fwd.o.data) x = eval::round_to(spec.dtype, x);  // the forward stores O in the dtype
      const eval::TiledGrads got = eval::tiled_backward(spec, q, k, v, fwd.o, fwd.lse, dout, hc, true);
      const eval::TiledGrads all = eval::tiled_backward(spec, q, k, v, fwd.o, fwd.lse, dout, hc, false);
      const eval::Grads ref = eval::reference_attention_backward(spec, q, k, v, dout, hc);
      INFO(flashjit::spec_to_json(spec) << " sq=" << sq << " sk=" << sk);
      for (const auto& [a, b] : {std::pair{&got.grads.dq, &all.grads.dq}, {&got.grads.dk, &all.grads.dk},
                                 {&got.grads.dv, &all.grads.dv}})
        CHECK(std::memcmp(a->data.data(), b->data.data(), a->data.size() * sizeof(double)) == 0);
      // P and dS in 16 bits: a relative error of a few 1e-3 (fp16) to 1e-2 (bf16).
      const double tol = spec.dtype == flashjit::DType::bf16 ? 3e-2 : 6e-3;
      for (const auto& [a, b] : {std::pair{&got.grads.dq, &ref.dq}, {&got.grads.dk, &ref.dk}, {&got.grads.dv, &ref.dv}}) {
        double err2 = 0, ref2 = 0;
        for (size_t i = 0; i < a->data.size(); ++i) {
          REQUIRE(std::isfinite(a->data[i]));
          err2 += (a->data[i] - b->data[i]) * (a->data[i] - b->data[i]);
          ref2 += b->data[i] * b->data[i];
        }
        CHECK(std::sqrt(err2) <= tol * std::sqrt(ref2) + 1e-12);
      }
      skipped += got.tiles_skipped, full += got.tiles_full, partial += got.tiles_partial;
    }
  CHECK(skipped > 0);
  CHECK(full > 0);
  CHECK(partial > 0);
}

TEST_CASE("backward: gradients into captured float tensors (a learnable bias) agree with finite differences",
          "[backward][eval]") {
  const std::vector<expr::CaptureDecl> caps = {{"slopes", expr::CaptureDType::f32, 1}, {"table", expr::CaptureDType::f32, 2},
                                               {"doc", expr::CaptureDType::i32, 1}};
  // Which reads get a gradient: float reads on a differentiable path, each read separately.
  {
    const expr::Expr e = expr::parse("score * slopes[h] + table[h, 3] * table[h, 3] + float(doc[q_idx])",
                                     expr::Context{true, caps});
    const std::vector<expr::ReadGradient> g = expr::read_gradients(e, caps);
    REQUIRE(g.size() == 3);
    CHECK(g[0].capture == 0);
    CHECK(expr::print(g[0].derivative, caps) == "score");
    CHECK(g[1].capture == 1);
    CHECK(g[1].index.size() == 2);
    CHECK(expr::print(g[1].derivative, caps) == "table[h, 3]");
    CHECK(expr::read_gradients(expr::parse("where(slopes[h] > 0.0, score, -score)", expr::Context{true, caps}), caps).empty());
  }
  std::vector<float> slopes = {0.7f, -0.4f};
  std::vector<float> table(2 * 16);
  std::vector<int32_t> doc = {0, 0, 0, 1, 1, 1, 1, 2};
  std::mt19937 rng(5);
  std::normal_distribution<float> nf(0.f, 0.5f);
  for (float& x : table) x = nf(rng);
  std::vector<expr::HostCapture> host = {{slopes.data(), expr::CaptureDType::f32, 1, {2, 0, 0, 0}, {1, 0, 0, 0}},
                                         {table.data(), expr::CaptureDType::f32, 2, {2, 16, 0, 0}, {16, 1, 0, 0}},
                                         {doc.data(), expr::CaptureDType::i32, 1, {8, 0, 0, 0}, {1, 0, 0, 0}}};
  AttentionSpec spec;
  spec.head_dim = 4;
  spec.num_heads_q = 2;
  spec.num_heads_kv = 1;
  spec.mask.kind = MaskKind::custom;
  spec.mask.expr = "doc[q_idx] == doc[kv_idx]";
  spec.score_mod = "score * (1.0 + 0.1 * slopes[h]) + table[h, min(max(q_idx - kv_idx + 8, 0), 15)]";
  spec.captures = caps;
  const eval::HostTensor q = random_tensor(rng, 1, 2, 8, 4), k = random_tensor(rng, 1, 1, 8, 4),
                         v = random_tensor(rng, 1, 1, 8, 4), dout = random_tensor(rng, 1, 2, 8, 4);
  const eval::Grads g = eval::reference_attention_backward(spec, q, k, v, dout, host);
  REQUIRE(g.dcaptures.size() == 3);
  CHECK(g.dcaptures[2].empty());  // int tensors have no gradient
  double biggest = 1e-12;
  for (size_t c = 0; c < 2; ++c)
    for (double x : g.dcaptures[c]) biggest = std::max(biggest, std::abs(x));
  int nonzero = 0;
  for (auto [c, data] : {std::pair<size_t, float*>{0, slopes.data()}, {1, table.data()}}) {
    for (size_t i = 0; i < g.dcaptures[c].size(); ++i) {
      const float keep = data[i];
      data[i] = keep + 1e-2f;
      const double up = data[i];
      const double lp = loss(eval::reference_attention(spec, q, k, v, host), dout);
      data[i] = keep - 1e-2f;
      const double down = data[i];
      const double lm = loss(eval::reference_attention(spec, q, k, v, host), dout);
      data[i] = keep;
      const double fd = (lp - lm) / (up - down);
      INFO("capture " << c << " element " << i << ": analytic " << g.dcaptures[c][i] << " fd " << fd);
      CHECK(std::abs(g.dcaptures[c][i] - fd) <= 3e-3 * biggest);
      nonzero += g.dcaptures[c][i] != 0.0;
    }
  }
  CHECK(nonzero > 10);
}

// o_for_delta: the backward of a stored (rounded) O. With the exact O it changes nothing; with
// O + δ a per-head bias's gradient (zero exactly: softmax is shift-invariant) becomes
// -Σ_i rowsum(dO ∘ δ)_i, since dW = P ∘ (dP − D) and each row of P sums to 1.
TEST_CASE("backward reference: D from a given O", "[backward]") {
  const std::vector<expr::CaptureDecl> caps = {{"bias", expr::CaptureDType::f32, 1}};
  std::vector<float> bias = {0.3f, -0.2f, 0.1f};
  const std::vector<expr::HostCapture> host = {{bias.data(), expr::CaptureDType::f32, 1, {3, 0, 0, 0}, {1, 0, 0, 0}}};
  AttentionSpec spec;
  spec.head_dim = 8;
  spec.num_heads_q = 3;
  spec.num_heads_kv = 1;
  spec.mask.kind = MaskKind::causal;
  spec.score_mod = "score + bias[h]";
  spec.captures = caps;
  std::mt19937 rng(9);
  const eval::HostTensor q = random_tensor(rng, 2, 3, 7, 8), k = random_tensor(rng, 2, 1, 9, 8),
                         v = random_tensor(rng, 2, 1, 9, 8), dout = random_tensor(rng, 2, 3, 7, 8);
  const eval::Grads exact = eval::reference_attention_backward(spec, q, k, v, dout, host);
  const eval::Result fwd = eval::reference_attention(spec, q, k, v, host);
  const eval::Grads same = eval::reference_attention_backward(spec, q, k, v, dout, host, &fwd.o);
  for (auto [a, b] : {std::pair{&exact.dq, &same.dq}, {&exact.dk, &same.dk}, {&exact.dv, &same.dv}})
    for (size_t i = 0; i < a->data.size(); ++i) REQUIRE(std::abs(a->data[i] - b->data[i]) < 1e-12);
  for (double g : exact.dcaptures[0]) CHECK(std::abs(g) < 1e-12);

  eval::HostTensor o = fwd.o;
  const eval::HostTensor delta = random_tensor(rng, 2, 3, 7, 8);
  std::vector<double> want(3, 0.0);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 7; ++i)
        for (int64_t t = 0; t < 8; ++t) {
          o.at(b, h, i, t) += 1e-3 * delta.at(b, h, i, t);
          want[static_cast<size_t>(h)] -= dout.at(b, h, i, t) * 1e-3 * delta.at(b, h, i, t);
        }
  const eval::Grads moved = eval::reference_attention_backward(spec, q, k, v, dout, host, &o);
  for (size_t h = 0; h < 3; ++h) {
    INFO("head " << h);
    CHECK(std::abs(moved.dcaptures[0][h] - want[h]) < 1e-12);
    CHECK(std::abs(want[h]) > 1e-4);
  }
}
