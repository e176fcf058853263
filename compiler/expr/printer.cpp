// The canonical text of an expression: single spaces around binary operators, the fewest
// parentheses that give back the same tree, floats printed exactly. It is part of the
// kernel key, so two spellings of one expression share a kernel.
#include <fmt/format.h>

#include <cmath>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

// Binding strength, loosest first; atoms (leaves, calls, reads) bind tightest.
int precedence(Kind k) {
  switch (k) {
    case Kind::logical_or: return 1;
    case Kind::logical_xor: return 2;
    case Kind::logical_and: return 3;
    case Kind::eq: case Kind::ne: case Kind::lt: case Kind::le: case Kind::gt: case Kind::ge: return 4;
    case Kind::add: case Kind::sub: return 5;
    case Kind::mul: case Kind::div: case Kind::floordiv: case Kind::mod: return 6;
    case Kind::neg: case Kind::logical_not: return 7;
    default: return 8;
  }
}

const char* function_name(Kind k) {
  switch (k) {
    case Kind::where: return "where";
    case Kind::min: return "min";
    case Kind::max: return "max";
    case Kind::abs: return "abs";
    case Kind::exp: return "exp";
    case Kind::log: return "log";
    case Kind::tanh: return "tanh";
    case Kind::sigmoid: return "sigmoid";
    case Kind::sqrt: return "sqrt";
    case Kind::to_float: return "float";
    case Kind::to_int: return "int";
    default: return nullptr;
  }
}

class Printer {
 public:
  Printer(const Expr& e, const std::vector<CaptureDecl>& caps) : e_(e), caps_(caps) {}

  std::string node(int i) const {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    switch (n.kind) {
      case Kind::lit_bool: return n.ival ? "true" : "false";
      case Kind::lit_int: return std::to_string(n.ival);
      case Kind::lit_float: return float_text(n.fval);
      case Kind::var: return to_string(n.var);
      case Kind::read: {
        std::string s = caps_.at(static_cast<size_t>(n.capture)).name + "[";
        for (size_t a = 0; a < n.args.size(); ++a) s += (a ? ", " : "") + node(n.args[a]);
        return s + "]";
      }
      case Kind::neg: {
        // A minus right before a number is part of the literal when parsed (-5 is one
        // lit_int), so a negated literal that does not print with its own minus keeps its
        // parentheses: -(5), -(2.5), -(inf); --5 and --0.0 are already negations of -5, -0.0
        // (and need no extra nesting level, which could exceed kMaxDepth).
        // The int 0 is its own negation as a literal: --0 is neg(0) with no extra level,
        // where -(0) would need one more than the "--0" it may have been parsed from.
        const Node& a = e_.nodes[static_cast<size_t>(n.args[0])];
        if (a.kind == Kind::lit_int && a.ival == 0) return "--0";
        const bool unsigned_literal = (a.kind == Kind::lit_int && a.ival >= 0) ||
                                      (a.kind == Kind::lit_float && !std::signbit(a.fval));
        if (unsigned_literal) return "-(" + node(n.args[0]) + ")";
        return "-" + operand(n.args[0], 7, false);
      }
      case Kind::logical_not: return "~" + operand(n.args[0], 7, false);
      default: break;
    }
    if (const char* op = operator_text(n.kind)) {
      const int p = precedence(n.kind);
      return operand(n.args[0], p, false) + " " + op + " " + operand(n.args[1], p, true);
    }
    std::string s = std::string(function_name(n.kind)) + "(";
    for (size_t a = 0; a < n.args.size(); ++a) s += (a ? ", " : "") + node(n.args[a]);
    return s + ")";
  }

  // Floats as %.9g (exact for a float), always with a '.' or an exponent.
  static std::string float_text(double v) {
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::string s = fmt::format("{:.9g}", v);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }

 private:
  const Expr& e_;
  const std::vector<CaptureDecl>& caps_;

  // Left operands need parentheses when they bind looser than the operator; right operands
  // also when they bind equally (the tree is left-nested), and comparisons never chain.
  std::string operand(int i, int parent, bool right) const {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    const int p = precedence(n.kind);
    const bool parens = p < parent || (p == parent && (right || parent == 4));
    const std::string s = node(i);
    return parens ? "(" + s + ")" : s;
  }
};

}  // namespace

const char* operator_text(Kind k) {
  switch (k) {
    case Kind::logical_or: return "|";
    case Kind::logical_xor: return "^";
    case Kind::logical_and: return "&";
    case Kind::eq: return "==";
    case Kind::ne: return "!=";
    case Kind::lt: return "<";
    case Kind::le: return "<=";
    case Kind::gt: return ">";
    case Kind::ge: return ">=";
    case Kind::add: return "+";
    case Kind::sub: return "-";
    case Kind::mul: return "*";
    case Kind::div: return "/";
    case Kind::floordiv: return "//";
    case Kind::mod: return "%";
    default: return nullptr;
  }
}

std::string print(const Expr& e, const std::vector<CaptureDecl>& captures) {
  if (e.nodes.empty()) return "";
  return Printer(e, captures).node(static_cast<int>(e.nodes.size()) - 1);
}

}  // namespace flashjit::expr
