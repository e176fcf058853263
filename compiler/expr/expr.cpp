// Names, dtypes and small queries of the expression language.
#include <cctype>

#include "flashjit/expr.h"

namespace flashjit::expr {

ExprError::ExprError(int pos, const std::string& what)
    : std::runtime_error("at " + std::to_string(pos) + ": " + what), pos_(pos), reason_(what) {}

const char* to_string(Type t) {
  switch (t) {
    case Type::boolean: return "bool";
    case Type::integer: return "int";
    case Type::floating: return "float";
  }
  return "?";
}

const char* to_string(Var v) {
  switch (v) {
    case Var::b: return "b";
    case Var::h: return "h";
    case Var::q_idx: return "q_idx";
    case Var::kv_idx: return "kv_idx";
    case Var::seqlen_q: return "seqlen_q";
    case Var::seqlen_k: return "seqlen_k";
    case Var::score: return "score";
  }
  return "?";
}

const char* to_string(CaptureDType d) {
  switch (d) {
    case CaptureDType::i32: return "i32";
    case CaptureDType::i64: return "i64";
    case CaptureDType::f32: return "f32";
    case CaptureDType::f16: return "f16";
    case CaptureDType::bf16: return "bf16";
    case CaptureDType::boolean: return "bool";
  }
  return "?";
}

std::optional<CaptureDType> capture_dtype_from(const std::string& name) {
  for (CaptureDType d : {CaptureDType::i32, CaptureDType::i64, CaptureDType::f32, CaptureDType::f16, CaptureDType::bf16,
                         CaptureDType::boolean})
    if (name == to_string(d)) return d;
  return std::nullopt;
}

int capture_dtype_size(CaptureDType d) {
  switch (d) {
    case CaptureDType::i32:
    case CaptureDType::f32: return 4;
    case CaptureDType::i64: return 8;
    case CaptureDType::f16:
    case CaptureDType::bf16: return 2;
    case CaptureDType::boolean: return 1;
  }
  return 1;
}

bool is_valid_capture_name(const std::string& name) {
  if (name.empty() || name.size() > static_cast<size_t>(kMaxCaptureName)) return false;
  if (!std::isalpha(static_cast<unsigned char>(name[0])) && name[0] != '_') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  static const char* const reserved[] = {"b",   "h",   "q_idx", "kv_idx", "seqlen_q", "seqlen_k", "score", "true",
                                         "false", "inf", "where", "min",  "max",      "abs",      "exp",   "log",
                                         "tanh",  "sigmoid", "sqrt", "float", "int"};
  for (const char* r : reserved)
    if (name == r) return false;
  return true;
}

bool Expr::uses(Var v) const {
  for (const Node& n : nodes)
    if (n.kind == Kind::var && n.var == v) return true;
  return false;
}

bool Expr::reads_captures() const {
  for (const Node& n : nodes)
    if (n.kind == Kind::read) return true;
  return false;
}

}  // namespace flashjit::expr
