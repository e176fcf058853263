// The host evaluator: one pass over the nodes in post-order, with the device's scalar
// semantics (templates/flashjit/expr_ops.cuh and capture_arg.cuh are compiled here too).
#include <cmath>
#include <stdexcept>
#include <string>

#include "flashjit/capture_arg.cuh"
#include "flashjit/expr.h"
#include "flashjit/expr_ops.cuh"

namespace flashjit::expr {
namespace {

float as_float(const Value& v) {
  switch (v.type) {
    case Type::boolean: return v.b ? 1.0f : 0.0f;
    case Type::integer: return fj_i2f(v.i);
    case Type::floating: return v.f;
  }
  return 0.f;
}

Value make_bool(bool b) {
  Value v;
  v.type = Type::boolean;
  v.b = b;
  return v;
}
Value make_int(int32_t i) {
  Value v;
  v.type = Type::integer;
  v.i = i;
  return v;
}
Value make_float(float f) {
  Value v;
  v.type = Type::floating;
  v.f = f;
  return v;
}

Value read(const Node& n, const std::vector<Value>& vals, const Env& env) {
  if (!env.captures || n.capture < 0 || static_cast<size_t>(n.capture) >= env.captures->size())
    throw std::out_of_range("expr::evaluate: capture " + std::to_string(n.capture) + " was not passed");
  const HostCapture& hc = (*env.captures)[static_cast<size_t>(n.capture)];
  if (hc.rank != static_cast<int>(n.args.size()))
    throw std::out_of_range("expr::evaluate: capture " + std::to_string(n.capture) + " has the wrong rank");
  CaptureArg c{};
  c.data = hc.data;
  int idx[4] = {0, 0, 0, 0};
  for (size_t d = 0; d < n.args.size(); ++d) {
    idx[d] = vals[static_cast<size_t>(n.args[d])].i;
    if (idx[d] < 0 || idx[d] >= hc.sizes[d])
      throw std::out_of_range("expr::evaluate: index " + std::to_string(idx[d]) + " of capture " +
                              std::to_string(n.capture) + " dimension " + std::to_string(d) + " is outside 0.." +
                              std::to_string(hc.sizes[d] - 1));
    c.strides[d] = hc.strides[d];
  }
  switch (hc.dtype) {
    case CaptureDType::i32: return make_int(fj_read_i32(c, idx[0], idx[1], idx[2], idx[3]));
    case CaptureDType::i64: return make_int(fj_read_i64(c, idx[0], idx[1], idx[2], idx[3]));
    case CaptureDType::f32: return make_float(fj_read_f32(c, idx[0], idx[1], idx[2], idx[3]));
    case CaptureDType::f16: return make_float(fj_read_f16(c, idx[0], idx[1], idx[2], idx[3]));
    case CaptureDType::bf16: return make_float(fj_read_bf16(c, idx[0], idx[1], idx[2], idx[3]));
    case CaptureDType::boolean: return make_bool(fj_read_bool(c, idx[0], idx[1], idx[2], idx[3]));
  }
  return make_int(0);
}

}  // namespace

Value evaluate(const Expr& e, const Env& env) {
  if (e.nodes.empty()) throw std::logic_error("expr::evaluate: empty expression");
  // Reused per thread: the oracle evaluates masks once per score.
  thread_local std::vector<Value> vals;
  vals.resize(e.nodes.size());
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const Node& n = e.nodes[i];
    auto arg = [&](size_t a) -> const Value& { return vals[static_cast<size_t>(n.args[a])]; };
    const bool ints = n.args.size() == 2 && arg(0).type == Type::integer && arg(1).type == Type::integer;
    Value& out = vals[i];
    switch (n.kind) {
      case Kind::lit_bool: out = make_bool(n.ival != 0); break;
      case Kind::lit_int: out = make_int(static_cast<int32_t>(n.ival)); break;
      case Kind::lit_float: out = make_float(static_cast<float>(n.fval)); break;
      case Kind::var:
        switch (n.var) {
          case Var::b: out = make_int(env.b); break;
          case Var::h: out = make_int(env.h); break;
          case Var::q_idx: out = make_int(env.q_idx); break;
          case Var::kv_idx: out = make_int(env.kv_idx); break;
          case Var::seqlen_q: out = make_int(env.seqlen_q); break;
          case Var::seqlen_k: out = make_int(env.seqlen_k); break;
          case Var::score: out = make_float(env.score); break;
        }
        break;
      case Kind::read:
        out = read(n, vals, env);
        break;
      case Kind::neg: out = arg(0).type == Type::integer ? make_int(fj_ineg(arg(0).i)) : make_float(-arg(0).f); break;
      case Kind::logical_not: out = make_bool(!arg(0).b); break;
      case Kind::add: out = ints ? make_int(fj_iadd(arg(0).i, arg(1).i)) : make_float(fj_fadd(as_float(arg(0)), as_float(arg(1)))); break;
      case Kind::sub: out = ints ? make_int(fj_isub(arg(0).i, arg(1).i)) : make_float(fj_fsub(as_float(arg(0)), as_float(arg(1)))); break;
      case Kind::mul: out = ints ? make_int(fj_imul(arg(0).i, arg(1).i)) : make_float(fj_fmul(as_float(arg(0)), as_float(arg(1)))); break;
      case Kind::div: out = make_float(fj_fdiv(as_float(arg(0)), as_float(arg(1)))); break;
      case Kind::floordiv:
        out = ints ? make_int(fj_ifloordiv(arg(0).i, arg(1).i)) : make_float(fj_ffloordiv(as_float(arg(0)), as_float(arg(1))));
        break;
      case Kind::mod:
        out = ints ? make_int(fj_imod(arg(0).i, arg(1).i)) : make_float(fj_fmod(as_float(arg(0)), as_float(arg(1))));
        break;
      case Kind::eq:
      case Kind::ne: {
        bool eq;
        if (arg(0).type == Type::boolean) eq = arg(0).b == arg(1).b;
        else if (ints) eq = arg(0).i == arg(1).i;
        else eq = as_float(arg(0)) == as_float(arg(1));
        out = make_bool(n.kind == Kind::eq ? eq : !eq);
        break;
      }
      case Kind::lt: out = make_bool(ints ? arg(0).i < arg(1).i : as_float(arg(0)) < as_float(arg(1))); break;
      case Kind::le: out = make_bool(ints ? arg(0).i <= arg(1).i : as_float(arg(0)) <= as_float(arg(1))); break;
      case Kind::gt: out = make_bool(ints ? arg(0).i > arg(1).i : as_float(arg(0)) > as_float(arg(1))); break;
      case Kind::ge: out = make_bool(ints ? arg(0).i >= arg(1).i : as_float(arg(0)) >= as_float(arg(1))); break;
      case Kind::logical_and: out = make_bool(arg(0).b && arg(1).b); break;
      case Kind::logical_or: out = make_bool(arg(0).b || arg(1).b); break;
      case Kind::logical_xor: out = make_bool(arg(0).b != arg(1).b); break;
      case Kind::where: {
        const Value& pick = arg(0).b ? arg(1) : arg(2);
        if (n.type == Type::floating) out = make_float(as_float(pick));
        else out = pick;
        break;
      }
      case Kind::min:
        out = ints ? make_int(fj_imin(arg(0).i, arg(1).i)) : make_float(fj_fmin(as_float(arg(0)), as_float(arg(1))));
        break;
      case Kind::max:
        out = ints ? make_int(fj_imax(arg(0).i, arg(1).i)) : make_float(fj_fmax(as_float(arg(0)), as_float(arg(1))));
        break;
      case Kind::abs: out = arg(0).type == Type::integer ? make_int(fj_iabs(arg(0).i)) : make_float(fabsf(arg(0).f)); break;
      case Kind::exp: out = make_float(expf(as_float(arg(0)))); break;
      case Kind::log: out = make_float(logf(as_float(arg(0)))); break;
      case Kind::tanh: out = make_float(tanhf(as_float(arg(0)))); break;
      case Kind::sigmoid: out = make_float(fj_sigmoid(as_float(arg(0)))); break;
      case Kind::sqrt: out = make_float(sqrtf(as_float(arg(0)))); break;
      case Kind::to_float: out = make_float(as_float(arg(0))); break;
      case Kind::to_int:
        if (arg(0).type == Type::floating) out = make_int(fj_f2i(arg(0).f));
        else if (arg(0).type == Type::boolean) out = make_int(arg(0).b ? 1 : 0);
        else out = arg(0);
        break;
    }
  }
  return vals[e.nodes.size() - 1];
}

bool eval_mask(const Expr& e, const Env& env) {
  const Value v = evaluate(e, env);
  if (v.type != Type::boolean) throw std::logic_error("expr::eval_mask: the expression is not a bool");
  return v.b;
}

float eval_score(const Expr& e, const Env& env) {
  const Value v = evaluate(e, env);
  if (v.type == Type::boolean) throw std::logic_error("expr::eval_score: the expression is a bool");
  return as_float(v);
}

}  // namespace flashjit::expr
