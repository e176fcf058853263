// CUDA emission: an expression becomes one C++ expression over the kernel's in-scope names,
// calling templates/flashjit/expr_ops.cuh (values) or interval.cuh (tile classification).
// Nested rather than one line per node, so the generated hook reads like the user's mask.
#include <fmt/format.h>

#include <cmath>
#include <string>

#include "flashjit/expr.h"

namespace flashjit::expr {
namespace {

std::string float_lit(double v) {
  if (std::isinf(v)) return v > 0 ? "fj_bits_float(0x7f800000u)" : "fj_bits_float(0xff800000u)";
  std::string s = fmt::format("{:.9g}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  // Parenthesized when negative, -0.0 included: "(-" + "-0.0f" would be a decrement.
  return (std::signbit(v) ? "(" + s + "f)" : s + "f");
}

std::string int_lit(int64_t v) {
  if (v == -2147483648LL) return "(-2147483647 - 1)";
  return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v);
}

const char* read_fn(Type t, const Node& n, const std::vector<CaptureDType>* dtypes) {
  (void)t;
  switch ((*dtypes)[static_cast<size_t>(n.capture)]) {
    case CaptureDType::i32: return "fj_read_i32";
    case CaptureDType::i64: return "fj_read_i64";
    case CaptureDType::f32: return "fj_read_f32";
    case CaptureDType::f16: return "fj_read_f16";
    case CaptureDType::bf16: return "fj_read_bf16";
    case CaptureDType::boolean: return "fj_read_bool";
  }
  return "?";
}

const char* cuda_type(Type t) {
  switch (t) {
    case Type::boolean: return "bool";
    case Type::integer: return "int";
    case Type::floating: return "float";
  }
  return "?";
}

class ValueEmitter {
 public:
  // `names`: per node, a name to print instead of its subtree (a hoisted term), or "".
  // `eager`: & | and where() evaluate every operand (fj_and, fj_or, fj_sel), so an element
  // loop has no branches; safe because every read is in bounds on every path (the launch
  // checks each read's index over the whole index box, whatever guards it).
  ValueEmitter(const Expr& e, const std::vector<CaptureDType>& dtypes, FloatMath math,
               const std::vector<std::string>* names = nullptr, bool eager = false)
      : e_(e), dtypes_(dtypes), fast_(math == FloatMath::fast), names_(names), eager_(eager) {}

  std::string node(int i) const {
    if (names_ && !(*names_)[static_cast<size_t>(i)].empty()) return (*names_)[static_cast<size_t>(i)];
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    auto a = [&](size_t k) { return node(n.args[k]); };
    auto af = [&](size_t k) { return as_float(n.args[k]); };
    auto t = [&](size_t k) { return e_.nodes[static_cast<size_t>(n.args[k])].type; };
    const bool ints = n.args.size() == 2 && t(0) == Type::integer && t(1) == Type::integer;
    switch (n.kind) {
      case Kind::lit_bool: return n.ival ? "true" : "false";
      case Kind::lit_int: return int_lit(n.ival);
      case Kind::lit_float: return float_lit(n.fval);
      case Kind::var:
        switch (n.var) {
          case Var::seqlen_q: return "params.seqlen_q";
          case Var::seqlen_k: return "params.seqlen_k";
          default: return to_string(n.var);
        }
      case Kind::read: {
        std::string s = fmt::format("{}(params.caps[{}]", read_fn(n.type, n, &dtypes_), n.capture);
        for (size_t k = 0; k < n.args.size(); ++k) s += ", " + a(k);
        return s + ")";
      }
      case Kind::neg: return t(0) == Type::integer ? "fj_ineg(" + a(0) + ")" : "(-" + a(0) + ")";
      case Kind::logical_not: return "(!" + a(0) + ")";
      case Kind::add: return ints ? call("fj_iadd", a(0), a(1)) : fast_ ? infix(af(0), "+", af(1)) : call("fj_fadd", af(0), af(1));
      case Kind::sub: return ints ? call("fj_isub", a(0), a(1)) : fast_ ? infix(af(0), "-", af(1)) : call("fj_fsub", af(0), af(1));
      case Kind::mul: return ints ? call("fj_imul", a(0), a(1)) : fast_ ? infix(af(0), "*", af(1)) : call("fj_fmul", af(0), af(1));
      case Kind::div: return fast_ ? fast_div(n) : call("fj_fdiv", af(0), af(1));
      case Kind::floordiv: return ints ? call("fj_ifloordiv", a(0), a(1)) : call("fj_ffloordiv", af(0), af(1));
      case Kind::mod: return ints ? call("fj_imod", a(0), a(1)) : call("fj_fmod", af(0), af(1));
      case Kind::eq:
      case Kind::ne:
      case Kind::lt:
      case Kind::le:
      case Kind::gt:
      case Kind::ge: {
        const char* op = operator_text(n.kind);  // the comparisons are spelled as in C++
        if (t(0) == Type::boolean || ints) return infix(a(0), op, a(1));
        return infix(af(0), op, af(1));
      }
      case Kind::logical_and: return eager_ ? call("fj_and", a(0), a(1)) : infix(a(0), "&&", a(1));
      case Kind::logical_or: return eager_ ? call("fj_or", a(0), a(1)) : infix(a(0), "||", a(1));
      case Kind::logical_xor: return infix(a(0), "!=", a(1));
      case Kind::where: {
        const bool f = n.type == Type::floating;
        const std::string x = f ? af(1) : a(1), y = f ? af(2) : a(2);
        if (eager_) return fmt::format("fj_sel<{}>({}, {}, {})", cuda_type(n.type), a(0), x, y);
        return "(" + a(0) + " ? " + x + " : " + y + ")";
      }
      case Kind::min: return ints ? call("fj_imin", a(0), a(1)) : call("fj_fmin", af(0), af(1));
      case Kind::max: return ints ? call("fj_imax", a(0), a(1)) : call("fj_fmax", af(0), af(1));
      case Kind::abs: return t(0) == Type::integer ? "fj_iabs(" + a(0) + ")" : "fabsf(" + a(0) + ")";
      case Kind::exp: return (fast_ ? "fj_exp_fast(" : "expf(") + af(0) + ")";
      case Kind::log: return (fast_ ? "fj_log_fast(" : "logf(") + af(0) + ")";
      case Kind::tanh: return (fast_ ? "fj_tanh_fast(" : "tanhf(") + af(0) + ")";
      case Kind::sigmoid: return (fast_ ? "fj_sigmoid_fast(" : "fj_sigmoid(") + af(0) + ")";
      case Kind::sqrt: return "sqrtf(" + af(0) + ")";
      case Kind::to_float: return af(0);
      case Kind::to_int:
        if (t(0) == Type::floating) return "fj_f2i(" + a(0) + ")";
        if (t(0) == Type::boolean) return "(" + a(0) + " ? 1 : 0)";
        return a(0);
    }
    return "?";
  }

 private:
  const Expr& e_;
  const std::vector<CaptureDType>& dtypes_;
  const bool fast_;
  const std::vector<std::string>* names_;
  const bool eager_;

  // a / c for a finite nonzero literal c is a * (1 / c), rounded once here; else __fdividef.
  std::string fast_div(const Node& n) const {
    const Node& d = e_.nodes[static_cast<size_t>(n.args[1])];
    const double c = d.kind == Kind::lit_float ? d.fval : d.kind == Kind::lit_int ? (double)d.ival : 0.0;
    const float r = c != 0.0 ? static_cast<float>(1.0 / c) : 0.0f;
    if (c != 0.0 && std::isfinite(c) && std::isfinite(r) && r != 0.0f && std::fpclassify(r) == FP_NORMAL)
      return infix(as_float(n.args[0]), "*", float_lit(r));
    return call("fj_fdiv_fast", as_float(n.args[0]), as_float(n.args[1]));
  }

  std::string as_float(int i) const {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    if (n.type == Type::integer) return "fj_i2f(" + node(i) + ")";
    if (n.type == Type::boolean) return "(" + node(i) + " ? 1.0f : 0.0f)";
    return node(i);
  }
  static std::string call(const char* f, const std::string& a, const std::string& b) {
    return std::string(f) + "(" + a + ", " + b + ")";
  }
  static std::string infix(const std::string& a, const char* op, const std::string& b) {
    return "(" + a + " " + op + " " + b + ")";
  }
};

class IntervalEmitter {
 public:
  // `names`: per node, a name to print instead of its subtree (a row term's range), or "".
  // `warp`: reads scan with the warp-cooperative forms (interval.cuh, iv_read_*_warp).
  IntervalEmitter(const Expr& e, const std::vector<CaptureDType>& dtypes, const std::vector<std::string>* names = nullptr,
                  bool warp = false)
      : e_(e), dtypes_(dtypes), names_(names), warp_(warp) {}

  std::string node(int i) const {
    if (names_ && !(*names_)[static_cast<size_t>(i)].empty()) return (*names_)[static_cast<size_t>(i)];
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    auto a = [&](size_t k) { return node(n.args[k]); };
    auto af = [&](size_t k) { return as_float(n.args[k]); };
    auto t = [&](size_t k) { return e_.nodes[static_cast<size_t>(n.args[k])].type; };
    const bool ints = n.args.size() == 2 && t(0) == Type::integer && t(1) == Type::integer;
    auto pick = [&](const char* int_fn, const char* float_fn) {
      return ints ? std::string(int_fn) + "(" + a(0) + ", " + a(1) + ")"
                  : std::string(float_fn) + "(" + af(0) + ", " + af(1) + ")";
    };
    switch (n.kind) {
      case Kind::lit_bool: return n.ival ? "iv_b(true)" : "iv_b(false)";
      case Kind::lit_int: return "iv_i(" + int_lit(n.ival) + ")";
      case Kind::lit_float: return "iv_f(" + float_lit(n.fval) + ")";
      case Kind::var:
        switch (n.var) {
          case Var::b: return "box.b";
          case Var::h: return "box.h";
          case Var::q_idx: return "box.q";
          case Var::kv_idx: return "box.kv";
          case Var::seqlen_q: return "iv_i(box.seqlen_q)";
          case Var::seqlen_k: return "iv_i(box.seqlen_k)";
          case Var::score: return "iv_f_any()";
        }
        return "?";
      case Kind::read: {
        if (static_cast<size_t>(n.capture) >= dtypes_.size())  // values unknown to the analysis
          return n.type == Type::boolean ? "iv_b_any()" : n.type == Type::integer ? "iv_i_any()" : "iv_f_any()";
        // The range of the values over the index box, scanned (interval.cuh).
        std::string s = fmt::format("iv_{}{}(params.caps[{}], {}{}", std::string(read_fn(n.type, n, &dtypes_)).substr(3),
                                    warp_ ? "_warp" : "", n.capture, n.args.size(), warp_ ? ", lane" : "");
        for (size_t k = 0; k < n.args.size(); ++k) s += ", " + a(k);
        return s + ")";
      }
      case Kind::neg: return t(0) == Type::integer ? "iv_ineg(" + a(0) + ")" : "iv_fneg(" + a(0) + ")";
      case Kind::logical_not: return "iv_not(" + a(0) + ")";
      case Kind::add: return pick("iv_iadd", "iv_fadd");
      case Kind::sub: return pick("iv_isub", "iv_fsub");
      case Kind::mul: return pick("iv_imul", "iv_fmul");
      case Kind::div: return "iv_fdiv(" + af(0) + ", " + af(1) + ")";
      case Kind::floordiv: return pick("iv_ifloordiv", "iv_ffloordiv");
      case Kind::mod: return pick("iv_imod", "iv_fmod");
      case Kind::eq:
      case Kind::ne:
        if (t(0) == Type::boolean) return std::string(n.kind == Kind::eq ? "iv_beq(" : "iv_bne(") + a(0) + ", " + a(1) + ")";
        return n.kind == Kind::eq ? pick("iv_ieq", "iv_feq") : pick("iv_ine", "iv_fne");
      case Kind::lt: return pick("iv_ilt", "iv_flt");
      case Kind::le: return pick("iv_ile", "iv_fle");
      case Kind::gt: return pick("iv_igt", "iv_fgt");
      case Kind::ge: return pick("iv_ige", "iv_fge");
      // A right operand that scans a captured tensor is evaluated only when the left one
      // leaves the result open: a block mask's `cell == 2 | cell == 1 & mask` reads the
      // cells and scans the mask's tensors only over partial cells.
      // The ranges of & and | are symmetric, so an operand without reads goes first:
      // `doc[q_idx] == doc[kv_idx] & q_idx >= kv_idx` scans doc only below the diagonal.
      case Kind::logical_and:
      case Kind::logical_or: {
        const bool and_ = n.kind == Kind::logical_and;
        const bool r0 = reads(n.args[0]), r1 = reads(n.args[1]);
        if (!r0 && !r1) return std::string(and_ ? "iv_and(" : "iv_or(") + a(0) + ", " + a(1) + ")";
        const std::string first = r0 && !r1 ? a(1) : a(0), second = r0 && !r1 ? a(0) : a(1);
        return std::string(and_ ? "iv_and_then(" : "iv_or_else(") + first + ", [&] { return " + second + "; })";
      }
      case Kind::logical_xor: return "iv_xor(" + a(0) + ", " + a(1) + ")";
      case Kind::where:
        if (n.type == Type::floating) return "iv_where(" + a(0) + ", " + af(1) + ", " + af(2) + ")";
        return "iv_where(" + a(0) + ", " + a(1) + ", " + a(2) + ")";
      case Kind::min: return pick("iv_imin", "iv_fmin");
      case Kind::max: return pick("iv_imax", "iv_fmax");
      case Kind::abs: return t(0) == Type::integer ? "iv_iabs(" + a(0) + ")" : "iv_fabs(" + a(0) + ")";
      case Kind::exp: return "iv_fexp(" + af(0) + ")";
      case Kind::log: return "iv_flog(" + af(0) + ")";
      case Kind::tanh: return "iv_ftanh(" + af(0) + ")";
      case Kind::sigmoid: return "iv_fsigmoid(" + af(0) + ")";
      case Kind::sqrt: return "iv_fsqrt(" + af(0) + ")";
      case Kind::to_float: return af(0);
      case Kind::to_int:
        if (t(0) == Type::floating) return "iv_f2i(" + a(0) + ")";
        if (t(0) == Type::boolean) return "iv_b2i(" + a(0) + ")";
        return a(0);
    }
    return "?";
  }

 private:
  const Expr& e_;
  const std::vector<CaptureDType>& dtypes_;
  const std::vector<std::string>* names_;
  const bool warp_;

 public:
  // Whether node i's subtree scans a captured tensor (a read the analysis knows the dtype of).
  bool reads(int i) const {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    if (n.kind == Kind::read && static_cast<size_t>(n.capture) < dtypes_.size()) return true;
    for (int c : n.args)
      if (reads(c)) return true;
    return false;
  }

 private:
  std::string as_float(int i) const {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    if (n.type == Type::integer) return "iv_i2f(" + node(i) + ")";
    if (n.type == Type::boolean) return "iv_b2f(" + node(i) + ")";
    return node(i);
  }
};

}  // namespace

std::string emit_value(const Expr& e, const std::vector<CaptureDType>& dtypes, FloatMath math) {
  return ValueEmitter(e, dtypes, math).node(static_cast<int>(e.nodes.size()) - 1);
}

FactoredCuda emit_factored(const Expr& e, const std::vector<CaptureDType>& dtypes, FloatMath math) {
  FactoredCuda out;
  std::vector<std::string> names(e.nodes.size());
  int rows = 0, cols = 0;
  for (const Hoisted& t : hoisted_terms(e)) {
    const bool row = t.scope == Scope::row;
    const std::string field = "t" + std::to_string(row ? rows++ : cols++);
    (row ? out.row_fields : out.col_fields)
        .push_back(std::string(cuda_type(e.nodes[static_cast<size_t>(t.node)].type)) + " " + field);
    (row ? out.row_values : out.col_values).push_back(ValueEmitter(e, dtypes, math, &names, true).node(t.node));
    names[static_cast<size_t>(t.node)] = (row ? "r." : "c.") + field;
  }
  out.elem = ValueEmitter(e, dtypes, math, &names, true).node(static_cast<int>(e.nodes.size()) - 1);
  // A read left in the element: one whose index depends on both the row and the column.
  std::vector<bool> inside(e.nodes.size(), false);  // node i is evaluated per element
  inside.back() = names.back().empty();
  for (size_t i = e.nodes.size(); i-- > 0;) {
    if (!inside[i]) continue;
    if (e.nodes[i].kind == Kind::read) out.elem_reads = true;
    for (int a : e.nodes[i].args)
      if (names[static_cast<size_t>(a)].empty()) inside[static_cast<size_t>(a)] = true;
  }
  return out;
}

FactoredInterval emit_factored_interval(const Expr& e, const std::vector<CaptureDType>& dtypes) {
  FactoredInterval out;
  std::vector<std::string> names(e.nodes.size());
  const IntervalEmitter plain(e, dtypes);
  for (const Hoisted& t : hoisted_terms(e)) {
    if (t.scope != Scope::row || !plain.reads(t.node)) continue;  // only scans are worth a warp's help
    const Type type = e.nodes[static_cast<size_t>(t.node)].type;
    const std::string field = "t" + std::to_string(out.row_fields.size());
    out.row_fields.push_back(std::string(type == Type::boolean ? "flashjit::IvB " : type == Type::integer ? "flashjit::IvI " : "flashjit::IvF ") + field);
    out.row_values.push_back(IntervalEmitter(e, dtypes, nullptr, true).node(t.node));
    names[static_cast<size_t>(t.node)] = "rv." + field;
  }
  out.tile = IntervalEmitter(e, dtypes, &names).node(static_cast<int>(e.nodes.size()) - 1);
  return out;
}

std::string emit_interval(const Expr& e, const std::vector<CaptureDType>& dtypes) {
  return IntervalEmitter(e, dtypes).node(static_cast<int>(e.nodes.size()) - 1);
}

}  // namespace flashjit::expr
