// Interval analysis on the host: the same arithmetic the kernel's tile classification runs
// (templates/flashjit/interval.cuh), one pass over the nodes. Used by the CPU evaluator,
// by tests against brute force, and before a launch to bound captured-tensor indices.
#include <fmt/format.h>

#include <string>

#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "flashjit/interval.cuh"

namespace flashjit::expr {
namespace {

struct Iv {
  Type type = Type::boolean;
  IvB b{true, true};
  IvI i{0, 0};
  IvF f{1.0, 0.0, false};
};

IvF as_f(const Iv& v) {
  switch (v.type) {
    case Type::boolean: return iv_b2f(v.b);
    case Type::integer: return iv_i2f(v.i);
    case Type::floating: return v.f;
  }
  return v.f;
}

Iv of(IvB b) { Iv v; v.type = Type::boolean; v.b = b; return v; }
Iv of(IvI i) { Iv v; v.type = Type::integer; v.i = i; return v; }
Iv of(IvF f) { Iv v; v.type = Type::floating; v.f = f; return v; }

IvI box_var(const Box& box, Var var) {
  switch (var) {
    case Var::b: return IvI{box.b_lo, box.b_hi};
    case Var::h: return IvI{box.h_lo, box.h_hi};
    case Var::q_idx: return IvI{box.q_lo, box.q_hi};
    case Var::kv_idx: return IvI{box.kv_lo, box.kv_hi};
    case Var::seqlen_q: return iv_i(box.seqlen_q);
    case Var::seqlen_k: return iv_i(box.seqlen_k);
    case Var::score: return iv_i_any();  // not an int; handled by the caller
  }
  return iv_i_any();
}

// The range of read `n` from a host tensor, by the kernel's own scan (interval.cuh).
Iv read_range(const Node& n, const std::vector<Iv>& v, const HostCapture& hc) {
  CaptureArg c{};
  c.data = hc.data;
  for (int d = 0; d < hc.rank && d < 4; ++d) {
    c.strides[d] = hc.strides[d];
    c.sizes[d] = static_cast<int>(hc.sizes[d]);
  }
  IvI ix[4] = {IvI{0, 0}, IvI{0, 0}, IvI{0, 0}, IvI{0, 0}};
  for (size_t d = 0; d < n.args.size() && d < 4; ++d) ix[d] = v[static_cast<size_t>(n.args[d])].i;
  const int r = static_cast<int>(n.args.size());
  switch (hc.dtype) {
    case CaptureDType::i32: return of(iv_read_i32(c, r, ix[0], ix[1], ix[2], ix[3]));
    case CaptureDType::i64: return of(iv_read_i64(c, r, ix[0], ix[1], ix[2], ix[3]));
    case CaptureDType::f32: return of(iv_read_f32(c, r, ix[0], ix[1], ix[2], ix[3]));
    case CaptureDType::f16: return of(iv_read_f16(c, r, ix[0], ix[1], ix[2], ix[3]));
    case CaptureDType::bf16: return of(iv_read_bf16(c, r, ix[0], ix[1], ix[2], ix[3]));
    case CaptureDType::boolean: return of(iv_read_bool(c, r, ix[0], ix[1], ix[2], ix[3]));
  }
  return of(iv_i_any());
}

std::vector<Iv> analyse(const Expr& e, const Box& box, const std::vector<HostCapture>* readable = nullptr) {
  std::vector<Iv> v(e.nodes.size());
  for (size_t k = 0; k < e.nodes.size(); ++k) {
    const Node& n = e.nodes[k];
    auto a = [&](size_t i) -> const Iv& { return v[static_cast<size_t>(n.args[i])]; };
    const bool ints = n.args.size() == 2 && a(0).type == Type::integer && a(1).type == Type::integer;
    Iv& out = v[k];
    switch (n.kind) {
      case Kind::lit_bool: out = of(iv_b(n.ival != 0)); break;
      case Kind::lit_int: out = of(iv_i(n.ival)); break;
      case Kind::lit_float: out = of(iv_f(static_cast<float>(n.fval))); break;
      case Kind::var: out = n.var == Var::score ? of(iv_f_any()) : of(box_var(box, n.var)); break;
      case Kind::read:  // scanned when the tensor is readable here, else unknown
        if (readable && static_cast<size_t>(n.capture) < readable->size() &&
            (*readable)[static_cast<size_t>(n.capture)].data != nullptr &&
            (*readable)[static_cast<size_t>(n.capture)].rank == static_cast<int>(n.args.size()))
          out = read_range(n, v, (*readable)[static_cast<size_t>(n.capture)]);
        else
          out = n.type == Type::boolean ? of(iv_b_any()) : n.type == Type::integer ? of(iv_i_any()) : of(iv_f_any());
        break;
      case Kind::neg: out = a(0).type == Type::integer ? of(iv_ineg(a(0).i)) : of(iv_fneg(a(0).f)); break;
      case Kind::logical_not: out = of(iv_not(a(0).b)); break;
      case Kind::add: out = ints ? of(iv_iadd(a(0).i, a(1).i)) : of(iv_fadd(as_f(a(0)), as_f(a(1)))); break;
      case Kind::sub: out = ints ? of(iv_isub(a(0).i, a(1).i)) : of(iv_fsub(as_f(a(0)), as_f(a(1)))); break;
      case Kind::mul: out = ints ? of(iv_imul(a(0).i, a(1).i)) : of(iv_fmul(as_f(a(0)), as_f(a(1)))); break;
      case Kind::div: out = of(iv_fdiv(as_f(a(0)), as_f(a(1)))); break;
      case Kind::floordiv: out = ints ? of(iv_ifloordiv(a(0).i, a(1).i)) : of(iv_ffloordiv(as_f(a(0)), as_f(a(1)))); break;
      case Kind::mod: out = ints ? of(iv_imod(a(0).i, a(1).i)) : of(iv_fmod(as_f(a(0)), as_f(a(1)))); break;
      case Kind::eq:
      case Kind::ne: {
        IvB r = a(0).type == Type::boolean ? iv_beq(a(0).b, a(1).b) : ints ? iv_ieq(a(0).i, a(1).i) : iv_feq(as_f(a(0)), as_f(a(1)));
        out = of(n.kind == Kind::eq ? r : iv_not(r));
        break;
      }
      case Kind::lt: out = of(ints ? iv_ilt(a(0).i, a(1).i) : iv_flt(as_f(a(0)), as_f(a(1)))); break;
      case Kind::le: out = of(ints ? iv_ile(a(0).i, a(1).i) : iv_fle(as_f(a(0)), as_f(a(1)))); break;
      case Kind::gt: out = of(ints ? iv_igt(a(0).i, a(1).i) : iv_fgt(as_f(a(0)), as_f(a(1)))); break;
      case Kind::ge: out = of(ints ? iv_ige(a(0).i, a(1).i) : iv_fge(as_f(a(0)), as_f(a(1)))); break;
      case Kind::logical_and: out = of(iv_and(a(0).b, a(1).b)); break;
      case Kind::logical_or: out = of(iv_or(a(0).b, a(1).b)); break;
      case Kind::logical_xor: out = of(iv_xor(a(0).b, a(1).b)); break;
      case Kind::where:
        if (n.type == Type::boolean) out = of(iv_where(a(0).b, a(1).b, a(2).b));
        else if (n.type == Type::integer) out = of(iv_where(a(0).b, a(1).i, a(2).i));
        else out = of(iv_where(a(0).b, as_f(a(1)), as_f(a(2))));
        break;
      case Kind::min: out = ints ? of(iv_imin(a(0).i, a(1).i)) : of(iv_fmin(as_f(a(0)), as_f(a(1)))); break;
      case Kind::max: out = ints ? of(iv_imax(a(0).i, a(1).i)) : of(iv_fmax(as_f(a(0)), as_f(a(1)))); break;
      case Kind::abs: out = a(0).type == Type::integer ? of(iv_iabs(a(0).i)) : of(iv_fabs(a(0).f)); break;
      case Kind::exp: out = of(iv_fexp(as_f(a(0)))); break;
      case Kind::log: out = of(iv_flog(as_f(a(0)))); break;
      case Kind::tanh: out = of(iv_ftanh(as_f(a(0)))); break;
      case Kind::sigmoid: out = of(iv_fsigmoid(as_f(a(0)))); break;
      case Kind::sqrt: out = of(iv_fsqrt(as_f(a(0)))); break;
      case Kind::to_float: out = of(as_f(a(0))); break;
      case Kind::to_int:
        out = a(0).type == Type::floating ? of(iv_f2i(a(0).f)) : a(0).type == Type::boolean ? of(iv_b2i(a(0).b)) : a(0);
        break;
    }
  }
  return v;
}

bool is_full_int_range(const IvI& r) { return r.lo == -2147483647LL - 1 && r.hi == 2147483647LL; }

}  // namespace

Truth mask_over(const Expr& e, const Box& box, const std::vector<HostCapture>* readable) {
  const std::vector<Iv> v = analyse(e, box, readable);
  const IvB r = v.back().b;
  return !r.t ? Truth::never : !r.f ? Truth::always : Truth::sometimes;
}

std::optional<IntRange> int_range(const Expr& e, int node, const Box& box) {
  const std::vector<Iv> v = analyse(e, box);
  const Iv& r = v.at(static_cast<size_t>(node));
  if (r.type != Type::integer || is_full_int_range(r.i)) return std::nullopt;
  return IntRange{r.i.lo, r.i.hi};
}

bool may_wrap(const Expr& e, const Box& box) {
  const std::vector<Iv> v = analyse(e, box);
  for (size_t k = 0; k < e.nodes.size(); ++k) {
    const Node& n = e.nodes[k];
    if (n.type != Type::integer || n.kind == Kind::read) continue;
    bool from_ints = !n.args.empty();
    for (int a : n.args) from_ints = from_ints && v[static_cast<size_t>(a)].type == Type::integer &&
                                     !is_full_int_range(v[static_cast<size_t>(a)].i);
    if (from_ints && is_full_int_range(v[k].i)) return true;  // bounded inputs, unbounded result
  }
  return false;
}

void check_capture_bounds(const Expr& e, const std::vector<CaptureDecl>& decls, const std::vector<HostCapture>& caps,
                          const Box& box, const std::string& what) {
  const std::vector<Iv> v = analyse(e, box);
  for (const Node& n : e.nodes) {
    if (n.kind != Kind::read) continue;
    const CaptureDecl& d = decls.at(static_cast<size_t>(n.capture));
    const HostCapture& c = caps.at(static_cast<size_t>(n.capture));
    for (size_t dim = 0; dim < n.args.size(); ++dim) {
      const IvI r = v[static_cast<size_t>(n.args[dim])].i;
      const int64_t size = c.sizes[dim];
      if (is_full_int_range(r))
        throw ArgumentError(
            "captures." + d.name,
            fmt::format("{}: index {} of {}[...] is not bounded by the interval analysis (it depends on a tensor's "
                        "values or may overflow), so it cannot be checked against its size {}; clamp it, e.g. "
                        "min(max(i, 0), {})",
                        what, dim, d.name, size, size - 1));
      if (r.lo < 0 || r.hi >= size)
        throw ArgumentError("captures." + d.name,
                            fmt::format("{}: index {} of {}[...] ranges over {}..{} for this call, but dimension {} "
                                        "has size {} (allowed 0..{})",
                                        what, dim, d.name, r.lo, r.hi, dim, size, size - 1));
    }
  }
}

}  // namespace flashjit::expr
