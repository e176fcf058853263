// d score_mod / d score, symbolically: the backward pass multiplies the gradient of the
// modified score by it (dS = dW * score_mod'(score)). Built as text from the canonical
// printer's text of each subtree, with 0 and 1 folded away, then parsed again: the parser
// type-checks the result, so a rule that built a wrong expression fails loudly here.
//
// Conventions where the function has no derivative (as torch's autograd does):
//   int-valued nodes, floor division, casts and comparisons: 0 (piecewise constant);
//   min(a, b) takes a's derivative on ties (a <= b), max(a, b) likewise (a >= b);
//   abs(x): 0 at x == 0;  where(c, a, b): where(c, a', b').
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

class Deriver {
 public:
  // target -1: d / d score; else d / d (the value read by node `target`, a read).
  Deriver(const Expr& e, const std::vector<CaptureDecl>& caps, int target = -1) : e_(e), caps_(caps), target_(target) {}

  // nullopt: the derivative is 0. Memoised per node (the tree is a DAG of indices).
  std::optional<std::string> d(int i) {
    if (memo_.size() < e_.nodes.size()) memo_.resize(e_.nodes.size()), done_.resize(e_.nodes.size(), false);
    if (done_[static_cast<size_t>(i)]) return memo_[static_cast<size_t>(i)];
    std::optional<std::string> r = rule(i);
    memo_[static_cast<size_t>(i)] = r;
    done_[static_cast<size_t>(i)] = true;
    return r;
  }

 private:
  const Expr& e_;
  const std::vector<CaptureDecl>& caps_;
  const int target_;
  std::vector<std::optional<std::string>> memo_;
  std::vector<bool> done_;

  // The canonical text of node i's subtree, parenthesised.
  std::string v(int i) const { return "(" + print(subtree(e_, i), caps_) + ")"; }

 public:
  // Node i's subtree as an expression of its own.
  static Expr subtree(const Expr& e_, int i) {
    Expr sub;
    std::vector<int> remap(e_.nodes.size(), -1);
    std::vector<int> stack = {i}, order;
    std::vector<bool> seen(e_.nodes.size(), false);
    // Post-order of the subtree: indices only decrease along arguments, so sorting the
    // reachable set ascending is a valid post-order.
    while (!stack.empty()) {
      const int n = stack.back();
      stack.pop_back();
      if (seen[static_cast<size_t>(n)]) continue;
      seen[static_cast<size_t>(n)] = true;
      for (int a : e_.nodes[static_cast<size_t>(n)].args) stack.push_back(a);
    }
    for (size_t n = 0; n < e_.nodes.size(); ++n)
      if (seen[n]) {
        Node copy = e_.nodes[n];
        for (int& a : copy.args) a = remap[static_cast<size_t>(a)];
        remap[n] = static_cast<int>(sub.nodes.size());
        sub.nodes.push_back(copy);
      }
    return sub;
  }

 private:

  static std::string mul(const std::optional<std::string>& a, const std::string& b) {
    return *a == "1.0" ? b : "(" + *a + " * " + b + ")";
  }

  std::optional<std::string> rule(int i) {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    if (n.type != Type::floating) return std::nullopt;  // bools and ints are piecewise constant
    if (i == target_) return std::optional<std::string>("1.0");
    auto arg = [&](size_t k) { return n.args[k]; };
    switch (n.kind) {
      case Kind::var: return n.var == Var::score && target_ < 0 ? std::optional<std::string>("1.0") : std::nullopt;
      case Kind::lit_float:
      case Kind::read:
      case Kind::floordiv:
      case Kind::to_float:
        return std::nullopt;
      case Kind::neg: {
        auto d0 = d(arg(0));
        return d0 ? std::optional<std::string>("(-" + *d0 + ")") : std::nullopt;
      }
      case Kind::add:
      case Kind::sub: {
        auto d0 = d(arg(0)), d1 = d(arg(1));
        const char* op = n.kind == Kind::add ? " + " : " - ";
        if (!d0 && !d1) return std::nullopt;
        if (!d1) return d0;
        if (!d0) return n.kind == Kind::add ? d1 : std::optional<std::string>("(-" + *d1 + ")");
        return "(" + *d0 + op + *d1 + ")";
      }
      case Kind::mul: {
        auto d0 = d(arg(0)), d1 = d(arg(1));
        if (!d0 && !d1) return std::nullopt;
        if (!d1) return mul(d0, v(arg(1)));
        if (!d0) return mul(d1, v(arg(0)));
        return "(" + mul(d0, v(arg(1))) + " + " + mul(d1, v(arg(0))) + ")";
      }
      case Kind::div: {  // (a / b)' = a' / b - a b' / b^2
        auto d0 = d(arg(0)), d1 = d(arg(1));
        if (!d0 && !d1) return std::nullopt;
        const std::string b = v(arg(1));
        std::string s;
        if (d0) s = "(" + *d0 + " / " + b + ")";
        if (d1) s = (s.empty() ? "(-" : "(" + s + " - ") + "(" + v(arg(0)) + " * " + *d1 + ") / (" + b + " * " + b + "))";
        return s;
      }
      case Kind::mod: {  // a - floor(a / b) * b
        auto d0 = d(arg(0)), d1 = d(arg(1));
        if (!d0 && !d1) return std::nullopt;
        std::string s = d0 ? *d0 : "0.0";
        if (d1) s = "(" + s + " - (" + v(arg(0)) + " // " + v(arg(1)) + ") * " + *d1 + ")";
        return s;
      }
      case Kind::where: {
        auto d1 = d(arg(1)), d2 = d(arg(2));
        if (!d1 && !d2) return std::nullopt;
        return "where(" + v(arg(0)) + ", " + d1.value_or("0.0") + ", " + d2.value_or("0.0") + ")";
      }
      case Kind::min:
      case Kind::max: {
        auto d0 = d(arg(0)), d1 = d(arg(1));
        if (!d0 && !d1) return std::nullopt;
        const char* op = n.kind == Kind::min ? " <= " : " >= ";
        return "where(" + v(arg(0)) + op + v(arg(1)) + ", " + d0.value_or("0.0") + ", " + d1.value_or("0.0") + ")";
      }
      case Kind::abs: {
        auto d0 = d(arg(0));
        if (!d0) return std::nullopt;
        const std::string x = v(arg(0));
        return "where(" + x + " > 0.0, " + *d0 + ", where(" + x + " < 0.0, -" + *d0 + ", 0.0))";
      }
      case Kind::exp: {
        auto d0 = d(arg(0));
        if (!d0) return std::nullopt;
        return mul(d0, "exp(" + v(arg(0)) + ")");
      }
      case Kind::log: {
        auto d0 = d(arg(0));
        return d0 ? std::optional<std::string>("(" + *d0 + " / " + v(arg(0)) + ")") : std::nullopt;
      }
      case Kind::tanh: {
        auto d0 = d(arg(0));
        if (!d0) return std::nullopt;
        const std::string t = "tanh(" + v(arg(0)) + ")";
        return mul(d0, "(1.0 - " + t + " * " + t + ")");
      }
      case Kind::sigmoid: {
        auto d0 = d(arg(0));
        if (!d0) return std::nullopt;
        const std::string s = "sigmoid(" + v(arg(0)) + ")";
        return mul(d0, "(" + s + " * (1.0 - " + s + "))");
      }
      case Kind::sqrt: {
        auto d0 = d(arg(0));
        return d0 ? std::optional<std::string>("(" + *d0 + " / (2.0 * sqrt(" + v(arg(0)) + ")))") : std::nullopt;
      }
      default:
        return std::nullopt;
    }
  }
};

}  // namespace

std::string score_derivative_text(const Expr& e, const std::vector<CaptureDecl>& captures) {
  std::optional<std::string> d = Deriver(e, captures).d(static_cast<int>(e.nodes.size()) - 1);
  return d ? *d : "0.0";
}

namespace {
// A derivative past the language's limits (text, nodes, depth) is the user's expression's
// problem: ExprError. Any other parse failure is a wrong rule here: logic_error.
Expr parse_derivative(const std::string& text, const std::vector<CaptureDecl>& captures) {
  if (text.size() > static_cast<size_t>(kMaxTextBytes))
    throw ExprError(0, "its derivative (for the backward pass) is too long: " + std::to_string(text.size()) +
                           " bytes; at most " + std::to_string(kMaxTextBytes));
  try {
    return parse(text, Context{true, captures});
  } catch (const ExprError& e) {
    const std::string why = e.reason();
    if (why.find("nodes") != std::string::npos || why.find("levels deep") != std::string::npos ||
        why.find("bytes") != std::string::npos)
      throw ExprError(0, "its derivative (for the backward pass) is too large: " + why);
    throw std::logic_error("score_derivative built an expression that does not parse: " + text + ": " + why);
  }
}
}  // namespace

Expr score_derivative(const Expr& e, const std::vector<CaptureDecl>& captures) {
  return parse_derivative(score_derivative_text(e, captures), captures);
}

std::vector<ReadGradient> read_gradients(const Expr& e, const std::vector<CaptureDecl>& captures) {
  std::vector<ReadGradient> out;
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const Node& n = e.nodes[i];
    if (n.kind != Kind::read || n.type != Type::floating) continue;
    std::optional<std::string> d = Deriver(e, captures, static_cast<int>(i)).d(static_cast<int>(e.nodes.size()) - 1);
    if (!d) continue;  // the value does not reach the result through a differentiable path
    ReadGradient g;
    g.capture = n.capture;
    for (int a : n.args) g.index.push_back(Deriver::subtree(e, a));
    g.derivative = parse_derivative(*d, captures);
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace flashjit::expr
