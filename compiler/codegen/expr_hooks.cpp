// The user's mask and score expressions as device functions (docs/expressions.md). Every
// kernel kind that evaluates a mask (the forward, the block-mask builder) includes the same
// text, so they agree on what each element is.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "flashjit/codegen.h"
#include "flashjit/expr.h"

namespace flashjit::codegen {
namespace {

std::vector<expr::CaptureDType> dtypes_of(const std::vector<expr::CaptureDecl>& captures) {
  std::vector<expr::CaptureDType> d;
  for (const expr::CaptureDecl& c : captures) d.push_back(c.dtype);
  return d;
}

}  // namespace

std::string capture_comments(const std::vector<expr::CaptureDecl>& captures) {
  std::string out;
  for (size_t i = 0; i < captures.size(); ++i)
    out += fmt::format("// params.caps[{}] = {} ({}, rank {})\n", i, captures[i].name, expr::to_string(captures[i].dtype),
                       captures[i].rank);
  return out;
}

std::string mask_hooks(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures) {
  const std::vector<expr::CaptureDType> dtypes = dtypes_of(captures);
  const expr::Expr e = expr::parse(mask_expr, expr::Context{false, captures});
  std::string out = "// mask_mod: " + mask_expr + "\n";
  out += "__device__ __forceinline__ bool mask_mod(const flashjit::FwdParams& params, int b, int h, int q_idx, "
         "int kv_idx) {\n  using namespace flashjit;\n";
  out += "  return " + expr::emit_value(e, dtypes) + ";\n}\n";
  out += "// The mask over an index box: never / always / sometimes true (tile classification).\n";
  out += "__device__ __forceinline__ flashjit::IvB mask_interval(const flashjit::FwdParams& params, "
         "const flashjit::IvBox& box) {\n  using namespace flashjit;\n";
  out += "  return " + expr::emit_interval(e, dtypes) + ";\n}\n\n";
  return out;
}

std::string score_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures) {
  const expr::Expr e = expr::parse(score_mod, expr::Context{true, captures});
  std::string value = expr::emit_value(e, dtypes_of(captures), expr::FloatMath::fast);
  if (e.type() == expr::Type::integer) value = "fj_i2f(" + value + ")";
  std::string out = "// score_mod: " + score_mod + "\n";
  out += "__device__ __forceinline__ float score_mod(const flashjit::FwdParams& params, float score, int b, int h, "
         "int q_idx, int kv_idx) {\n  using namespace flashjit;\n";
  out += "  return " + value + ";\n}\n\n";
  return out;
}

}  // namespace flashjit::codegen
