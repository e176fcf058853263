// libFuzzer harness: the mask / score expression language (compiler/expr/, docs/expressions.md).
//
// Input: the first byte selects the context, the rest is the expression text.
//   bit 0: 1 = score_mod (score is visible), 0 = mask
//   bits 1-2: how many of the captures doc (i32, rank 1) and bias (f32, rank 2) are declared
//             (0, 1, 2; 3 is 2). The seeds use the digits '0'..'5': '0' mask, '1' score,
//             '2' / '3' with doc, '4' / '5' with doc and bias.
// For any input it checks that
//   1. parse() either succeeds or throws ExprError with a position inside the text. Any
//      other exception escapes, std::terminate aborts and libFuzzer reports the input (as it
//      does for ASan/UBSan findings, hangs past -timeout and memory past -rss_limit_mb);
//   2. print() is canonical: the printed text parses, to the same nodes (all but the
//      source positions), and prints identically;
//   3. the interval analysis is sound on two small boxes: mask_over() of the expression and
//      of up to 8 bool sub-expressions agrees with every point where the evaluator decides
//      it (never: false everywhere, always: true everywhere), and int_range() of up to 8 int
//      sub-expressions holds every evaluated value;
//   4. check_capture_bounds() passing means no read is out of range (evaluate() then never
//      throws std::out_of_range on the box); ArgumentError is its only exception;
//   5. as_band(): when it recognises a band and may_wrap() is false, the band predicate
//      equals the evaluated mask at every point;
//   6. emit_value() and emit_interval() give balanced text without "--";
//   7. for a score_mod, score_derivative() and read_gradients() either succeed, with float
//      results whose evaluation on the first box reads nothing out of range when the
//      expression's own reads are in range, or throw ExprError (a derivative too long);
//   8. (run before 7) explicit_conversions() and split_index_conversions() evaluate like the
//      expression on a box, and emit_factored() / emit_factored_interval() give balanced text.
// Failed checks print what was wrong and __builtin_trap(), which libFuzzer reports as a crash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flashjit/error.h"
#include "flashjit/expr.h"

using namespace flashjit::expr;

namespace {

constexpr int kSize = 4;  // every dimension of every capture

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_expr: %s\n  %s\n", what, detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

const std::vector<CaptureDecl>& all_decls() {
  static const std::vector<CaptureDecl> d = {{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f32, 2}};
  return d;
}

struct Tensors {
  int32_t doc[kSize] = {0, 1, 1, 3};
  float bias[kSize * kSize];
  std::vector<HostCapture> caps;
  Tensors() {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const float values[kSize * kSize] = {0.f, -0.f, 1.f, -1.f, 0.5f, 1e30f, -1e30f, inf, -inf, nan, 3.f, 2.f, -2.5f,
                                         1e-40f, 65504.f, 7.f};
    std::memcpy(bias, values, sizeof bias);
    HostCapture d;
    d.data = doc, d.dtype = CaptureDType::i32, d.rank = 1, d.sizes[0] = kSize, d.strides[0] = 1;
    HostCapture b;
    b.data = bias, b.dtype = CaptureDType::f32, b.rank = 2;
    b.sizes[0] = b.sizes[1] = kSize, b.strides[0] = 1, b.strides[1] = kSize;  // column-major
    caps = {d, b};
  }
};

uint64_t bits_of(double d) {
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

bool same_nodes(const Expr& a, const Expr& b) {
  if (a.nodes.size() != b.nodes.size()) return false;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node &x = a.nodes[i], &y = b.nodes[i];
    if (x.kind != y.kind || x.type != y.type || x.ival != y.ival || bits_of(x.fval) != bits_of(y.fval) ||
        x.var != y.var || x.capture != y.capture || x.args != y.args)
      return false;
  }
  return true;
}

Box make_box(int64_t q_lo, int64_t kv_lo, int64_t seqlen_q, int64_t seqlen_k) {
  Box b;
  b.b_lo = 0, b.b_hi = 1, b.h_lo = 0, b.h_hi = 1;
  b.q_lo = q_lo, b.q_hi = q_lo + 3, b.kv_lo = kv_lo, b.kv_hi = kv_lo + 3;
  b.seqlen_q = seqlen_q, b.seqlen_k = seqlen_k;
  return b;
}

std::string where(const Box& b, const Env& env) {
  return "q " + std::to_string(b.q_lo) + ".." + std::to_string(b.q_hi) + " kv " + std::to_string(b.kv_lo) + ".." +
         std::to_string(b.kv_hi) + " seqlens " + std::to_string(b.seqlen_q) + ", " + std::to_string(b.seqlen_k) +
         " at b " + std::to_string(env.b) + " h " + std::to_string(env.h) + " q " + std::to_string(env.q_idx) +
         " kv " + std::to_string(env.kv_idx);
}

void check_emitted(const std::string& code, const std::string& text) {
  int depth = 0;
  for (char c : code) {
    depth += c == '(' ? 1 : c == ')' ? -1 : 0;
    if (depth < 0) fail("emitted code has an unbalanced ')'", text + "\n  " + code);
  }
  if (depth != 0) fail("emitted code has an unbalanced '('", text + "\n  " + code);
  if (code.find("--") != std::string::npos) fail("emitted code has \"--\" (a decrement)", text + "\n  " + code);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  Context ctx;
  ctx.allow_score = (sel & 1) != 0;
  const size_t ncaps = std::min<size_t>(2, (sel >> 1) & 3);
  ctx.captures.assign(all_decls().begin(), all_decls().begin() + static_cast<long>(ncaps));
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

  // 1. parse
  Expr e;
  try {
    e = parse(text, ctx);
  } catch (const ExprError& err) {
    if (err.pos() < 0 || static_cast<size_t>(err.pos()) > text.size())
      fail("ExprError position outside the text", std::to_string(err.pos()) + ": " + err.what());
    return 0;
  }
  if (e.nodes.empty() || e.nodes.size() > static_cast<size_t>(kMaxNodes)) fail("bad node count", text);
  for (size_t i = 0; i < e.nodes.size(); ++i)
    for (int a : e.nodes[i].args)
      if (a < 0 || static_cast<size_t>(a) >= i) fail("a node's argument is not before it", text);

  // 2. canonical text
  const std::string p1 = print(e, ctx.captures);
  Expr e2;
  try {
    e2 = parse(p1, ctx);
  } catch (const ExprError& err) {
    fail("the printed text does not parse", text + "\n  " + p1 + "\n  " + err.what());
  }
  const std::string p2 = print(e2, ctx.captures);
  if (p1 != p2) fail("print(parse(print(e))) != print(e)", p1 + "\n  " + p2);
  if (!same_nodes(e, e2)) fail("parse(print(e)) has other nodes than e", text + "\n  " + p1);

  // 3-5. interval analysis, bounds checks and bands against the evaluator on two boxes
  static const Tensors tensors;
  std::vector<int> bool_nodes, int_nodes;
  for (size_t k = 0; k + 1 < e.nodes.size(); ++k) {
    if (e.nodes[k].type == Type::boolean && bool_nodes.size() < 8) bool_nodes.push_back(static_cast<int>(k));
    if (e.nodes[k].type == Type::integer && int_nodes.size() < 8) int_nodes.push_back(static_cast<int>(k));
  }
  if (e.type() == Type::integer) int_nodes.push_back(static_cast<int>(e.nodes.size()) - 1);
  std::vector<Expr> bool_prefix, int_prefix;
  auto prefix = [&](int k) {
    Expr p;
    p.nodes.assign(e.nodes.begin(), e.nodes.begin() + k + 1);
    return p;
  };
  bool_prefix.push_back(e);  // the whole expression first (used when it is a bool)
  for (int k : bool_nodes) bool_prefix.push_back(prefix(k));
  for (int k : int_nodes) int_prefix.push_back(prefix(k));
  const std::optional<BandForm> band = as_band(e);

  const Box boxes[] = {make_box(0, 0, 4, 4), make_box(60, 0, 64, 4), make_box(0, 60, 5, 64)};
  for (const Box& box : boxes) {
    bool bounds_ok = true;
    try {
      check_capture_bounds(e, ctx.captures, tensors.caps, box, "expr");
    } catch (const flashjit::ArgumentError&) {
      bounds_ok = false;
    }
    (void)may_wrap(e, box);
    std::vector<Truth> truths;
    for (size_t i = 0; i < bool_prefix.size(); ++i)
      truths.push_back(i == 0 && e.type() != Type::boolean ? Truth::sometimes : mask_over(bool_prefix[i], box));
    std::vector<std::optional<IntRange>> ranges;
    for (int k : int_nodes) ranges.push_back(int_range(e, k, box));
    const bool check_band = band && e.type() == Type::boolean && !may_wrap(e, box);

    Env env;
    env.seqlen_q = static_cast<int>(box.seqlen_q), env.seqlen_k = static_cast<int>(box.seqlen_k);
    env.score = static_cast<float>(sel) - 100.f;
    env.captures = &tensors.caps;
    for (int64_t b = box.b_lo; b <= box.b_hi; ++b)
      for (int64_t h = box.h_lo; h <= box.h_hi; ++h)
        for (int64_t q = box.q_lo; q <= box.q_hi; ++q)
          for (int64_t kv = box.kv_lo; kv <= box.kv_hi; ++kv) {
            env.b = static_cast<int>(b), env.h = static_cast<int>(h);
            env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(kv);
            Value v;
            try {
              v = evaluate(e, env);
            } catch (const std::out_of_range& err) {
              if (bounds_ok) fail("check_capture_bounds passed but a read is out of range", text + "\n  " + where(box, env));
              continue;
            }
            for (size_t i = 0; i < bool_prefix.size(); ++i) {
              if (truths[i] == Truth::sometimes) continue;
              const bool t = i == 0 ? v.b : evaluate(bool_prefix[i], env).b;
              if (t != (truths[i] == Truth::always))
                fail("mask_over is unsound", print(bool_prefix[i], ctx.captures) + "\n  says " +
                                                 (truths[i] == Truth::always ? "always" : "never") + ", " +
                                                 where(box, env) + "\n  in " + text);
            }
            for (size_t i = 0; i < int_prefix.size(); ++i) {
              if (!ranges[i]) continue;
              const int32_t x = evaluate(int_prefix[i], env).i;
              if (x < ranges[i]->lo || x > ranges[i]->hi)
                fail("int_range is unsound", print(int_prefix[i], ctx.captures) + " = " + std::to_string(x) +
                                                 " outside " + std::to_string(ranges[i]->lo) + ".." +
                                                 std::to_string(ranges[i]->hi) + ", " + where(box, env) + "\n  in " + text);
            }
            if (check_band) {
              const int64_t d = kv - q - (band->bottom_right ? box.seqlen_k - box.seqlen_q : 0);
              const bool want = !band->empty && (!band->lo || d >= *band->lo) && (!band->hi || d <= *band->hi);
              if (want != v.b) fail("as_band disagrees with the evaluator", text + "\n  " + where(box, env));
            }
          }
  }

  // 6. CUDA text
  std::vector<CaptureDType> dtypes;
  for (const CaptureDecl& d : ctx.captures) dtypes.push_back(d.dtype);
  check_emitted(emit_value(e, dtypes), text);
  check_emitted(emit_interval(e), text);

  // 8. factoring for the element loops: the explicit and split conversions evaluate like e
  // (the box's indices are far below 2^22), and the factored CUDA is balanced text.
  const Expr explicit_e = explicit_conversions(e);
  const std::optional<Expr> narrow = split_index_conversions(explicit_e);
  for (const Expr* f : {&explicit_e, narrow ? &*narrow : nullptr}) {
    if (!f) continue;
    const FactoredCuda fc = emit_factored(*f, dtypes, ctx.allow_score ? FloatMath::fast : FloatMath::exact);
    check_emitted(fc.elem, text);
    for (const std::string& v : fc.row_values) check_emitted(v, text);
    for (const std::string& v : fc.col_values) check_emitted(v, text);
  }
  {
    const FactoredInterval fi = emit_factored_interval(e, dtypes);
    check_emitted(fi.tile, text);
    for (const std::string& v : fi.row_values) check_emitted(v, text);
  }
  {
    const Box& box = boxes[1];
    Env env;
    env.seqlen_q = static_cast<int>(box.seqlen_q), env.seqlen_k = static_cast<int>(box.seqlen_k);
    env.score = static_cast<float>(sel) - 100.f;
    env.captures = &tensors.caps;
    for (int64_t q = box.q_lo; q <= box.q_hi; ++q)
      for (int64_t kv = box.kv_lo; kv <= box.kv_hi; ++kv) {
        env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(kv);
        Value v;
        try {
          v = evaluate(e, env);
        } catch (const std::out_of_range&) {
          continue;  // check 4's business
        }
        for (const Expr* f : {&explicit_e, narrow ? &*narrow : nullptr}) {
          if (!f) continue;
          const Value w = evaluate(*f, env);
          const bool same = v.type == w.type && (v.type == Type::boolean   ? v.b == w.b
                                                 : v.type == Type::integer ? v.i == w.i
                                                                           : std::memcmp(&v.f, &w.f, 4) == 0 ||
                                                                                 (v.f != v.f && w.f != w.f));
          if (!same) fail("a factored conversion changes a value", text + "\n  " + print(*f, ctx.captures) + "\n  " + where(box, env));
        }
      }
  }

  // 7. derivatives (the backward pass)
  if (ctx.allow_score && e.type() != Type::boolean) {
    std::vector<Expr> derived;
    try {
      derived.push_back(score_derivative(e, ctx.captures));
      for (ReadGradient& g : read_gradients(e, ctx.captures)) {
        derived.push_back(std::move(g.derivative));
        for (Expr& i : g.index) derived.push_back(std::move(i));
      }
    } catch (const ExprError& err) {
      if (std::string(err.what()).find("its derivative (for the backward pass) is too") == std::string::npos)
        fail("a derivative failed other than by its size", text + "\n  " + err.what());
      return 0;
    }
    const Box& box = boxes[0];
    bool bounds_ok = true;
    try {
      check_capture_bounds(e, ctx.captures, tensors.caps, box, "expr");
    } catch (const flashjit::ArgumentError&) {
      bounds_ok = false;
    }
    if (!bounds_ok) return 0;
    Env env;
    env.seqlen_q = static_cast<int>(box.seqlen_q), env.seqlen_k = static_cast<int>(box.seqlen_k);
    env.score = static_cast<float>(sel) - 100.f;
    env.captures = &tensors.caps;
    for (const Expr& d : derived)
      for (int64_t q = box.q_lo; q <= box.q_hi; ++q)
        for (int64_t kv = box.kv_lo; kv <= box.kv_hi; ++kv) {
          env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(kv);
          try {
            (void)evaluate(d, env);
          } catch (const std::out_of_range&) {
            fail("a derivative reads out of range where the expression does not", text + "\n  " + print(d, ctx.captures));
          }
        }
  }
  return 0;
}
