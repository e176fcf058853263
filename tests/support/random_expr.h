// Deterministic random expressions of the mask / score language (docs/expressions.md), as
// TEXT, for the unit tests (tests/unit/test_expr.cpp) and the GPU tests.
//
//   std::mt19937_64 rng(seed);
//   std::string m = flashjit::testing::random_mask_expr(rng, caps, /*capture_size=*/8, /*max_depth=*/5);
//   std::string s = flashjit::testing::random_score_expr(rng, caps, 8, 5);
//   std::string band = flashjit::testing::random_band_expr(rng, /*bottom_right=*/true, 3);
//
// The expressions are type-correct by construction (a mask is a bool, a score modification a
// float), stay within the parser's limits (text size, depth, node count) and read captured
// tensors only with indices clamped into 0 .. capture_size-1 (every dimension of every
// capture has capture_size elements), e.g. doc[min(max(q_idx + 3, 0), 7)], so the reads are
// in range at every index (the clamp may contain other captured reads: data-dependent but
// still in range). Masks mix the shapes real masks have: bands of kv_idx - q_idx against
// constants (top-left and bottom-right), documents (q_idx // W == kv_idx // W, doc[q] ==
// doc[kv]), modulo patterns, prefixes, with random arithmetic, functions, where and casts
// around them, so over a tile the result is sometimes never, sometimes always and sometimes
// mixed. The same seed gives the same text on every platform (only std::mt19937_64's
// outputs are used, never the distributions of the standard library, whose algorithms are
// implementation-defined).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit::testing {

class RandomExprGen {
 public:
  RandomExprGen(std::mt19937_64& rng, const std::vector<expr::CaptureDecl>& caps, int capture_size, bool allow_score,
                int node_budget = 100)
      : rng_(rng), caps_(caps), size_(std::max(1, capture_size)), score_(allow_score), budget_(node_budget) {}

  // Expressions of each type; `depth` is how many more levels of operators may nest.
  std::string boolean(int depth) {
    depth = std::min(depth, kMaxGenDepth);
    if (depth <= 0 || budget_ <= 0) return bool_leaf();
    switch (below(12)) {
      case 0:
      case 1: return pattern(depth);
      case 2: {  // int comparison
        const std::string a = integer(depth - 1), b = integer(depth - 1);
        return paren(a) + " " + cmp_op() + " " + paren(b);
      }
      case 3: {  // a comparison with a float side
        spend(1);
        const bool left_int = coin(0.3);
        const std::string a = left_int ? integer(depth - 1) : floating(depth - 1);
        const std::string b = floating(depth - 1);
        return paren(a) + " " + cmp_op() + " " + paren(b);
      }
      case 4:
      case 5:
      case 6: {
        spend(1);
        static const char* const ops[] = {"&", "|", "^", "&"};
        return paren(boolean(depth - 1)) + " " + ops[below(4)] + " " + paren(boolean(depth - 1));
      }
      case 7: spend(1); return "~" + paren(boolean(depth - 1));
      case 8: spend(1); return paren(boolean(depth - 1)) + (coin(0.5) ? " == " : " != ") + paren(boolean(depth - 1));
      case 9: {
        spend(1);
        const std::string c = boolean(depth - 1), a = boolean(depth - 1), b = boolean(depth - 1);
        return "where(" + c + ", " + a + ", " + b + ")";
      }
      case 10: {
        const int cap = capture_of(expr::Type::boolean);
        if (cap >= 0) return read(cap, depth);
        return pattern(depth);
      }
      default: return pattern(depth);
    }
  }

  std::string integer(int depth) {
    depth = std::min(depth, kMaxGenDepth);
    if (depth <= 0 || budget_ <= 0) return int_leaf();
    switch (below(14)) {
      case 0:
      case 1:
      case 2: {
        spend(1);
        static const char* const ops[] = {"+", "-", "*", "+", "-"};
        return paren(integer(depth - 1)) + " " + ops[below(5)] + " " + paren(integer(depth - 1));
      }
      case 3: {  // // and %: usually by a small positive constant, sometimes by anything
        spend(1);
        const std::string a = integer(depth - 1);
        const std::string d = coin(0.7) ? std::to_string(1 + below(16)) : integer(depth - 1);
        return paren(a) + (coin(0.5) ? " // " : " % ") + paren(d);
      }
      case 4: spend(1); return "-" + paren(integer(depth - 1));
      case 5: {
        spend(1);
        const std::string a = integer(depth - 1), b = integer(depth - 1);
        return std::string(coin(0.5) ? "min(" : "max(") + a + ", " + b + ")";
      }
      case 6: spend(1); return "abs(" + integer(depth - 1) + ")";
      case 7: {
        spend(1);
        const std::string c = boolean(depth - 1), a = integer(depth - 1), b = integer(depth - 1);
        return "where(" + c + ", " + a + ", " + b + ")";
      }
      case 8: spend(1); return "int(" + (coin(0.8) ? floating(depth - 1) : boolean(depth - 1)) + ")";
      case 9: {
        const int cap = capture_of(expr::Type::integer);
        if (cap >= 0) return read(cap, depth);
        return int_leaf();
      }
      case 10: return clamp(integer(depth - 1));
      default: return int_leaf();
    }
  }

  std::string floating(int depth) {
    depth = std::min(depth, kMaxGenDepth);
    if (depth <= 0 || budget_ <= 0) return float_leaf();
    switch (below(14)) {
      case 0:
      case 1:
      case 2: {  // at least one float side (or /, which is float on ints too)
        spend(1);
        static const char* const ops[] = {"+", "-", "*", "/", "//", "%", "+", "*"};
        const char* op = ops[below(8)];
        const int shape = below(3);
        const std::string a = shape == 1 ? integer(depth - 1) : floating(depth - 1);
        const std::string b = shape == 2 && op[0] != '/' && op[0] != '%' ? integer(depth - 1) : floating(depth - 1);
        return paren(a) + " " + op + " " + paren(b);
      }
      case 3: spend(1); return paren(integer(depth - 1)) + " / " + paren(integer(depth - 1));
      case 4: spend(1); return "-" + paren(floating(depth - 1));
      case 5: {
        spend(1);
        const std::string a = floating(depth - 1), b = coin(0.5) ? integer(depth - 1) : floating(depth - 1);
        return std::string(coin(0.5) ? "min(" : "max(") + (coin(0.5) ? a + ", " + b : b + ", " + a) + ")";
      }
      case 6: {
        spend(1);
        static const char* const fns[] = {"abs", "exp", "log", "tanh", "sigmoid", "sqrt"};
        const char* fn = fns[below(6)];
        const bool any_number = fn[0] != 'a';  // abs(int) is an int
        return std::string(fn) + "(" + (any_number && coin(0.3) ? integer(depth - 1) : floating(depth - 1)) + ")";
      }
      case 7: spend(1); return "float(" + (coin(0.8) ? integer(depth - 1) : boolean(depth - 1)) + ")";
      case 8: {
        spend(1);
        const std::string c = boolean(depth - 1), a = floating(depth - 1);
        const std::string b = coin(0.5) ? integer(depth - 1) : floating(depth - 1);
        return "where(" + c + ", " + (coin(0.5) ? a + ", " + b : b + ", " + a) + ")";
      }
      case 9: {
        const int cap = capture_of(expr::Type::floating);
        if (cap >= 0) return read(cap, depth);
        return float_leaf();
      }
      case 10:
        if (score_) {  // the shapes of real score modifications
          spend(3);
          switch (below(4)) {
            case 0: return "score * " + paren(floating(depth - 1));
            case 1: return "score + " + paren(floating(depth - 1));
            case 2: return "tanh(score / 30.0) * 30.0";
            default: return "where(" + boolean(depth - 1) + ", score, -inf)";
          }
        }
        return float_leaf();
      default: return float_leaf();
    }
  }

  int budget_left() const { return budget_; }

 private:
  static constexpr int kMaxGenDepth = 10;  // keeps the parse depth far below kMaxDepth

  std::mt19937_64& rng_;
  const std::vector<expr::CaptureDecl>& caps_;
  int size_;
  bool score_;
  int budget_;  // nodes left before everything new is a leaf

  // Uniform in [0, n) from the raw 64-bit output (portable, unlike std::uniform_int_distribution).
  int below(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  int between(int lo, int hi) { return lo + below(hi - lo + 1); }
  bool coin(double p) { return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p; }
  void spend(int nodes) { budget_ -= nodes; }

  // A composite operand gets parentheses; a single name or a literal sometimes not.
  std::string paren(const std::string& s) {
    bool atom = !s.empty();
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) atom = false;
    return atom && coin(0.7) ? s : "(" + s + ")";
  }
  const char* cmp_op() {
    static const char* const ops[] = {"<", "<=", ">", ">=", "==", "!="};
    return ops[below(6)];
  }
  std::string small_int() {
    static const int specials[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 64, 100, 128, 255, -1, -2, -8, -64};
    if (coin(0.5)) return std::to_string(specials[below(static_cast<int>(sizeof specials / sizeof specials[0]))]);
    return std::to_string(between(-20, 300));
  }

  std::string int_leaf() {
    spend(1);
    switch (below(10)) {
      case 0: return "b";
      case 1: return "h";
      case 2:
      case 3: return "q_idx";
      case 4:
      case 5: return "kv_idx";
      case 6: return coin(0.5) ? "seqlen_q" : "seqlen_k";
      case 7:
        if (coin(0.15)) {  // extremes: overflow, the literal -2147483648
          static const char* const big[] = {"2147483647", "-2147483648", "1000000000", "65536", "-2147483647"};
          return big[below(5)];
        }
        return small_int();
      default: return small_int();
    }
  }
  std::string float_leaf() {
    spend(1);
    if (score_ && coin(0.4)) return "score";
    static const char* const lits[] = {"0.5", "1.0", "2.0", "30.0", "0.125", "1e-3", "1.5e2", "-0.25", "0.0",
                                       "-0.0", "3.0", "-1.0", "0.1", "inf", "-inf", "1e30", "1e-40", "7.25"};
    switch (below(6)) {
      case 0: spend(1); return "float(" + int_leaf() + ")";
      case 1: return coin(0.5) ? "float(q_idx)" : "float(kv_idx)";
      default: return lits[below(static_cast<int>(sizeof lits / sizeof lits[0]))];
    }
  }
  std::string bool_leaf() {
    spend(1);
    switch (below(8)) {
      case 0: return coin(0.5) ? "true" : "false";
      case 1: {
        const int cap = capture_of(expr::Type::boolean);
        if (cap >= 0) return read(cap, 1);
        return "q_idx >= kv_idx";
      }
      case 2: return "q_idx >= kv_idx";
      case 3: spend(2); return "kv_idx - q_idx " + std::string(cmp_op()) + " " + small_int();
      case 4: spend(2); return "kv_idx " + std::string(cmp_op()) + " " + small_int();
      case 5: spend(2); return "q_idx " + std::string(cmp_op()) + " " + small_int();
      case 6: spend(4); return "kv_idx % " + std::to_string(between(1, 8)) + " == " + std::to_string(between(0, 3));
      default: spend(2); return "kv_idx <= q_idx + " + std::to_string(between(-16, 16));
    }
  }

  // The mask shapes of real attention variants, over which tiles are never / always / partly
  // visible; each may carry a random sub-expression.
  std::string pattern(int depth) {
    spend(6);
    const std::string c = std::to_string(between(-40, 40));
    switch (below(13)) {
      case 0: return "kv_idx - q_idx " + std::string(cmp_op()) + " " + c;
      case 1: return "q_idx " + std::string(coin(0.5) ? ">=" : ">") + " kv_idx + " + paren(c);
      case 2: return "kv_idx <= q_idx + seqlen_k - seqlen_q" + (coin(0.5) ? "" : " + " + paren(c));
      case 3:
        return "(q_idx >= kv_idx) & (q_idx - kv_idx < " + std::to_string(between(1, 128)) + ")";
      case 4: {
        const std::string w = std::to_string(between(1, 64));
        return "q_idx // " + w + " == kv_idx // " + w;
      }
      case 5: {  // documents
        const int cap = capture_of(expr::Type::integer);
        if (cap >= 0) return read_at(cap, "q_idx", depth) + " == " + read_at(cap, "kv_idx", depth);
        return "(q_idx // 16 == kv_idx // 16) & (q_idx >= kv_idx)";
      }
      case 6:
        return paren(integer(depth - 1)) + " % " + std::to_string(between(1, 8)) + " " + cmp_op() + " " +
               std::to_string(between(0, 4));
      case 7: return "(q_idx + kv_idx) % " + std::to_string(between(2, 5)) + " == 0";
      case 8: return "(kv_idx < " + std::to_string(between(0, 200)) + ") | (q_idx >= kv_idx)";  // prefix LM
      case 9: return "kv_idx - q_idx >= -(h + 1) * " + std::to_string(between(1, 32));  // per-head window
      case 10: return "(" + pattern(depth - 1) + ") & (" + boolean(depth - 1) + ")";
      case 11: return "abs(q_idx - kv_idx) " + std::string(coin(0.5) ? "<" : ">=") + " " + std::to_string(between(0, 64));
      default: return paren(integer(depth - 1)) + " " + cmp_op() + " " + paren(integer(depth - 1));
    }
  }

  // A capture whose reads have type t, or -1.
  int capture_of(expr::Type t) {
    std::vector<int> fit;
    for (size_t i = 0; i < caps_.size(); ++i) {
      const expr::CaptureDType d = caps_[i].dtype;
      const expr::Type rt = d == expr::CaptureDType::boolean                              ? expr::Type::boolean
                            : d == expr::CaptureDType::i32 || d == expr::CaptureDType::i64 ? expr::Type::integer
                                                                                          : expr::Type::floating;
      if (rt == t) fit.push_back(static_cast<int>(i));
    }
    if (fit.empty()) return -1;
    return fit[static_cast<size_t>(below(static_cast<int>(fit.size())))];
  }
  // min(max(x, 0), size-1): in range whatever x is.
  std::string clamp(const std::string& x) {
    spend(4);
    return "min(max(" + x + ", 0), " + std::to_string(size_ - 1) + ")";
  }
  std::string index(int depth) {
    switch (below(6)) {
      case 0: spend(1); return clamp("q_idx");
      case 1: spend(1); return clamp("kv_idx");
      case 2: spend(3); return clamp(coin(0.5) ? "b + h" : "h");
      case 3: spend(3); return "kv_idx % " + std::to_string(size_);
      default: return clamp(integer(depth - 1));
    }
  }
  std::string read(int cap, int depth) {
    spend(1);
    const expr::CaptureDecl& d = caps_[static_cast<size_t>(cap)];
    std::string s = d.name + "[";
    for (int i = 0; i < d.rank; ++i) s += (i ? ", " : "") + index(depth);
    return s + "]";
  }
  // A read whose first index is `first` (clamped), e.g. doc[q_idx].
  std::string read_at(int cap, const std::string& first, int depth) {
    spend(1);
    const expr::CaptureDecl& d = caps_[static_cast<size_t>(cap)];
    std::string s = d.name + "[" + clamp(first);
    for (int i = 1; i < d.rank; ++i) s += ", " + index(depth);
    return s + "]";
  }
};

// A bool-typed mask over b, h, q_idx, kv_idx, seqlen_q, seqlen_k, constants and `caps`
// (every dimension of every capture has capture_size elements).
inline std::string random_mask_expr(std::mt19937_64& rng, const std::vector<expr::CaptureDecl>& caps, int capture_size,
                                    int max_depth) {
  RandomExprGen g(rng, caps, capture_size, /*allow_score=*/false);
  return g.boolean(max_depth);
}

// A float-typed score modification: uses `score` most of the time.
inline std::string random_score_expr(std::mt19937_64& rng, const std::vector<expr::CaptureDecl>& caps, int capture_size,
                                     int max_depth) {
  RandomExprGen g(rng, caps, capture_size, /*allow_score=*/true);
  if (rng() % 4 == 0) return g.floating(max_depth);
  switch (rng() % 4) {
    case 0: return "score * (" + g.floating(max_depth - 1) + ")";
    case 1: return "score + (" + g.floating(max_depth - 1) + ")";
    case 2: return "where(" + g.boolean(max_depth - 1) + ", score, -inf)";
    default: return "score - (" + g.floating(max_depth - 1) + ")";
  }
}

// A mask of band form (docs/expressions.md, "Band recognition"): a conjunction of 1..max_atoms
// comparisons that each bound kv_idx - q_idx (minus seqlen_k - seqlen_q when bottom_right)
// by a constant in -12..12, in random equivalent spellings (kv_idx <= q_idx + c,
// q_idx - kv_idx > c, ~(kv_idx - q_idx < c), 2 * kv_idx - kv_idx - q_idx == c, ...),
// sometimes with a `true` conjunct. expr::as_band() must recognise every one.
inline std::string random_band_expr(std::mt19937_64& rng, bool bottom_right, int max_atoms) {
  auto below = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const int atoms = 1 + below(std::max(1, max_atoms));
  std::string out;
  for (int a = 0; a < atoms; ++a) {
    std::string atom;
    if (below(10) == 0) {
      atom = "true";
    } else {
      const int c = below(25) - 12;
      const std::string cs = std::to_string(c), neg_cs = std::to_string(-c);
      // op for "kv - q - off OP c"; flip: the op with its sides swapped; negation: ~
      static const char* const ops[] = {"<", "<=", ">", ">=", "==", "<=", ">="};
      const int k = below(7);
      const std::string op = ops[k];
      auto flip = [](const std::string& o) -> std::string {
        if (o == "<") return ">";
        if (o == "<=") return ">=";
        if (o == ">") return "<";
        if (o == ">=") return "<=";
        return o;
      };
      auto negate = [](const std::string& o) -> std::string {
        if (o == "<") return ">=";
        if (o == "<=") return ">";
        if (o == ">") return "<=";
        return "<";  // >=
      };
      const std::string off_minus = bottom_right ? " - seqlen_k + seqlen_q" : "";
      const std::string off_plus = bottom_right ? " + seqlen_k - seqlen_q" : "";
      switch (below(8)) {
        case 0: atom = "kv_idx - q_idx" + off_minus + " " + op + " " + cs; break;
        case 1: atom = "kv_idx " + op + " q_idx + " + (c < 0 ? "(" + cs + ")" : cs) + off_plus; break;
        case 2: atom = "q_idx - kv_idx" + off_plus + " " + flip(op) + " " + neg_cs; break;
        case 3:
          if (op == "==") atom = "kv_idx - q_idx" + off_minus + " == " + cs;
          else atom = "~(kv_idx - q_idx" + off_minus + " " + negate(op) + " " + cs + ")";
          break;
        case 4:
          atom = bottom_right ? "kv_idx + seqlen_q " + op + " q_idx + seqlen_k + " + (c < 0 ? "(" + cs + ")" : cs)
                              : "kv_idx + 5 " + op + " q_idx + " + std::to_string(5 + c);
          break;
        case 5: atom = "2 * kv_idx - kv_idx - q_idx" + off_minus + " " + op + " " + cs; break;
        case 6: atom = "-(q_idx - kv_idx" + off_plus + ") " + op + " " + cs; break;
        default: atom = "q_idx + " + (c < 0 ? "(" + cs + ")" : cs) + off_plus + " " + flip(op) + " kv_idx"; break;
      }
    }
    out += (a ? " & " : "") + ("(" + atom + ")");
  }
  return out;
}

}  // namespace flashjit::testing
