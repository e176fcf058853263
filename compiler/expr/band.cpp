// Band recognition: a mask that is a conjunction of comparisons of kv_idx - q_idx against
// constants (optionally offset by seqlen_k - seqlen_q in every one) is the closed-form band
// that the built-in causal and sliding-window masks compile to, so a user who writes causal
// by hand gets exactly the built-in kernel (tile skipping by closed-form ranges included).
#include <cstdlib>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

// c_kv * kv_idx + c_q * q_idx + c_sk * seqlen_k + c_sq * seqlen_q + c.
struct Linear {
  int64_t kv = 0, q = 0, sk = 0, sq = 0, c = 0;
};

constexpr int64_t kBound = int64_t(1) << 40;  // coefficients stay far from 64-bit overflow

bool small(const Linear& l) {
  return std::llabs(l.kv) < kBound && std::llabs(l.q) < kBound && std::llabs(l.sk) < kBound &&
         std::llabs(l.sq) < kBound && std::llabs(l.c) < kBound;
}

std::optional<Linear> linear(const Expr& e, int i) {
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.type != Type::integer) return std::nullopt;
  Linear r;
  switch (n.kind) {
    case Kind::lit_int: r.c = n.ival; return r;
    case Kind::var:
      switch (n.var) {
        case Var::kv_idx: r.kv = 1; return r;
        case Var::q_idx: r.q = 1; return r;
        case Var::seqlen_k: r.sk = 1; return r;
        case Var::seqlen_q: r.sq = 1; return r;
        default: return std::nullopt;
      }
    case Kind::neg: {
      auto a = linear(e, n.args[0]);
      if (!a) return std::nullopt;
      return Linear{-a->kv, -a->q, -a->sk, -a->sq, -a->c};
    }
    case Kind::add:
    case Kind::sub: {
      auto a = linear(e, n.args[0]), b = linear(e, n.args[1]);
      if (!a || !b) return std::nullopt;
      const int64_t s = n.kind == Kind::add ? 1 : -1;
      Linear l{a->kv + s * b->kv, a->q + s * b->q, a->sk + s * b->sk, a->sq + s * b->sq, a->c + s * b->c};
      if (!small(l)) return std::nullopt;
      return l;
    }
    case Kind::mul: {  // by a constant only
      auto a = linear(e, n.args[0]), b = linear(e, n.args[1]);
      if (!a || !b) return std::nullopt;
      auto is_const = [](const Linear& l) { return l.kv == 0 && l.q == 0 && l.sk == 0 && l.sq == 0; };
      if (!is_const(*a) && !is_const(*b)) return std::nullopt;
      const Linear& k = is_const(*a) ? *a : *b;
      const Linear& x = is_const(*a) ? *b : *a;
      // Each product must stay below kBound; checked before multiplying (both factors can
      // be near 2^40, whose product overflows 64 bits).
      const int64_t f = std::llabs(k.c);
      for (int64_t v : {x.kv, x.q, x.sk, x.sq, x.c})
        if (f != 0 && std::llabs(v) >= kBound / f) return std::nullopt;
      return Linear{x.kv * k.c, x.q * k.c, x.sk * k.c, x.sq * k.c, x.c * k.c};
    }
    default: return std::nullopt;
  }
}

// Adds the bounds of one atom to `band`; false when the atom is not of band form.
bool add_atom(const Expr& e, int i, bool negated, BandForm& band, int& align) {
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.kind == Kind::logical_not) return add_atom(e, n.args[0], !negated, band, align);
  if (n.kind == Kind::lit_bool) {
    if ((n.ival != 0) == negated) band.empty = true;  // false: nothing is visible
    return true;
  }
  Kind k = n.kind;
  if (negated) {
    switch (k) {
      case Kind::lt: k = Kind::ge; break;
      case Kind::le: k = Kind::gt; break;
      case Kind::gt: k = Kind::le; break;
      case Kind::ge: k = Kind::lt; break;
      default: return false;  // ~(a == b) is not a band
    }
  }
  if (k != Kind::lt && k != Kind::le && k != Kind::gt && k != Kind::ge && k != Kind::eq) return false;
  auto a = linear(e, n.args[0]), b = linear(e, n.args[1]);
  if (!a || !b) return false;
  // d = a - b, compared with 0; normalise so that kv_idx has coefficient +1.
  Linear d{a->kv - b->kv, a->q - b->q, a->sk - b->sk, a->sq - b->sq, a->c - b->c};
  if (d.kv == -1) {
    d = Linear{-d.kv, -d.q, -d.sk, -d.sq, -d.c};
    if (k == Kind::lt) k = Kind::gt;
    else if (k == Kind::le) k = Kind::ge;
    else if (k == Kind::gt) k = Kind::lt;
    else if (k == Kind::ge) k = Kind::le;
  }
  if (d.kv != 1 || d.q != -1) return false;
  // kv - q - (sk - sq) is bottom-right: sk = -1, sq = +1; top-left has neither.
  int this_align;
  if (d.sk == 0 && d.sq == 0) this_align = 0;
  else if (d.sk == -1 && d.sq == 1) this_align = 1;
  else return false;
  if (align >= 0 && align != this_align) return false;
  align = this_align;
  // (kv - q - offset) + c  OP  0
  const int64_t c = d.c;
  auto set_hi = [&](int64_t v) { band.hi = band.hi ? std::min(*band.hi, v) : v; };
  auto set_lo = [&](int64_t v) { band.lo = band.lo ? std::max(*band.lo, v) : v; };
  switch (k) {
    case Kind::le: set_hi(-c); break;
    case Kind::lt: set_hi(-c - 1); break;
    case Kind::ge: set_lo(-c); break;
    case Kind::gt: set_lo(-c + 1); break;
    case Kind::eq: set_lo(-c), set_hi(-c); break;
    default: return false;
  }
  return true;
}

}  // namespace

std::optional<BandForm> as_band(const Expr& e) {
  if (e.nodes.empty() || e.type() != Type::boolean) return std::nullopt;
  // Flatten the conjunction tree (an explicit stack: the tree can be deep).
  std::vector<int> atoms, stack{static_cast<int>(e.nodes.size()) - 1};
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    const Node& n = e.nodes[static_cast<size_t>(i)];
    if (n.kind == Kind::logical_and) {
      stack.push_back(n.args[1]);
      stack.push_back(n.args[0]);
    } else {
      atoms.push_back(i);
    }
  }
  BandForm band;
  int align = -1;
  for (int i : atoms)
    if (!add_atom(e, i, false, band, align)) return std::nullopt;
  band.bottom_right = align == 1;
  if (band.lo && band.hi && *band.lo > *band.hi) band.empty = true;
  // Bounds beyond any sequence length are no bounds; keep them within 32 bits for the band.
  constexpr int64_t kFar = int64_t(1) << 31;
  if (band.lo && *band.lo <= -kFar) band.lo.reset();
  if (band.hi && *band.hi >= kFar) band.hi.reset();
  if (band.lo && *band.lo >= kFar) band.empty = true;
  if (band.hi && *band.hi <= -kFar) band.empty = true;
  return band;
}

}  // namespace flashjit::expr
