// The mask / score expression language (docs/expressions.md, compiler/expr/): parse errors
// and their byte offsets, the canonical printer and its round trip, the host evaluator's
// scalar semantics, interval analysis against brute force, band recognition, bounds checks
// of captured-tensor reads, may_wrap, and the CUDA emitters' text.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "host_tensors.h"
#include "random_expr.h"

using namespace flashjit;
using namespace flashjit::expr;
using flashjit::testing::random_band_expr;
using flashjit::testing::random_mask_expr;
using flashjit::testing::random_score_expr;
using flashjit::testing::HostTensors;
using flashjit::testing::random_tensors;

// Catch2 3 renamed Contains to ContainsSubstring; tests/support/catch.hpp serves both.
#if __has_include(<catch2/catch_test_macros.hpp>)
#define fj_contains Catch::Matchers::ContainsSubstring
#else
#define fj_contains Catch::Matchers::Contains
#endif

namespace {

constexpr int32_t kIntMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kIntMax = std::numeric_limits<int32_t>::max();

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Context mask_ctx(std::vector<CaptureDecl> caps = {}) {
  Context c;
  c.allow_score = false;
  c.captures = std::move(caps);
  return c;
}
Context score_ctx(std::vector<CaptureDecl> caps = {}) {
  Context c = mask_ctx(std::move(caps));
  c.allow_score = true;
  return c;
}

// The captures of the random tests: every dtype, ranks 1 to 3.
std::vector<CaptureDecl> all_caps() {
  return {{"doc", CaptureDType::i32, 1},  {"bias", CaptureDType::f32, 2}, {"keep", CaptureDType::boolean, 1},
          {"big", CaptureDType::i64, 1},  {"half", CaptureDType::f16, 2}, {"bh", CaptureDType::bf16, 3}};
}

struct Err {
  int pos = -1;
  std::string reason, what;
};

// Parses `text`, which must throw ExprError (and nothing else).
Err parse_error(const std::string& text, const Context& ctx) {
  try {
    parse(text, ctx);
  } catch (const ExprError& e) {
    return {e.pos(), e.reason(), e.what()};
  }
  FAIL("parse() accepted: " << text);
  return {};
}

void expect_error(const std::string& text, const Context& ctx, int pos, const std::string& part) {
  INFO("text: " << (text.size() > 80 ? text.substr(0, 80) + "..." : text));
  const Err e = parse_error(text, ctx);
  CHECK(e.pos == pos);
  CHECK_THAT(e.reason, fj_contains(part));
  CHECK(e.what == "at " + std::to_string(e.pos) + ": " + e.reason);
}

std::string canon(const std::string& text, const Context& ctx = score_ctx()) { return print(parse(text, ctx), ctx.captures); }

uint64_t bits_of(double d) {
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

// Node vectors equal in everything but the source positions; `why` says where they differ.
bool same_nodes(const Expr& a, const Expr& b, std::string* why) {
  if (a.nodes.size() != b.nodes.size()) {
    *why = "node counts " + std::to_string(a.nodes.size()) + " vs " + std::to_string(b.nodes.size());
    return false;
  }
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node &x = a.nodes[i], &y = b.nodes[i];
    if (x.kind != y.kind || x.type != y.type || x.ival != y.ival || bits_of(x.fval) != bits_of(y.fval) ||
        x.var != y.var || x.capture != y.capture || x.args != y.args) {
      *why = "node " + std::to_string(i) + " differs (kind " + std::to_string(static_cast<int>(x.kind)) + " vs " +
             std::to_string(static_cast<int>(y.kind)) + ")";
      return false;
    }
  }
  return true;
}

Box make_box(int64_t q_lo, int64_t q_hi, int64_t kv_lo, int64_t kv_hi, int64_t sq, int64_t sk) {
  Box b;
  b.q_lo = q_lo, b.q_hi = q_hi, b.kv_lo = kv_lo, b.kv_hi = kv_hi;
  b.seqlen_q = sq, b.seqlen_k = sk;
  return b;
}

// A small box inside [0, 300) with consistent sequence lengths; half of them near the
// diagonal, where band masks are partial.
Box random_box(std::mt19937_64& rng) {
  auto below = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  Box box;
  box.b_lo = below(3), box.b_hi = box.b_lo + below(2);
  box.h_lo = below(4), box.h_hi = box.h_lo + below(2);
  const int64_t nq = 1 + below(rng() % 8 ? 12 : 40), nk = 1 + below(rng() % 8 ? 12 : 40);
  box.q_lo = below(300 - nq + 1);
  if (rng() % 2) {
    box.kv_lo = std::min<int64_t>(std::max<int64_t>(box.q_lo + below(41) - 20, 0), 300 - nk);
  } else {
    box.kv_lo = below(300 - nk + 1);
  }
  box.q_hi = box.q_lo + nq - 1, box.kv_hi = box.kv_lo + nk - 1;
  box.seqlen_q = box.q_hi + 1 + below(300 - box.q_hi);
  box.seqlen_k = box.kv_hi + 1 + below(300 - box.kv_hi);
  return box;
}

template <typename F>
void for_each_point(const Box& box, const std::vector<HostCapture>* caps, F&& f) {
  Env env;
  env.seqlen_q = static_cast<int>(box.seqlen_q), env.seqlen_k = static_cast<int>(box.seqlen_k);
  env.captures = caps;
  for (int64_t b = box.b_lo; b <= box.b_hi; ++b)
    for (int64_t h = box.h_lo; h <= box.h_hi; ++h)
      for (int64_t q = box.q_lo; q <= box.q_hi; ++q)
        for (int64_t kv = box.kv_lo; kv <= box.kv_hi; ++kv) {
          env.b = static_cast<int>(b), env.h = static_cast<int>(h);
          env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(kv);
          f(env);
        }
}

std::string box_text(const Box& b) {
  std::ostringstream s;
  s << "b " << b.b_lo << ".." << b.b_hi << " h " << b.h_lo << ".." << b.h_hi << " q " << b.q_lo << ".." << b.q_hi
    << " kv " << b.kv_lo << ".." << b.kv_hi << " seqlen_q " << b.seqlen_q << " seqlen_k " << b.seqlen_k;
  return s.str();
}

const char* truth_name(Truth t) { return t == Truth::never ? "never" : t == Truth::always ? "always" : "sometimes"; }

Value ev(const std::string& text, const Env& env = Env{}, const Context& ctx = score_ctx()) {
  return evaluate(parse(text, ctx), env);
}
int32_t ev_int(const std::string& text, const Env& env = Env{}) {
  const Value v = ev(text, env);
  INFO(text);
  REQUIRE(v.type == Type::integer);
  return v.i;
}
float ev_float(const std::string& text, const Env& env = Env{}, const Context& ctx = score_ctx()) {
  const Value v = ev(text, env, ctx);
  INFO(text);
  REQUIRE(v.type == Type::floating);
  return v.f;
}
bool ev_bool(const std::string& text, const Env& env = Env{}) {
  const Value v = ev(text, env);
  INFO(text);
  REQUIRE(v.type == Type::boolean);
  return v.b;
}

}  // namespace

// =============================================================================================
TEST_CASE("expr: parse errors name the byte offset and the reason", "[expr]") {
  const Context m = mask_ctx({{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f32, 2}});
  expect_error("", m, 0, "empty");
  expect_error("   \t\n ", m, 0, "empty");
  expect_error("q_idx >= foo", m, 9, "unknown name 'foo'");
  expect_error("foo(q_idx) > 0", m, 0, "unknown function 'foo'");
  expect_error("min(q_idx) > 0", m, 0, "min() takes 2 arguments; got 1");
  expect_error("min(q_idx, kv_idx, b) > 0", m, 0, "min() takes 2 arguments; got 3");
  expect_error("min() > 0", m, 0, "min() takes 2 arguments; got 0");
  expect_error("q_idx > abs(1, 2)", m, 8, "abs() takes 1 argument; got 2");
  expect_error("where(true, 1) > 0", m, 0, "where() takes 3 arguments; got 2");
  // type errors
  expect_error("true + 1 > 0", m, 5, "'+' needs numbers; got bool and int");
  expect_error("q_idx & kv_idx", m, 6, "'&' needs two bools; got int and int");
  expect_error("true & 1", m, 5, "'&' needs two bools; got bool and int");
  expect_error("(q_idx > 0) | 1.5", m, 12, "'|' needs two bools");
  expect_error("~q_idx", m, 0, "'~' needs a bool; got int");
  expect_error("-true", m, 0, "unary '-' needs a number; got bool");
  expect_error("where(true, 1, false)", m, 0, "must both be bools or both numbers; got int and bool");
  expect_error("where(1, true, false)", m, 0, "condition must be a bool; got int");
  expect_error("doc[1.5] > 0", m, 0, "index 0 of 'doc' must be an int; got float");
  expect_error("bias[q_idx, true] > 0.0", m, 0, "index 1 of 'bias' must be an int; got bool");
  expect_error("exp(true) > 0.0", m, 0, "exp() needs a number; got bool");
  expect_error("q_idx == true", m, 6, "compares two numbers or two bools");
  expect_error("true < false", m, 5, "compares numbers; got bool and bool");
  // comparisons do not chain
  expect_error("q_idx < kv_idx < 3", m, 15, "comparisons do not chain");
  expect_error("q_idx == kv_idx == b", m, 16, "comparisons do not chain");
  // captures
  expect_error("bias[q_idx] > 0.0", m, 0, "'bias' has rank 2 but is read with 1 index");
  expect_error("doc[q_idx, kv_idx] > 0", m, 0, "'doc' has rank 1 but is read with 2 indexes");
  expect_error("doc == 1", m, 4, "captured tensor 'doc' must be indexed");
  expect_error("doc[q_idx > 0", m, 13, "expected ',' or ']' but found the end of the text");
  expect_error("doc[] > 0", m, 4, "expected a value but found ']'");
  expect_error("bias[q_idx][kv_idx] > 0.0", m, 0, "rank 2 but is read with 1 index");
  // score only in a score_mod
  expect_error("score > 0.0", m, 0, "'score' is only available in a score_mod");
  expect_error("(q_idx >= kv_idx) & (score > 0.0)", m, 21, "'score' is only available");
  CHECK_NOTHROW(parse("score > 0.0", score_ctx()));
  // literals
  expect_error("q_idx < 2147483648", m, 8, "integer literal 2147483648 does not fit 32 bits");
  expect_error("-2147483649 < q_idx", m, 0, "integer literal -2147483649 does not fit");
  expect_error("q_idx < 99999999999999999999", m, 8, "does not fit 32 bits");
  expect_error("q_idx < - 2147483649", m, 8, "does not fit");
  CHECK(parse("-2147483648 < q_idx", m).nodes[0].ival == kIntMin);
  CHECK(parse("q_idx > - 2147483648", m).nodes[1].ival == kIntMin);
  CHECK(parse("2147483647 > q_idx", m).nodes[0].ival == kIntMax);
  CHECK(parse("0000000000000000000000012 > q_idx", m).nodes[0].ival == 12);
  expect_error("float(q_idx) < 1e39", m, 15, "float literal 1e39 is outside the float range");
  expect_error("float(q_idx) < -1e39", m, 15, "outside the float range");
  expect_error("float(q_idx) < 1e99999", m, 15, "outside the float range");
  CHECK(static_cast<float>(parse("3.4028235e38 > 0.0", m).nodes[0].fval) == std::numeric_limits<float>::max());
  CHECK(parse("1e-50 == 0.0", m).nodes[0].fval == 0.0);
  expect_error("q_idx < 1e", m, 9, "malformed exponent");
  expect_error("q_idx < 1e+", m, 9, "malformed exponent");
  expect_error("q_idx < 12abc", m, 10, "a number runs into a name");
  // tokens
  expect_error("q_idx >= ", m, 9, "expected a value but found the end of the text");
  expect_error("(q_idx >= kv_idx", m, 16, "expected ')' but found the end of the text");
  expect_error("q_idx >= kv_idx)", m, 15, "expected an operator or the end of the text but found ')'");
  expect_error("q_idx kv_idx", m, 6, "expected an operator or the end of the text but found 'kv_idx'");
  expect_error("q_idx = kv_idx", m, 6, "unexpected '='; compare with ==");
  expect_error("!(q_idx > 0)", m, 0, "unexpected '!'; negate a bool with ~");
  expect_error("q_idx $ 1", m, 6, "unexpected character '$'");
  expect_error("~", m, 1, "expected a value but found the end of the text");
  // bytes: ASCII only, no control characters but whitespace
  expect_error("q_idx >= kv_idx \xc3\xa9", m, 16, "unexpected byte");
  expect_error("q_idx\x01 > 0", m, 5, "unexpected byte");
  expect_error(std::string("q_idx >= kv_idx\0", 16), m, 15, "unexpected byte");
  CHECK_NOTHROW(parse("q_idx\t>=\r\nkv_idx", m));
}

TEST_CASE("expr: size, depth and node limits are errors, never crashes", "[expr]") {
  const Context m = mask_ctx();
  // text size
  std::string ok = "q_idx >= kv_idx";
  ok.resize(kMaxTextBytes, ' ');
  CHECK_NOTHROW(parse(ok, m));
  expect_error(ok + " ", m, 0, "the text has 4097 bytes; at most 4096");
  expect_error(std::string(100000, '('), m, 0, "100000 bytes");
  // the canonical text (which a spec stores and parses again) must fit too
  std::string floats = "1e-45";
  for (int i = 0; i < 300; ++i) floats += "+1e-45";
  REQUIRE(floats.size() <= static_cast<size_t>(kMaxTextBytes));
  expect_error(floats, m, 0, "the canonical form of the expression");
  std::string fits = "b";
  for (int i = 0; i < 500; ++i) fits += "+b";  // 1001 bytes, 1001 nodes, printed in 2001
  CHECK(print(parse(fits, m), {}).size() == 2001);
  // a printed negation of a negative literal needs no more nesting than its text: --...-0.0
  const std::string minuses = std::string(64, '-') + "0.0 < 1.0";
  const Expr deep = parse(minuses, m);
  CHECK(print(parse(print(deep, {}), m), {}) == print(deep, {}));
  // depth: parentheses, unary operators, calls
  auto nested = [](int n) { return std::string(static_cast<size_t>(n), '(') + "q_idx" + std::string(static_cast<size_t>(n), ')') + " > 0"; };
  CHECK_NOTHROW(parse(nested(63), m));
  expect_error(nested(64), m, 64, "nested more than 64 levels deep");
  expect_error(nested(100), m, 64, "nested more than 64 levels deep");
  expect_error(std::string(4000, '('), m, 64, "nested more than 64");
  expect_error(std::string(100, '~') + "true", m, 64, "nested more than 64");
  expect_error(std::string(100, '-') + "q_idx > 0", m, 64, "nested more than 64");
  std::string calls;
  for (int i = 0; i < 100; ++i) calls += "abs(";
  calls += "q_idx" + std::string(100, ')') + " > 0";
  const Err c = parse_error(calls, m);
  CHECK_THAT(c.reason, fj_contains("nested more than 64"));
  // nodes: b+b+...+b with n terms has 2n - 1 nodes
  auto sum = [](int n) {
    std::string s = "b";
    for (int i = 1; i < n; ++i) s += "+b";
    return s;
  };
  CHECK(parse(sum(512), m).nodes.size() == 1023);
  expect_error(sum(513), m, 1023, "more than 1024 nodes");
  expect_error(sum(2000), m, 1023, "more than 1024 nodes");
  // a long left-nested chain is fine for every consumer (they loop, or recurse as deep as the tree)
  std::string chain = "q_idx";
  for (int i = 0; i < 500; ++i) chain += " - 1";
  chain += " >= kv_idx";
  const Expr e = parse(chain, m);
  CHECK(e.nodes.size() == 1003);
  CHECK(print(e, {}) == chain);
  CHECK(mask_over(e, make_box(600, 700, 0, 10, 701, 11)) == Truth::always);
  auto band = as_band(e);
  REQUIRE(band);
  CHECK(band->hi == -500);
  CHECK_FALSE(emit_value(e, {}).empty());
  CHECK_FALSE(emit_interval(e).empty());
}

TEST_CASE("expr: random and mutated text throws only ExprError", "[expr]") {
  std::mt19937_64 rng(7);
  const std::vector<CaptureDecl> caps = all_caps();
  const Context ctxs[] = {mask_ctx(caps), score_ctx(caps), mask_ctx()};
  static const char* const pieces[] = {"q_idx", "kv_idx", "b", "h", "seqlen_q", "seqlen_k", "score", "doc", "bias",
                                       "keep", "big", "half", "bh", "where", "min", "max", "abs", "exp", "log", "int",
                                       "float", "sqrt", "(", ")", "[", "]", ",", "+", "-", "*", "/", "//", "%", "==",
                                       "!=", "<", "<=", ">", ">=", "&", "|", "^", "~", "0", "1", "2147483648", "1.5",
                                       "1e39", "inf", "true", "false", " ", "!", "=", ".", "e", "\x80", "#"};
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    if (i % 2 == 0) {
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int k = 0; k < n; ++k) text += pieces[rng() % (sizeof pieces / sizeof pieces[0])];
    } else {  // a valid expression with a few bytes changed
      text = random_mask_expr(rng, caps, 5, 4);
      for (int k = 0; k < 3; ++k) {
        const size_t at = rng() % (text.size() + 1);
        switch (rng() % 3) {
          case 0: text.insert(at, 1, static_cast<char>(rng() % 128)); break;
          case 1: if (at < text.size()) text.erase(at, 1); break;
          default: if (at < text.size()) text[at] = pieces[rng() % 45][0]; break;
        }
      }
    }
    const Context& ctx = ctxs[i % 3];
    INFO("text: " << text);
    try {
      const Expr e = parse(text, ctx);
      ++accepted;
      const std::string p = print(e, ctx.captures);
      CHECK(print(parse(p, ctx), ctx.captures) == p);
    } catch (const ExprError& err) {
      CHECK(err.pos() >= 0);
      CHECK(err.pos() <= static_cast<int>(text.size()));
    }
  }
  CHECK(accepted > 20);
}

// =============================================================================================
TEST_CASE("expr: canonical printing", "[expr]") {
  const std::vector<CaptureDecl> caps = {{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f32, 2}};
  const Context s = score_ctx(caps);
  CHECK(canon("q_idx>=kv_idx", s) == "q_idx >= kv_idx");
  CHECK(canon("((q_idx >= kv_idx))", s) == "q_idx >= kv_idx");
  CHECK(canon("(q_idx + kv_idx) * b", s) == "(q_idx + kv_idx) * b");
  CHECK(canon("q_idx + kv_idx * b", s) == "q_idx + kv_idx * b");
  CHECK(canon("(q_idx * kv_idx) + b", s) == "q_idx * kv_idx + b");
  CHECK(canon("q_idx - (kv_idx - b)", s) == "q_idx - (kv_idx - b)");
  CHECK(canon("q_idx - kv_idx - b", s) == "q_idx - kv_idx - b");
  CHECK(canon("(q_idx - kv_idx) - b", s) == "q_idx - kv_idx - b");
  CHECK(canon("q_idx // (kv_idx * b)", s) == "q_idx // (kv_idx * b)");
  CHECK(canon("q_idx % 4 // 2", s) == "q_idx % 4 // 2");
  CHECK(canon("(q_idx < kv_idx) == (b < h)", s) == "(q_idx < kv_idx) == (b < h)");
  CHECK(canon("(q_idx < kv_idx) & (b < h) | ~(h == 0)", s) == "q_idx < kv_idx & b < h | ~(h == 0)");
  CHECK(canon("(q_idx < kv_idx) & ((b < h) | (h == 0))", s) == "q_idx < kv_idx & (b < h | h == 0)");
  CHECK(canon("(true ^ false) & true", s) == "(true ^ false) & true");
  CHECK(canon("~~true", s) == "~~true");
  CHECK(canon("-(q_idx * kv_idx)", s) == "-(q_idx * kv_idx)");
  CHECK(canon("-q_idx * kv_idx", s) == "-q_idx * kv_idx");
  CHECK(canon("- -q_idx", s) == "--q_idx");
  CHECK(canon("where(q_idx>0,1,2)", s) == "where(q_idx > 0, 1, 2)");
  CHECK(canon("min( q_idx ,kv_idx )+max(b,h)", s) == "min(q_idx, kv_idx) + max(b, h)");
  CHECK(canon("bias[ doc[q_idx] ,kv_idx ]", s) == "bias[doc[q_idx], kv_idx]");
  // negative literals
  CHECK(canon("-5", s) == "-5");
  CHECK(canon("q_idx - -5", s) == "q_idx - -5");
  CHECK(canon("q_idx-5", s) == "q_idx - 5");
  CHECK(canon("q_idx * - 1", s) == "q_idx * -1");
  CHECK(canon("-2147483648", s) == "-2147483648");
  CHECK(canon("-7 // 2", s) == "-7 // 2");
  // a minus applied to a parenthesized literal stays a negation (another tree than -5)
  CHECK(canon("-(5)", s) == "-(5)");
  CHECK(canon("-(-5)", s) == "--5");
  CHECK(canon("--5", s) == "--5");
  // the int 0 negated prints as --0 (the same tree as -(0), one nesting level fewer: a
  // canonical text must parse wherever its source did; fuzz_expr regress-neg-zero-depth)
  CHECK(canon("-(0)", s) == "--0");
  CHECK(canon("--0", s) == "--0");
  CHECK(canon(std::string(63, '-') + "-0", s) == std::string(62, '-') + "--0");
  CHECK(canon("-(2.5)", s) == "-(2.5)");
  CHECK(canon("-(0.0)", s) == "-(0.0)");
  CHECK(canon("-(-0.0)", s) == "--0.0");
  CHECK(canon("-(inf)", s) == "-(inf)");
  CHECK(canon("-(-inf)", s) == "--inf");
  // floats: %.9g, always with a '.' or an exponent
  CHECK(canon("30.0", s) == "30.0");
  CHECK(canon("30.", s) == "30.0");
  CHECK(canon(".5", s) == "0.5");
  CHECK(canon("1e-5", s) == "9.99999975e-06");  // the float nearest 1e-5, to 9 digits
  CHECK(canon("0.0078125", s) == "0.0078125");
  CHECK(canon("3.0517578125e-05", s) == "3.05175781e-05");  // 2^-15
  CHECK(canon("1E5", s) == "100000.0");
  CHECK(canon("1e9", s) == "1e+09");
  CHECK(canon("2.5e10", s) == "2.49999995e+10");  // the float nearest 2.5e10, exactly
  CHECK(canon("0.1", s) == "0.100000001");
  CHECK(canon("inf", s) == "inf");
  CHECK(canon("-inf", s) == "-inf");
  CHECK(canon("-0.0", s) == "-0.0");
  CHECK(canon("1e-45", s) == "1.40129846e-45");
  CHECK(canon("score * 0.5 + 1", s) == "score * 0.5 + 1");
}

TEST_CASE("expr: print(parse(t)) is a fixed point and reparses to the same nodes", "[expr]") {
  std::mt19937_64 rng(12345);
  const std::vector<CaptureDecl> caps = all_caps();
  std::string report;
  int failures = 0;
  for (int i = 0; i < 2000; ++i) {
    const bool score = i % 2 == 1;
    const std::vector<CaptureDecl> decls = i % 4 < 2 ? caps : std::vector<CaptureDecl>{};
    const Context ctx = score ? score_ctx(decls) : mask_ctx(decls);
    const int depth = 1 + i % 8;
    const std::string t = score ? random_score_expr(rng, decls, 6, depth) : random_mask_expr(rng, decls, 6, depth);
    Expr e1, e2;
    try {
      e1 = parse(t, ctx);
    } catch (const ExprError& err) {
      if (failures++ < 5) report += "generated text does not parse: " + std::string(err.what()) + "\n  " + t + "\n";
      continue;
    }
    if (e1.type() != (score ? Type::floating : Type::boolean) && failures++ < 5)
      report += std::string("wrong type ") + to_string(e1.type()) + ": " + t + "\n";
    const std::string p1 = print(e1, decls);
    try {
      e2 = parse(p1, ctx);
    } catch (const ExprError& err) {
      if (failures++ < 5) report += "printed text does not parse: " + std::string(err.what()) + "\n  " + p1 + "\n";
      continue;
    }
    const std::string p2 = print(e2, decls);
    std::string why;
    if (p1 != p2) {
      if (failures++ < 5) report += "not a fixed point:\n  " + p1 + "\n  " + p2 + "\n";
    } else if (!same_nodes(e1, e2, &why)) {
      if (failures++ < 5) report += "nodes differ (" + why + "):\n  " + t + "\n  " + p1 + "\n";
    }
  }
  INFO(report);
  CHECK(failures == 0);
}

TEST_CASE("expr: the random generator is deterministic and stays within the limits", "[expr]") {
  const std::vector<CaptureDecl> caps = all_caps();
  std::mt19937_64 a(99), b(99);
  for (int i = 0; i < 50; ++i) CHECK(random_mask_expr(a, caps, 8, 6) == random_mask_expr(b, caps, 8, 6));
  std::mt19937_64 rng(3);
  size_t longest = 0, most_nodes = 0;
  bool reads = false;
  for (int i = 0; i < 300; ++i) {
    const std::string t = random_mask_expr(rng, caps, 8, 10);
    longest = std::max(longest, t.size());
    const Expr e = parse(t, mask_ctx(caps));
    most_nodes = std::max(most_nodes, e.nodes.size());
    reads = reads || e.reads_captures();
    const std::string s = random_score_expr(rng, caps, 8, 10);
    CHECK(parse(s, score_ctx(caps)).type() == Type::floating);
  }
  CHECK(longest <= static_cast<size_t>(kMaxTextBytes));
  CHECK(most_nodes <= static_cast<size_t>(kMaxNodes));
  CHECK(reads);
}

// =============================================================================================
TEST_CASE("expr: integer semantics (wrap, floor division, casts)", "[expr]") {
  CHECK(ev_int("2147483647 + 1") == kIntMin);
  CHECK(ev_int("-2147483648 - 1") == kIntMax);
  CHECK(ev_int("65536 * 65536") == 0);
  CHECK(ev_int("65537 * 65537") == 131073);
  CHECK(ev_int("-(-2147483648)") == kIntMin);
  CHECK(ev_int("abs(-2147483648)") == kIntMin);
  CHECK(ev_int("abs(-7)") == 7);
  // // and % round toward -inf, like Python
  CHECK(ev_int("-7 // 2") == -4);
  CHECK(ev_int("-(7) // 2") == -4);
  CHECK(ev_int("-(7 // 2)") == -3);
  CHECK(ev_int("7 // -2") == -4);
  CHECK(ev_int("-7 // -2") == 3);
  CHECK(ev_int("7 // 2") == 3);
  CHECK(ev_int("-7 % 2") == 1);
  CHECK(ev_int("7 % -2") == -1);
  CHECK(ev_int("-7 % -2") == -1);
  CHECK(ev_int("-8 % 2") == 0);
  CHECK(ev_int("-8 // 2") == -4);
  // by 0: 0
  Env env;
  env.q_idx = 17;
  CHECK(ev_int("q_idx // 0", env) == 0);
  CHECK(ev_int("q_idx % 0", env) == 0);
  CHECK(ev_int("-2147483648 // 0") == 0);
  // INT_MIN // -1 wraps instead of trapping
  CHECK(ev_int("-2147483648 // -1") == kIntMin);
  CHECK(ev_int("-2147483648 % -1") == 0);
  CHECK(ev_int("-2147483648 // 2") == -1073741824);
  CHECK(ev_int("-2147483648 % 3") == 1);  // Python: -2147483648 % 3 == 1
  // int(): toward 0, saturating, NaN -> 0
  CHECK(ev_int("int(0.0 / 0.0)") == 0);
  CHECK(ev_int("int(inf)") == kIntMax);
  CHECK(ev_int("int(-inf)") == kIntMin);
  CHECK(ev_int("int(1e10)") == kIntMax);
  CHECK(ev_int("int(-1e10)") == kIntMin);
  CHECK(ev_int("int(2147483520.0)") == 2147483520);
  CHECK(ev_int("int(3.7)") == 3);
  CHECK(ev_int("int(-3.7)") == -3);
  CHECK(ev_int("int(-0.5)") == 0);
  CHECK(ev_int("int(true) + int(false)") == 1);
  CHECK(ev_int("int(q_idx)", env) == 17);
  // variables
  Env v;
  v.b = 1, v.h = 2, v.q_idx = 3, v.kv_idx = 4, v.seqlen_q = 50, v.seqlen_k = 60;
  CHECK(ev_int("b * 100000 + h * 10000 + q_idx * 1000 + kv_idx * 100 + seqlen_k - seqlen_q", v) == 123410);
  CHECK(ev_int("min(q_idx, kv_idx) * 10 + max(q_idx, kv_idx)", v) == 34);
  CHECK(ev_int("where(q_idx < kv_idx, 1, 2)", v) == 1);
}

TEST_CASE("expr: float semantics, NaN, promotion and where", "[expr]") {
  Env env;
  env.q_idx = 3, env.kv_idx = 5, env.score = 2.0f;
  // promotion: / is always float, int op float is float
  const Context s = score_ctx();
  CHECK(parse("q_idx / 2", s).type() == Type::floating);
  CHECK(ev_float("q_idx / 2", env) == 1.5f);
  CHECK(parse("q_idx // 2", s).type() == Type::integer);
  CHECK(parse("q_idx + 1.5", s).type() == Type::floating);
  CHECK(ev_float("q_idx + 1.5", env) == 4.5f);
  CHECK(parse("min(q_idx, 2.5)", s).type() == Type::floating);
  CHECK(ev_float("min(q_idx, 2.5)", env) == 2.5f);
  CHECK(parse("where(q_idx > 2, 1, 2.5)", s).type() == Type::floating);
  CHECK(ev_float("where(q_idx > 2, 1, 2.5)", env) == 1.0f);
  CHECK(parse("where(true, 1, 2)", s).type() == Type::integer);
  CHECK(parse("where(true, true, false)", s).type() == Type::boolean);
  CHECK(parse("abs(q_idx)", s).type() == Type::integer);
  CHECK(parse("abs(-1.5)", s).type() == Type::floating);
  CHECK(parse("exp(q_idx)", s).type() == Type::floating);
  CHECK(ev_float("float(true) + float(q_idx)", env) == 4.0f);
  CHECK(ev_float("score * 0.5 + 1", env) == 2.0f);
  CHECK(eval_score(parse("q_idx + 1", s), env) == 4.0f);
  CHECK(eval_score(parse("score", s), env) == 2.0f);
  CHECK_THROWS_AS(eval_score(parse("score > 1.0", s), env), std::logic_error);
  CHECK_THROWS_AS(eval_mask(parse("q_idx + 1", mask_ctx()), env), std::logic_error);
  // float // and %: floor, the sign of the divisor
  CHECK(ev_float("-7.5 // 2.0") == -4.0f);
  CHECK(ev_float("-7.5 % 2.0") == 0.5f);
  CHECK(ev_float("7.5 % -2.0") == -0.5f);
  CHECK(ev_float("7 % 2.5") == 2.0f);
  CHECK(std::isnan(ev_float("1.0 % 0.0")));
  // NaN propagates through min / max (torch.minimum), comparisons with NaN are false
  CHECK(std::isnan(ev_float("min(0.0 / 0.0, 1.0)")));
  CHECK(std::isnan(ev_float("min(1.0, 0.0 / 0.0)")));
  CHECK(std::isnan(ev_float("max(0.0 / 0.0, 1.0)")));
  CHECK(std::isnan(ev_float("max(1.0, 0.0 / 0.0)")));
  CHECK(std::isnan(ev_float("max(q_idx, 0.0 / 0.0)", env)));
  CHECK(ev_float("min(-0.0, 1.0)") == 0.0f);
  CHECK_FALSE(ev_bool("0.0 / 0.0 == 0.0 / 0.0"));
  CHECK(ev_bool("0.0 / 0.0 != 0.0 / 0.0"));
  CHECK_FALSE(ev_bool("0.0 / 0.0 < 1.0"));
  CHECK_FALSE(ev_bool("0.0 / 0.0 >= 1.0"));
  CHECK(ev_bool("-0.0 == 0.0"));
  CHECK(ev_float("1.0 / 0.0") == INFINITY);
  CHECK(ev_float("-1.0 / 0.0") == -INFINITY);
  CHECK(ev_float("inf") == INFINITY);
  CHECK(ev_float("-inf") == -INFINITY);
  CHECK(ev_float("-(inf)") == -INFINITY);
  CHECK(std::isnan(ev_float("inf - inf")));
  CHECK(ev_float("3e38 + 3e38") == INFINITY);  // float arithmetic, not double
  CHECK(ev_float("16777216.0 + 1.0") == 16777216.0f);
  CHECK(ev_float("float(16777217)") == 16777216.0f);
  CHECK(ev_float("sigmoid(0.0)") == 0.5f);
  CHECK(ev_float("tanh(0.0)") == 0.0f);
  CHECK(ev_float("sqrt(4)") == 2.0f);
  CHECK(std::isnan(ev_float("sqrt(-1.0)")));
  CHECK(ev_float("log(0.0)") == -INFINITY);
  CHECK(ev_float("exp(0)") == 1.0f);
  CHECK(ev_float("abs(-2.5)") == 2.5f);
  CHECK(ev_float("-(q_idx / 2)", env) == -1.5f);
  CHECK(ev_float("where(score > 1.0, score, -inf)", env) == 2.0f);
  // bools
  CHECK(ev_bool("true ^ true") == false);
  CHECK(ev_bool("true ^ false") == true);
  CHECK(ev_bool("~(true & false) | false") == true);
  CHECK(ev_bool("(1 < 2) == (3 < 4)") == true);
  CHECK(ev_bool("q_idx < 3.5", env) == true);
  CHECK(ev_bool("2147483647 == 2147483647.0") == true);  // int op float compares as float
  CHECK(ev_bool("16777217 == 16777216.0") == true);
  CHECK(ev_bool("16777217 == 16777216") == false);
}

TEST_CASE("expr: captured reads of every dtype with strides", "[expr]") {
  const std::vector<CaptureDecl> decls = {{"t32", CaptureDType::i32, 2},  {"t64", CaptureDType::i64, 1},
                                          {"tf", CaptureDType::f32, 2},   {"th", CaptureDType::f16, 1},
                                          {"tb", CaptureDType::bf16, 1},  {"tk", CaptureDType::boolean, 2}};
  const Context ctx = score_ctx(decls);
  // t32: 3 x 4, column-major (strides 1, 3): element (i, j) = 100 i + j
  std::vector<int32_t> t32(12);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) t32[static_cast<size_t>(i + 3 * j)] = 100 * i + j;
  // t64: 4 elements at stride 2, truncated to 32 bits
  const std::vector<int64_t> t64 = {0x100000005LL, 99, -1, 99, INT64_C(0x80000000), 99, INT64_C(-4294967296) + 7, 99};
  // tf: 2 x 3 with row stride 8, column stride 2
  std::vector<float> tf(16, -99.f);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) tf[static_cast<size_t>(8 * i + 2 * j)] = static_cast<float>(i) + 0.25f * static_cast<float>(j);
  // th: f16 bit patterns
  const std::vector<uint16_t> th = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555};
  // tb: bf16 at stride 3
  const std::vector<uint16_t> tb = {0x3f80, 0, 0, 0xc040, 0, 0, 0x0001, 0, 0, 0x7f80, 0, 0, 0xff81, 0, 0};
  // tk: 2 x 2 bytes, row stride 5
  const std::vector<unsigned char> tk = {0, 2, 9, 9, 9, 255, 0, 9, 9, 9};
  std::vector<HostCapture> caps(6);
  auto set = [&](int i, const void* data, CaptureDType d, std::vector<int64_t> sizes, std::vector<int64_t> strides) {
    caps[static_cast<size_t>(i)].data = data;
    caps[static_cast<size_t>(i)].dtype = d;
    caps[static_cast<size_t>(i)].rank = static_cast<int>(sizes.size());
    for (size_t k = 0; k < sizes.size(); ++k) {
      caps[static_cast<size_t>(i)].sizes[k] = sizes[k];
      caps[static_cast<size_t>(i)].strides[k] = strides[k];
    }
  };
  set(0, t32.data(), CaptureDType::i32, {3, 4}, {1, 3});
  set(1, t64.data(), CaptureDType::i64, {4}, {2});
  set(2, tf.data(), CaptureDType::f32, {2, 3}, {8, 2});
  set(3, th.data(), CaptureDType::f16, {10}, {1});
  set(4, tb.data(), CaptureDType::bf16, {5}, {3});
  set(5, tk.data(), CaptureDType::boolean, {2, 2}, {5, 1});
  Env env;
  env.captures = &caps;
  auto at = [&](int q, int kv) {
    Env e = env;
    e.q_idx = q, e.kv_idx = kv;
    return e;
  };
  const Expr r32 = parse("t32[q_idx, kv_idx]", ctx);
  CHECK(r32.type() == Type::integer);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) CHECK(evaluate(r32, at(i, j)).i == 100 * i + j);
  const Expr r64 = parse("t64[q_idx]", ctx);
  CHECK(r64.type() == Type::integer);
  CHECK(evaluate(r64, at(0, 0)).i == 5);
  CHECK(evaluate(r64, at(1, 0)).i == -1);
  CHECK(evaluate(r64, at(2, 0)).i == kIntMin);
  CHECK(evaluate(r64, at(3, 0)).i == 7);
  const Expr rf = parse("tf[q_idx, kv_idx]", ctx);
  CHECK(rf.type() == Type::floating);
  CHECK(evaluate(rf, at(1, 2)).f == 1.5f);
  CHECK(evaluate(rf, at(0, 1)).f == 0.25f);
  const Expr rh = parse("th[q_idx]", ctx);
  CHECK(rh.type() == Type::floating);
  CHECK(evaluate(rh, at(0, 0)).f == 1.0f);
  CHECK(evaluate(rh, at(1, 0)).f == -2.0f);
  CHECK(evaluate(rh, at(2, 0)).f == std::ldexp(1.0f, -24));          // smallest subnormal
  CHECK(evaluate(rh, at(3, 0)).f == 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  CHECK(evaluate(rh, at(4, 0)).f == 65504.0f);
  CHECK(evaluate(rh, at(5, 0)).f == INFINITY);
  CHECK(evaluate(rh, at(6, 0)).f == -INFINITY);
  CHECK(std::isnan(evaluate(rh, at(7, 0)).f));
  const float neg_zero = evaluate(rh, at(8, 0)).f;
  CHECK(neg_zero == 0.0f);
  CHECK(std::signbit(neg_zero));
  CHECK(evaluate(rh, at(9, 0)).f == 0x1.554p-2f);  // 0x3555 = 0.333251953125
  const Expr rb = parse("tb[q_idx]", ctx);
  CHECK(evaluate(rb, at(0, 0)).f == 1.0f);
  CHECK(evaluate(rb, at(1, 0)).f == -3.0f);
  CHECK(evaluate(rb, at(2, 0)).f == std::ldexp(1.0f, -133));  // a float subnormal
  CHECK(evaluate(rb, at(3, 0)).f == INFINITY);
  CHECK(std::isnan(evaluate(rb, at(4, 0)).f));
  const Expr rk = parse("tk[q_idx, kv_idx]", ctx);
  CHECK(rk.type() == Type::boolean);
  CHECK_FALSE(eval_mask(rk, at(0, 0)));
  CHECK(eval_mask(rk, at(0, 1)));
  CHECK(eval_mask(rk, at(1, 0)));
  CHECK_FALSE(eval_mask(rk, at(1, 1)));
  // reads inside arithmetic, data-dependent indices
  CHECK(evaluate(parse("t32[t64[q_idx] - 4, kv_idx] + 1", ctx), at(0, 3)).i == 104);
  CHECK(eval_score(parse("score * tf[1, 2] + float(t32[2, 0])", ctx), [&] {
          Env e = at(0, 0);
          e.score = 2.0f;
          return e;
        }()) == 203.0f);
  // out of range: std::out_of_range, never a read outside
  CHECK_THROWS_AS(evaluate(r64, at(4, 0)), std::out_of_range);
  CHECK_THROWS_AS(evaluate(r64, at(-1, 0)), std::out_of_range);
  CHECK_THROWS_AS(evaluate(r32, at(0, 4)), std::out_of_range);
  CHECK_THROWS_AS(evaluate(r32, at(3, 0)), std::out_of_range);
  CHECK_THROWS_AS(evaluate(parse("t64[q_idx - 1]", ctx), at(0, 0)), std::out_of_range);
  CHECK_THROWS_AS(evaluate(parse("t64[2147483647 + q_idx]", ctx), at(1, 0)), std::out_of_range);
  Env none = at(0, 0);
  none.captures = nullptr;
  CHECK_THROWS_AS(evaluate(r64, none), std::out_of_range);
  std::vector<HostCapture> wrong_rank = caps;
  wrong_rank[1].rank = 2;
  Env wr = at(0, 0);
  wr.captures = &wrong_rank;
  CHECK_THROWS_AS(evaluate(r64, wr), std::out_of_range);
  std::vector<HostCapture> too_few(caps.begin(), caps.begin() + 2);
  Env tf_env = at(0, 0);
  tf_env.captures = &too_few;
  CHECK_THROWS_AS(evaluate(rf, tf_env), std::out_of_range);
}

// =============================================================================================
TEST_CASE("expr: mask_over decides pure index masks on tiles off the diagonal", "[expr]") {
  const Context m = mask_ctx({{"doc", CaptureDType::i32, 1}});
  auto over = [&](const std::string& text, const Box& box) { return mask_over(parse(text, m), box); };
  const Box below = make_box(64, 127, 0, 63, 128, 128);   // q > kv everywhere
  const Box above = make_box(0, 63, 64, 127, 128, 128);   // kv > q everywhere
  const Box diag = make_box(0, 63, 0, 63, 128, 128);
  CHECK(over("q_idx >= kv_idx", below) == Truth::always);
  CHECK(over("q_idx >= kv_idx", above) == Truth::never);
  CHECK(over("q_idx >= kv_idx", diag) == Truth::sometimes);
  CHECK(over("~(kv_idx > q_idx)", below) == Truth::always);
  CHECK(over("kv_idx - q_idx <= 0", above) == Truth::never);
  CHECK(over("(q_idx >= kv_idx) & (q_idx - kv_idx < 1024)", below) == Truth::always);
  CHECK(over("(q_idx >= kv_idx) & (q_idx - kv_idx < 16)", below) == Truth::sometimes);
  CHECK(over("(q_idx >= kv_idx) & (q_idx - kv_idx < 1)", below) == Truth::never);
  // bottom-right: seqlen_k - seqlen_q = 100
  CHECK(over("kv_idx <= q_idx + seqlen_k - seqlen_q", make_box(0, 9, 0, 100, 100, 200)) == Truth::always);
  CHECK(over("kv_idx <= q_idx + seqlen_k - seqlen_q", make_box(0, 9, 110, 199, 100, 200)) == Truth::never);
  // documents of 64 by position, prefix LM, modulo
  CHECK(over("q_idx // 64 == kv_idx // 64", diag) == Truth::always);
  CHECK(over("q_idx // 64 == kv_idx // 64", below) == Truth::never);
  CHECK(over("(kv_idx < 64) | (q_idx >= kv_idx)", diag) == Truth::always);
  CHECK(over("(kv_idx < 64) | (q_idx >= kv_idx)", above) == Truth::never);
  CHECK(over("kv_idx % 128 < 64", diag) == Truth::always);
  CHECK(over("(kv_idx - q_idx) % 4 == 0", diag) == Truth::sometimes);
  CHECK(over("true", diag) == Truth::always);
  CHECK(over("false", diag) == Truth::never);
  CHECK(over("b == 0", diag) == Truth::always);
  CHECK(over("float(kv_idx) <= float(q_idx) - 0.5", below) == Truth::always);
  CHECK(over("float(kv_idx) / 2.0 > 100.0", below) == Truth::never);
  // captured values are unknown, unless another conjunct decides
  CHECK(over("doc[q_idx] == doc[kv_idx]", below) == Truth::sometimes);
  CHECK(over("(q_idx >= kv_idx) & (doc[q_idx] == doc[kv_idx])", below) == Truth::sometimes);
  CHECK(over("(q_idx >= kv_idx) & (doc[q_idx] == doc[kv_idx])", above) == Truth::never);
  CHECK(over("(q_idx >= kv_idx) | (doc[q_idx] == doc[kv_idx])", below) == Truth::always);
}

TEST_CASE("expr: mask_over and int_range are sound against brute force", "[expr]") {
  std::mt19937_64 rng(20240611);
  const std::vector<CaptureDecl> caps = all_caps();
  const int size = 6;
  const HostTensors data = random_tensors(rng, caps, size);
  int counts[3] = {0, 0, 0};
  int ranges_checked = 0, ranges_bounded = 0;
  std::string report;
  int failures = 0;
  auto fail = [&](const std::string& what) {
    if (failures++ < 8) report += what + "\n";
  };
  for (int iter = 0; iter < 1000; ++iter) {
    const bool with_caps = iter % 2 == 1;
    const std::vector<CaptureDecl> decls = with_caps ? caps : std::vector<CaptureDecl>{};
    const std::string text = random_mask_expr(rng, decls, size, 1 + iter % 6);
    Expr e;
    try {
      e = parse(text, mask_ctx(decls));
    } catch (const ExprError& err) {
      fail("does not parse: " + std::string(err.what()) + ": " + text);
      continue;
    }
    // up to 6 int sub-expressions, each as the root of its prefix of the node vector
    std::vector<int> int_nodes;
    for (size_t k = 0; k < e.nodes.size(); ++k)
      if (e.nodes[k].type == Type::integer) int_nodes.push_back(static_cast<int>(k));
    while (int_nodes.size() > 6) int_nodes.erase(int_nodes.begin() + static_cast<long>(rng() % int_nodes.size()));
    std::vector<Expr> prefixes;
    for (int k : int_nodes) {
      Expr p;
      p.nodes.assign(e.nodes.begin(), e.nodes.begin() + k + 1);
      prefixes.push_back(std::move(p));
    }
    for (int bx = 0; bx < 4; ++bx) {
      const Box box = random_box(rng);
      const Truth t = mask_over(e, box);
      ++counts[static_cast<int>(t)];
      std::vector<std::optional<IntRange>> ranges;
      for (int k : int_nodes) ranges.push_back(int_range(e, k, box));
      bool seen_true = false, seen_false = false;
      bool bad_range = false;
      for_each_point(box, with_caps ? &data.caps : nullptr, [&](const Env& env) {
        (eval_mask(e, env) ? seen_true : seen_false) = true;
        for (size_t r = 0; r < ranges.size(); ++r) {
          if (!ranges[r]) continue;
          const int32_t v = evaluate(prefixes[r], env).i;
          if ((v < ranges[r]->lo || v > ranges[r]->hi) && !bad_range) {
            bad_range = true;
            fail("int_range of node " + std::to_string(int_nodes[r]) + " (" + print(prefixes[r], decls) + ") is " +
                 std::to_string(ranges[r]->lo) + ".." + std::to_string(ranges[r]->hi) + " but it is " +
                 std::to_string(v) + " at q " + std::to_string(env.q_idx) + " kv " + std::to_string(env.kv_idx) +
                 " b " + std::to_string(env.b) + " h " + std::to_string(env.h) + "; " + box_text(box) + "; " + text);
          }
        }
      });
      for (const auto& r : ranges) {
        ++ranges_checked;
        ranges_bounded += r.has_value();
      }
      if ((t == Truth::always && seen_false) || (t == Truth::never && seen_true))
        fail(std::string("mask_over says ") + truth_name(t) + " but the mask is " + (seen_true ? "true" : "false") +
             " somewhere; " + box_text(box) + "; " + text);
    }
  }
  INFO(report);
  CHECK(failures == 0);
  // not trivially "sometimes": the random masks are decided on a good share of the tiles
  INFO("never " << counts[0] << ", sometimes " << counts[1] << ", always " << counts[2] << "; int ranges bounded "
                << ranges_bounded << " of " << ranges_checked);
  CHECK(counts[static_cast<int>(Truth::never)] > 100);
  CHECK(counts[static_cast<int>(Truth::always)] > 100);
  CHECK(counts[static_cast<int>(Truth::sometimes)] > 100);
  CHECK(ranges_bounded > ranges_checked / 2);
}

TEST_CASE("expr: interval analysis of float arithmetic near overflow is sound", "[expr]") {
  const Context m = mask_ctx();
  const Box box = make_box(1, 3, 0, 3, 4, 4);
  auto check_sound = [&](const std::string& text) {
    INFO(text);
    const Expr e = parse(text, m);
    const Truth t = mask_over(e, box);
    for_each_point(box, nullptr, [&](const Env& env) {
      const bool v = eval_mask(e, env);
      if (t == Truth::always) CHECK(v);
      if (t == Truth::never) CHECK_FALSE(v);
    });
  };
  // the float sum overflows to inf although the exact (double) sum is finite
  check_sound("3e38 + 3e38 == inf");
  check_sound("(3e38 + 3e38) - (3e38 + 3e38) == 0.0");
  check_sound("float(q_idx) * 3e38 == inf");
  check_sound("float(q_idx) * 3e38 - float(q_idx) * 3e38 == 0.0");
  check_sound("3e38 / (float(q_idx) * 1e-10) > 3.4e38");
  check_sound("(3e38 / (float(q_idx) * 1e-10)) * 0.0 == 0.0");
  check_sound("exp(float(q_idx) * 100.0) - exp(float(q_idx) * 100.0) == 0.0");
  // an infinite bound minus an infinite bound: NaN in double, but inf - 1 is inf
  check_sound("exp(float(q_idx) * 100.0) - exp(float(kv_idx) * 30.0) == inf");
  check_sound("exp(float(kv_idx) * 30.0) + -exp(float(q_idx) * 100.0) == -inf");
  // float % rounds: a - floor(a / b) * b leaves [0, b) for large a, and a / b may overflow
  check_sound("(float(q_idx) * 1e30) % 3.0 < -1.0");
  check_sound("(float(q_idx) * 1e30) % 3.0 > 4.0");
  check_sound("(1e30 + float(q_idx)) % 7.0 < -1.0");
  check_sound("(1e30 + float(q_idx)) % 7.0 > 8.0");
  check_sound("(float(kv_idx) * 1e20 + 1.0) % -3.0 > 1.0");
  check_sound("(float(q_idx) * 3e38) % 1e-5 < -1.0");
  check_sound("(float(q_idx) * 1e-30) % 1e-38 < -1.0");
  check_sound("(-1e-30 * float(q_idx)) % 1.0 >= 1.0");
  // ... and is still decided where the rounding cannot matter
  CHECK(mask_over(parse("float(kv_idx) % 4.0 < 4.5", m), box) == Truth::always);
  CHECK(mask_over(parse("float(kv_idx) % 4.0 >= -0.5", m), box) == Truth::always);
  CHECK(mask_over(parse("float(kv_idx) % -4.0 > 0.5", m), box) == Truth::never);
  CHECK(mask_over(parse("float(q_idx) * 2.0 + 1.0 > 2.5", m), box) == Truth::always);
  CHECK(mask_over(parse("exp(float(q_idx)) < 25.0", m), box) == Truth::always);
}

// =============================================================================================
TEST_CASE("expr: band recognition", "[expr]") {
  const Context m = mask_ctx({{"doc", CaptureDType::i32, 1}});
  auto band = [&](const std::string& text) { return as_band(parse(text, m)); };
  auto causal = band("q_idx >= kv_idx");
  REQUIRE(causal);
  CHECK_FALSE(causal->lo);
  CHECK(causal->hi == 0);
  CHECK_FALSE(causal->bottom_right);
  CHECK_FALSE(causal->empty);
  auto br = band("kv_idx <= q_idx + seqlen_k - seqlen_q");
  REQUIRE(br);
  CHECK_FALSE(br->lo);
  CHECK(br->hi == 0);
  CHECK(br->bottom_right);
  auto window = band("(q_idx >= kv_idx) & (q_idx - kv_idx < 1024)");
  REQUIRE(window);
  CHECK(window->lo == -1023);
  CHECK(window->hi == 0);
  CHECK_FALSE(window->bottom_right);
  auto negated = band("~(kv_idx > q_idx)");
  REQUIRE(negated);
  CHECK_FALSE(negated->lo);
  CHECK(negated->hi == 0);
  auto all = band("true");
  REQUIRE(all);
  CHECK_FALSE(all->lo);
  CHECK_FALSE(all->hi);
  CHECK_FALSE(all->empty);
  auto none = band("false");
  REQUIRE(none);
  CHECK(none->empty);
  auto contradiction = band("(kv_idx - q_idx > 5) & (kv_idx - q_idx < 3)");
  REQUIRE(contradiction);
  CHECK(contradiction->empty);
  auto diagonal = band("kv_idx == q_idx");
  REQUIRE(diagonal);
  CHECK(diagonal->lo == 0);
  CHECK(diagonal->hi == 0);
  auto shifted = band("(kv_idx + 3 > q_idx) & ~(kv_idx >= q_idx + 8) & true");
  REQUIRE(shifted);
  CHECK(shifted->lo == -2);
  CHECK(shifted->hi == 7);
  auto br_window = band("(kv_idx - q_idx - seqlen_k + seqlen_q <= 0) & (q_idx + seqlen_k - seqlen_q - kv_idx < 256)");
  REQUIRE(br_window);
  CHECK(br_window->lo == -255);
  CHECK(br_window->hi == 0);
  CHECK(br_window->bottom_right);
  // not bands
  for (const char* text : {"q_idx % 2 == 0", "kv_idx <= 2 * q_idx", "(q_idx >= kv_idx) & (kv_idx <= q_idx + seqlen_k - seqlen_q)",
                           "(q_idx >= kv_idx) | (q_idx - kv_idx < 1024)", "kv_idx != q_idx", "~(kv_idx == q_idx)",
                           "float(kv_idx) <= float(q_idx)", "kv_idx <= q_idx + h", "kv_idx <= q_idx + seqlen_k",
                           "kv_idx < 64", "~((q_idx >= kv_idx) & (kv_idx > 3))", "(q_idx >= kv_idx) ^ true",
                           "where(true, q_idx >= kv_idx, false)", "kv_idx <= doc[q_idx]", "kv_idx * kv_idx <= q_idx",
                           "(q_idx >= kv_idx) == true",
                           // coefficients beyond 2^40 (and products that would overflow 64 bits)
                           "kv_idx * 524288 * 1048576 * 2147483647 <= q_idx",
                           "kv_idx * (1048576 * 1048576 - 1) * (1048576 * 1048576 - 1) - q_idx <= 0"}) {
    INFO(text);
    CHECK_FALSE(band(text));
  }
  // int expressions are not masks
  CHECK_FALSE(band("kv_idx - q_idx"));
}

TEST_CASE("expr: a recognised band computes the mask", "[expr]") {
  std::mt19937_64 rng(4242);
  const Context m = mask_ctx();
  std::string report;
  int failures = 0, empties = 0;
  const int lens[] = {1, 2, 5, 17, 32, 40};
  for (int trial = 0; trial < 400; ++trial) {
    const bool bottom_right = trial % 2 == 1;
    const std::string text = random_band_expr(rng, bottom_right, 3);
    const Expr e = parse(text, m);
    const auto band = as_band(e);
    if (!band) {
      if (failures++ < 8) report += "not recognised: " + text + "\n";
      continue;
    }
    empties += band->empty;
    if (has(text, "q_idx") && band->bottom_right != bottom_right && failures++ < 8)
      report += "wrong alignment: " + text + "\n";
    for (int sq : lens)
      for (int sk : lens) {
        if (rng() % 3 != 0 && sq != sk) continue;
        Env env;
        env.seqlen_q = sq, env.seqlen_k = sk;
        bool bad = false;
        for (int q = 0; q < sq && !bad; ++q)
          for (int kv = 0; kv < sk && !bad; ++kv) {
            env.q_idx = q, env.kv_idx = kv;
            const int64_t d = int64_t(kv) - q - (band->bottom_right ? int64_t(sk) - sq : 0);
            const bool want = !band->empty && (!band->lo || d >= *band->lo) && (!band->hi || d <= *band->hi);
            if (eval_mask(e, env) != want) {
              bad = true;
              if (failures++ < 8)
                report += "band " + std::string(band->lo ? std::to_string(*band->lo) : "-") + ".." +
                          (band->hi ? std::to_string(*band->hi) : "-") + (band->empty ? " empty" : "") +
                          " disagrees at q " + std::to_string(q) + " kv " + std::to_string(kv) + " seqlens " +
                          std::to_string(sq) + ", " + std::to_string(sk) + ": " + text + "\n";
            }
          }
      }
  }
  INFO(report);
  CHECK(failures == 0);
  CHECK(empties > 0);
  CHECK(empties < 200);
}

TEST_CASE("expr: a band whose 32-bit arithmetic may wrap is caught by may_wrap", "[expr]") {
  // as_band computes without wrapping; the runtime refuses a band mask that may_wrap() flags
  // (runtime/src/validate_args.cpp), so the two never disagree at run time.
  const Context m = mask_ctx();
  const Expr e = parse("kv_idx <= q_idx + 2147483647", m);
  REQUIRE(as_band(e));
  Env env;
  env.q_idx = 1, env.kv_idx = 0, env.seqlen_q = 2, env.seqlen_k = 2;
  CHECK_FALSE(eval_mask(e, env));  // 1 + 2147483647 wraps
  CHECK(may_wrap(e, make_box(0, 1, 0, 1, 2, 2)));
  CHECK_FALSE(may_wrap(e, make_box(0, 0, 0, 1, 1, 2)));
}

// =============================================================================================
TEST_CASE("expr: check_capture_bounds", "[expr]") {
  const std::vector<CaptureDecl> decls = {{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f32, 2}};
  const Context m = mask_ctx(decls);
  std::vector<int32_t> doc(100, 0);
  std::vector<float> bias(16 * 16, 0.f);
  auto host = [&](int64_t doc_size) {
    std::vector<HostCapture> c(2);
    c[0].data = doc.data(), c[0].dtype = CaptureDType::i32, c[0].rank = 1, c[0].sizes[0] = doc_size, c[0].strides[0] = 1;
    c[1].data = bias.data(), c[1].dtype = CaptureDType::f32, c[1].rank = 2;
    c[1].sizes[0] = 16, c[1].sizes[1] = 16, c[1].strides[0] = 16, c[1].strides[1] = 1;
    return c;
  };
  const Box box = make_box(0, 99, 0, 99, 100, 100);
  auto bounds_error = [&](const std::string& text, int64_t doc_size) -> std::pair<std::string, std::string> {
    try {
      check_capture_bounds(parse(text, m), decls, host(doc_size), box, "mask.expr");
    } catch (const ArgumentError& e) {
      return {e.param(), e.what()};
    }
    return {"", ""};
  };
  CHECK_NOTHROW(check_capture_bounds(parse("doc[q_idx] == doc[kv_idx]", m), decls, host(100), box, "mask.expr"));
  CHECK_NOTHROW(check_capture_bounds(parse("doc[min(q_idx, 49)] == 0", m), decls, host(50), box, "mask.expr"));
  CHECK_NOTHROW(check_capture_bounds(parse("bias[min(max(doc[q_idx], 0), 15), kv_idx % 16] > 0.0", m), decls, host(100),
                                     box, "mask.expr"));
  CHECK_NOTHROW(check_capture_bounds(parse("bias[q_idx // 7, kv_idx // 7] > 0.0", m), decls, host(100), box, "mask.expr"));
  CHECK_NOTHROW(check_capture_bounds(parse("q_idx >= kv_idx", m), decls, host(100), box, "mask.expr"));
  // beyond the size
  auto [param, what] = bounds_error("doc[q_idx] == doc[kv_idx]", 50);
  CHECK(param == "captures.doc");
  CHECK_THAT(what, fj_contains("mask.expr"));
  CHECK_THAT(what, fj_contains("0..99"));
  CHECK_THAT(what, fj_contains("size 50"));
  std::tie(param, what) = bounds_error("doc[q_idx - 1] == 0", 100);
  CHECK(param == "captures.doc");
  CHECK_THAT(what, fj_contains("-1..98"));
  std::tie(param, what) = bounds_error("bias[0, kv_idx] > 0.0", 100);
  CHECK(param == "captures.bias");
  CHECK_THAT(what, fj_contains("dimension 1"));
  // data-dependent index: unbounded
  std::tie(param, what) = bounds_error("bias[doc[q_idx], 0] > 0.0", 100);
  CHECK(param == "captures.bias");
  CHECK_THAT(what, fj_contains("not bounded"));
  // an index that may wrap
  std::tie(param, what) = bounds_error("doc[min(q_idx * 100000000, 99)] == 0", 100);
  CHECK(param == "captures.doc");
  // an index in a branch that is never taken is still checked (conservative)
  std::tie(param, what) = bounds_error("where(q_idx < 100, 0, doc[q_idx + 1000]) == 0", 100);
  CHECK(param == "captures.doc");
}

TEST_CASE("expr: may_wrap", "[expr]") {
  const Context m = mask_ctx({{"doc", CaptureDType::i32, 1}});
  const Box big = make_box(0, 99999, 0, 99999, 100000, 100000);
  CHECK(may_wrap(parse("q_idx * 100000 > 0", m), big));
  CHECK_FALSE(may_wrap(parse("q_idx + 1 > 0", m), big));
  CHECK_FALSE(may_wrap(parse("q_idx * 100000 > 0", m), make_box(0, 9, 0, 9, 10, 10)));
  CHECK(may_wrap(parse("q_idx + 2147483647 > 0", m), big));
  CHECK(may_wrap(parse("-(q_idx - 2147483647 - 1) > 0", m), big));
  CHECK_FALSE(may_wrap(parse("q_idx - kv_idx + seqlen_k - seqlen_q <= 0", m), big));
  // a tensor's values are unbounded, but reading them is not a wrap
  CHECK_FALSE(may_wrap(parse("doc[q_idx] == 0", m), big));
  CHECK_FALSE(may_wrap(parse("float(q_idx) * 1e30 > 0.0", m), big));
}

// =============================================================================================
TEST_CASE("expr: emitted CUDA calls the expected helpers", "[expr]") {
  const std::vector<CaptureDecl> decls = {{"doc", CaptureDType::i32, 1}, {"bias", CaptureDType::f16, 2}};
  const std::vector<CaptureDType> dtypes = {CaptureDType::i32, CaptureDType::f16};
  const Context s = score_ctx(decls);
  auto value = [&](const std::string& t) { return emit_value(parse(t, s), dtypes); };
  auto interval = [&](const std::string& t) { return emit_interval(parse(t, s)); };
  CHECK(value("q_idx + 1 > kv_idx") == "(fj_iadd(q_idx, 1) > kv_idx)");
  CHECK(has(value("doc[q_idx] == doc[kv_idx]"), "fj_read_i32(params.caps[0], q_idx)"));
  CHECK(has(value("doc[q_idx] == doc[kv_idx]"), "fj_read_i32(params.caps[0], kv_idx)"));
  CHECK(has(value("bias[q_idx, kv_idx] > 0.0"), "fj_read_f16(params.caps[1], q_idx, kv_idx)"));
  CHECK(has(value("kv_idx <= q_idx + seqlen_k - seqlen_q"), "params.seqlen_k"));
  CHECK(has(value("q_idx * 3 - kv_idx // 2 % 4"), "fj_isub(fj_imul(q_idx, 3), fj_imod(fj_ifloordiv(kv_idx, 2), 4))"));
  CHECK(has(value("q_idx - -2147483648 > 0"), "(-2147483647 - 1)"));
  CHECK(has(value("q_idx / 2 > 1.5"), "fj_fdiv(fj_i2f(q_idx), fj_i2f(2))"));
  CHECK(has(value("where(score > 0.0, score, -inf)"), "fj_bits_float(0xff800000u)"));
  CHECK(has(value("min(score, 0.0 / 0.0)"), "fj_fmin("));
  CHECK(has(value("int(score) > 0"), "fj_f2i(score)"));
  CHECK(has(value("~(q_idx > 0) ^ true"), "!="));
  CHECK(has(value("tanh(score / 30.0) * 30.0"), "tanhf(fj_fdiv(score, 30.0f))"));
  CHECK(has(interval("q_idx >= kv_idx"), "iv_ige(box.q, box.kv)"));
  CHECK(has(interval("kv_idx <= q_idx + seqlen_k - seqlen_q"), "iv_i(box.seqlen_k)"));
  CHECK(has(interval("doc[q_idx] == 0"), "iv_ieq(iv_i_any(), iv_i(0))"));
  CHECK(has(interval("bias[q_idx, kv_idx] > 0.5"), "iv_fgt(iv_f_any(), iv_f(0.5f))"));
  CHECK(has(interval("(q_idx >= kv_idx) & ~(b == 0) | (h != 1)"), "iv_or(iv_and(iv_ige(box.q, box.kv), iv_not(iv_ieq(box.b, iv_i(0)))), iv_ine(box.h, iv_i(1)))"));
  CHECK(has(interval("where(score > 0.0, 1, 2.5) < 2.0"), "iv_where(iv_fgt(iv_f_any(), iv_f(0.0f)), iv_i2f(iv_i(1)), iv_f(2.5f))"));
  // every emitted expression is balanced and has no "--" (a decrement, not two minuses)
  std::mt19937_64 rng(5);
  const std::vector<CaptureDecl> caps = all_caps();
  std::vector<CaptureDType> all_dtypes;
  for (const CaptureDecl& d : caps) all_dtypes.push_back(d.dtype);
  std::string report;
  for (int i = 0; i < 500; ++i) {
    const std::string t = i % 2 ? random_score_expr(rng, caps, 4, 5) : random_mask_expr(rng, caps, 4, 5);
    const Expr e = parse(t, score_ctx(caps));
    for (const std::string& code : {emit_value(e, all_dtypes), emit_interval(e)}) {
      int depth = 0;
      bool balanced = true;
      for (char c : code) {
        depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        balanced = balanced && depth >= 0;
      }
      if ((!balanced || depth != 0 || has(code, "--")) && report.size() < 2000)
        report += t + "\n  -> " + code + "\n";
    }
  }
  INFO(report);
  CHECK(report.empty());
  CHECK(emit_value(parse("-(-0.0) < 1.0", s), dtypes).find("--") == std::string::npos);
}
