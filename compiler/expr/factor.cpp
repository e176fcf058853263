// Hoisting for the kernels' element loops. A lane of a score tile holds a few query rows and
// a few key columns; a mask or score expression evaluated per element repeats, for every
// element, whatever depends only on its row or only on its column (`doc[q_idx]`,
// `slopes[h]`, `float(kv_idx)`). Factoring computes those parts once per row and once per
// column, so the element itself is a handful of register operations.
#include <algorithm>
#include <cstdlib>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

bool is_leaf(const Node& n) {
  return n.kind == Kind::lit_bool || n.kind == Kind::lit_int || n.kind == Kind::lit_float || n.kind == Kind::var;
}

Node make_node(Kind kind, Type type, std::vector<int> args, int pos) {
  Node n;
  n.kind = kind;
  n.type = type;
  n.args = std::move(args);
  n.pos = pos;
  return n;
}

Scope join(Scope a, Scope b) {
  if (a == b || b == Scope::cta) return a;
  if (a == Scope::cta) return b;
  return Scope::elem;  // row with col, or anything with elem
}

// Copies nodes into a new post-order vector, remapping argument indices.
class Builder {
 public:
  int add(Node n) {
    out_.nodes.push_back(std::move(n));
    return static_cast<int>(out_.nodes.size()) - 1;
  }
  int to_float(int arg, int pos) { return add(make_node(Kind::to_float, Type::floating, {arg}, pos)); }
  const Node& at(int i) const { return out_.nodes[static_cast<size_t>(i)]; }
  Expr take() { return std::move(out_); }

 private:
  Expr out_;
};

// Leaves of an int sum that float(...) may split: q_idx, kv_idx, and small literals.
// Appends (node, sign) pairs; false when `i` is not such a sum or has too many terms.
bool sum_terms(const Expr& e, int i, int sign, std::vector<std::pair<int, int>>& terms) {
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.type != Type::integer || terms.size() > 4) return false;
  switch (n.kind) {
    case Kind::var:
      if (n.var != Var::q_idx && n.var != Var::kv_idx) return false;
      terms.push_back({i, sign});
      return terms.size() <= 4;
    case Kind::lit_int:
      if (std::llabs(n.ival) > kNarrowIndexLimit) return false;
      terms.push_back({i, sign});
      return terms.size() <= 4;
    case Kind::add: return sum_terms(e, n.args[0], sign, terms) && sum_terms(e, n.args[1], sign, terms);
    case Kind::sub: return sum_terms(e, n.args[0], sign, terms) && sum_terms(e, n.args[1], -sign, terms);
    case Kind::neg: return sum_terms(e, n.args[0], -sign, terms);
    default: return false;
  }
}

}  // namespace

bool arg_is_float_operand(const Expr& e, const Node& n, size_t k) {
  auto t = [&](size_t j) { return e.nodes[static_cast<size_t>(n.args[j])].type; };
  const bool ints = n.args.size() == 2 && t(0) == Type::integer && t(1) == Type::integer;
  switch (n.kind) {
    case Kind::add:
    case Kind::sub:
    case Kind::mul:
    case Kind::floordiv:
    case Kind::mod:
    case Kind::min:
    case Kind::max: return !ints;
    case Kind::div:
    case Kind::exp:
    case Kind::log:
    case Kind::tanh:
    case Kind::sigmoid:
    case Kind::sqrt:
    case Kind::to_float: return true;
    case Kind::eq:
    case Kind::ne:
    case Kind::lt:
    case Kind::le:
    case Kind::gt:
    case Kind::ge: return t(0) != Type::boolean && !ints;
    case Kind::where: return n.type == Type::floating && k > 0;
    default: return false;
  }
}

std::vector<Scope> node_scopes(const Expr& e) {
  std::vector<Scope> s(e.nodes.size(), Scope::cta);
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const Node& n = e.nodes[i];
    if (n.kind == Kind::var) {
      s[i] = n.var == Var::q_idx ? Scope::row : n.var == Var::kv_idx ? Scope::col : n.var == Var::score ? Scope::elem
                                                                                                          : Scope::cta;
      continue;
    }
    for (int a : n.args) s[i] = join(s[i], s[static_cast<size_t>(a)]);
  }
  return s;
}

Expr explicit_conversions(const Expr& e) {
  Builder b;
  std::vector<int> map(e.nodes.size());
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    Node n = e.nodes[i];
    for (size_t k = 0; k < n.args.size(); ++k) {
      const int a = map[static_cast<size_t>(n.args[k])];
      const bool convert = n.kind != Kind::to_float && arg_is_float_operand(e, e.nodes[i], k) &&
                           b.at(a).type != Type::floating;
      n.args[k] = convert ? b.to_float(a, b.at(a).pos) : a;
    }
    map[i] = b.add(std::move(n));
  }
  return b.take();
}

std::optional<Expr> split_index_conversions(const Expr& e) {
  const std::vector<Scope> scope = node_scopes(e);
  Builder b;
  std::vector<int> map(e.nodes.size());
  bool split = false;
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const Node& n = e.nodes[i];
    std::vector<std::pair<int, int>> terms;
    if (n.kind == Kind::to_float && !n.args.empty() && scope[static_cast<size_t>(n.args[0])] == Scope::elem &&
        sum_terms(e, n.args[0], 1, terms)) {
      // float(t0 ± t1 ± ...) = float(t0) ± float(t1) ± ...: every partial sum is an integer of
      // magnitude below 4 * 2^22 = 2^24, so each float operation is exact.
      int acc = -1;
      for (const auto& [leaf, sign] : terms) {
        const int f = b.to_float(map[static_cast<size_t>(leaf)], e.nodes[static_cast<size_t>(leaf)].pos);
        if (acc < 0) {
          if (sign > 0) {
            acc = f;
          } else {
            acc = b.add(make_node(Kind::neg, Type::floating, {f}, n.pos));
          }
          continue;
        }
        acc = b.add(make_node(sign > 0 ? Kind::add : Kind::sub, Type::floating, {acc, f}, n.pos));
      }
      map[i] = acc;
      split = true;
      continue;
    }
    Node copy = n;
    for (int& a : copy.args) a = map[static_cast<size_t>(a)];
    map[i] = b.add(std::move(copy));
  }
  if (!split) return std::nullopt;
  return b.take();
}

std::vector<Hoisted> hoisted_terms(const Expr& e) {
  const std::vector<Scope> scope = node_scopes(e);
  std::vector<bool> hoist(e.nodes.size(), false);
  auto consider = [&](int i) {
    const Node& n = e.nodes[static_cast<size_t>(i)];
    if (!is_leaf(n) && scope[static_cast<size_t>(i)] != Scope::elem) hoist[static_cast<size_t>(i)] = true;
  };
  for (size_t i = 0; i < e.nodes.size(); ++i)
    if (scope[i] == Scope::elem)
      for (int a : e.nodes[i].args) consider(a);
  consider(static_cast<int>(e.nodes.size()) - 1);
  std::vector<Hoisted> out;
  for (size_t i = 0; i < e.nodes.size(); ++i)
    if (hoist[i]) out.push_back({static_cast<int>(i), scope[i] == Scope::col ? Scope::col : Scope::row});
  return out;
}

}  // namespace flashjit::expr
