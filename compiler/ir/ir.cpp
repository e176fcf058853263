// Small helpers of the IR data structures (attribute access, names, lookup).
#include "flashjit/ir.h"

#include <stdexcept>

namespace flashjit::ir {
namespace {
template <typename T>
const T& get_attr(const Op& op, const std::string& key) {
  auto it = op.attrs.find(key);
  if (it == op.attrs.end()) throw std::logic_error("ir: op " + to_string(op.kind) + " has no attribute '" + key + "'");
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  throw std::logic_error("ir: attribute '" + key + "' of op " + to_string(op.kind) + " has another type");
}
}  // namespace

int64_t Op::int_attr(const std::string& k) const { return get_attr<int64_t>(*this, k); }
double Op::float_attr(const std::string& k) const { return get_attr<double>(*this, k); }
const std::string& Op::str_attr(const std::string& k) const { return get_attr<std::string>(*this, k); }
bool Op::bool_attr(const std::string& k) const { return get_attr<bool>(*this, k); }

std::string to_string(OpKind k) {
  switch (k) {
    case OpKind::load_tile: return "load_tile";
    case OpKind::fill: return "fill";
    case OpKind::gemm: return "gemm";
    case OpKind::apply_mask: return "apply_mask";
    case OpKind::score_mod: return "score_mod";
    case OpKind::online_softmax: return "online_softmax";
    case OpKind::dropout: return "dropout";
    case OpKind::finalize: return "finalize";
    case OpKind::store_tile: return "store_tile";
    case OpKind::store_lse: return "store_lse";
    case OpKind::async_copy: return "async_copy";
    case OpKind::wait_copies: return "wait_copies";
  }
  return "?";
}

std::string to_string(Elem e) {
  switch (e) {
    case Elem::f16: return "f16";
    case Elem::bf16: return "bf16";
    case Elem::f32: return "f32";
  }
  return "?";
}

std::string to_string(const TileType& t) {
  const char* space = t.space == Space::global ? "global" : t.space == Space::shared ? "smem" : "regs";
  return to_string(t.elem) + "<" + std::to_string(t.rows) + "x" + std::to_string(t.cols) + ", " + space + ">";
}

const Op* find_op(const Kernel& k, OpKind kind) {
  for (const auto* list : {&k.prologue, &k.loop.body, &k.epilogue})
    for (const Op& op : *list)
      if (op.kind == kind) return &op;
  return nullptr;
}

}  // namespace flashjit::ir
