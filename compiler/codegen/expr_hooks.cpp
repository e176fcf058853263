// The user's mask and score expressions as device functions (docs/expressions.md). Every
// kernel kind that evaluates a mask (the forward, the block-mask builder) includes the same
// text, so they agree on what each element is.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
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

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// `name`_row / `name`_col / `name`_elem and their structs: e factored over a lane's elements
// (templates/flashjit/score_hooks.cuh, for_each_score_factored).
std::string factored_hooks(const expr::Expr& e, const std::vector<expr::CaptureDType>& dtypes, expr::FloatMath math,
                           const std::string& name, const std::string& Name, const std::string& elem_type,
                           const std::string& elem_args) {
  const expr::FactoredCuda f = expr::emit_factored(e, dtypes, math);
  std::string out;
  out += fmt::format("struct {}Row {{ {}}};  // per query row\n", Name,
                     f.row_fields.empty() ? "" : join(f.row_fields, "; ") + "; ");
  out += fmt::format("struct {}Col {{ {}}};  // per key column\n", Name,
                     f.col_fields.empty() ? "" : join(f.col_fields, "; ") + "; ");
  out += fmt::format("__device__ __forceinline__ {0}Row {1}_row(const flashjit::FwdParams& params, int b, int h, int q_idx) {{\n"
                     "  using namespace flashjit;\n  return {0}Row{{{2}}};\n}}\n",
                     Name, name, join(f.row_values, ", "));
  out += fmt::format("__device__ __forceinline__ {0}Col {1}_col(const flashjit::FwdParams& params, int b, int h, int kv_idx) {{\n"
                     "  using namespace flashjit;\n  return {0}Col{{{2}}};\n}}\n",
                     Name, name, join(f.col_values, ", "));
  out += fmt::format("__device__ __forceinline__ {0} {1}_elem(const flashjit::FwdParams& params, {2}int b, int h, int q_idx, "
                     "int kv_idx, const {3}Row& r, const {3}Col& c) {{\n  using namespace flashjit;\n  return {4};\n}}\n",
                     elem_type, name, elem_args, Name, f.elem);
  out += fmt::format("constexpr bool k{}ElemReads = {};  // a read indexed by both q_idx and kv_idx\n", Name,
                     f.elem_reads ? "true" : "false");
  return out;
}

}  // namespace

std::string capture_comments(const std::vector<expr::CaptureDecl>& captures) {
  std::string out;
  for (size_t i = 0; i < captures.size(); ++i)
    out += fmt::format("// params.caps[{}] = {} ({}, rank {})\n", i, captures[i].name, expr::to_string(captures[i].dtype),
                       captures[i].rank);
  return out;
}

std::string mask_hooks(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures, bool factored) {
  const std::vector<expr::CaptureDType> dtypes = dtypes_of(captures);
  const expr::Expr e = expr::parse(mask_expr, expr::Context{false, captures});
  std::string out = "// mask_mod: " + mask_expr + "\n";
  out += "__device__ __forceinline__ bool mask_mod(const flashjit::FwdParams& params, int b, int h, int q_idx, "
         "int kv_idx) {\n  using namespace flashjit;\n";
  out += "  return " + expr::emit_value(e, dtypes) + ";\n}\n";
  out += "// The mask over an index box: never / always / sometimes true (tile classification).\n";
  out += "__device__ __forceinline__ flashjit::IvB mask_interval(const flashjit::FwdParams& params, "
         "const flashjit::IvBox& box) {\n  using namespace flashjit;\n";
  out += "  return " + expr::emit_interval(e, dtypes) + ";\n}\n";
  if (!factored) return out + "\n";
  const expr::FactoredInterval iv = expr::emit_factored_interval(e, dtypes);
  out += "// The same with the ranges of the row-only reads over the CTA's rows computed once, by\n"
         "// every warp together (mask_row_interval), and shared by all its tiles (mask_tile_interval).\n";
  out += fmt::format("struct MaskRowIv {{ {}}};\n", iv.row_fields.empty() ? "" : join(iv.row_fields, "; ") + "; ");
  out += fmt::format("__device__ __forceinline__ MaskRowIv mask_row_interval(const flashjit::FwdParams& params, "
                     "const flashjit::IvBox& box, int lane) {{\n  using namespace flashjit;\n  return MaskRowIv{{{}}};\n}}\n",
                     join(iv.row_values, ", "));
  out += fmt::format("__device__ __forceinline__ flashjit::IvB mask_tile_interval(const flashjit::FwdParams& params, "
                     "const flashjit::IvBox& box, const MaskRowIv& rv) {{\n  using namespace flashjit;\n  return {};\n}}\n",
                     iv.tile);
  out += "// mask_mod factored for the forward's element loop: what depends on the row only or on the\n"
         "// key only is computed once per row or column (the same values as mask_mod).\n";
  out += factored_hooks(expr::explicit_conversions(e), dtypes, expr::FloatMath::exact, "mask", "Mask", "bool", "");
  return out + "\n";
}

bool score_hook_splits(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures) {
  if (score_mod.empty()) return false;
  const expr::Expr e = expr::parse(score_mod, expr::Context{true, captures});
  return expr::split_index_conversions(expr::explicit_conversions(e)).has_value();
}

std::string score_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures, bool factored) {
  const expr::Expr e = expr::parse(score_mod, expr::Context{true, captures});
  std::string value = expr::emit_value(e, dtypes_of(captures), expr::FloatMath::fast);
  if (e.type() == expr::Type::integer) value = "fj_i2f(" + value + ")";
  std::string out = "// score_mod: " + score_mod + "\n";
  out += "__device__ __forceinline__ float score_mod(const flashjit::FwdParams& params, float score, int b, int h, "
         "int q_idx, int kv_idx) {\n  using namespace flashjit;\n";
  out += "  return " + value + ";\n}\n";
  if (!factored) return out + "\n";
  out += "// score_mod factored for the element loop: what depends on the row only or on the key only\n"
         "// is computed once per row or column.\n";
  expr::Expr explicit_e = expr::explicit_conversions(e);
  if (explicit_e.type() == expr::Type::integer) {  // an int score_mod: one conversion, at the root
    expr::Node root;
    root.kind = expr::Kind::to_float;
    root.type = expr::Type::floating;
    root.args = {static_cast<int>(explicit_e.nodes.size()) - 1};
    explicit_e.nodes.push_back(root);
  }
  out += factored_hooks(explicit_e, dtypes_of(captures), expr::FloatMath::fast, "score", "Score", "float", "float score, ");
  if (const std::optional<expr::Expr> narrow = expr::split_index_conversions(explicit_e)) {
    out += fmt::format("// The same with float(kv_idx - q_idx) as float(kv_idx) - float(q_idx), hoisted: exact while\n"
                       "// seqlen_q and seqlen_k are at most {} (kScoreNarrowLimit).\n", expr::kNarrowIndexLimit);
    out += factored_hooks(*narrow, dtypes_of(captures), expr::FloatMath::fast, "score_narrow", "ScoreNarrow", "float",
                          "float score, ");
    out += fmt::format("constexpr int kScoreNarrowLimit = {};\n", expr::kNarrowIndexLimit);
  }
  return out + "\n";
}

std::string score_grad_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures) {
  const expr::Expr e = expr::parse(score_mod, expr::Context{true, captures});
  const expr::Expr d = expr::score_derivative(e, captures);
  std::string out = "// d score_mod / d score: " + expr::score_derivative_text(e, captures) + "\n";
  out += "__device__ __forceinline__ float score_mod_grad(const flashjit::FwdParams& params, float score, int b, int h, "
         "int q_idx, int kv_idx) {\n  using namespace flashjit;\n";
  std::string value = expr::emit_value(d, dtypes_of(captures), expr::FloatMath::fast);
  if (d.type() == expr::Type::integer) value = "fj_i2f(" + value + ")";
  out += "  return " + value + ";\n}\n";
  return out + "\n";
}

std::vector<int> score_grad_captures(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures) {
  std::vector<int> out;
  if (score_mod.empty()) return out;
  for (const expr::ReadGradient& g :
       expr::read_gradients(expr::parse(score_mod, expr::Context{true, captures}), captures))
    if (std::find(out.begin(), out.end(), g.capture) == out.end()) out.push_back(g.capture);
  std::sort(out.begin(), out.end());
  return out;
}

std::string capture_grad_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures) {
  const expr::Expr e = expr::parse(score_mod, expr::Context{true, captures});
  const std::vector<expr::CaptureDType> dtypes = dtypes_of(captures);
  std::string out = "// Gradients into the captured tensors the score_mod reads (one atomic add per read and\n"
                    "// element, warp-aggregated: fj_grad_add). g = dL / d(score_mod's value).\n";
  out += "__device__ __forceinline__ void score_mod_capture_grads(const flashjit::BwdParams& bp, float g, float score, "
         "int b, int h, int q_idx, int kv_idx) {\n  using namespace flashjit;\n  const FwdParams& params = bp.fwd;\n";
  for (const expr::ReadGradient& r : expr::read_gradients(e, captures)) {
    std::vector<std::string> idx;
    for (const expr::Expr& i : r.index) idx.push_back(expr::emit_value(i, dtypes, expr::FloatMath::fast));
    std::string d = expr::emit_value(r.derivative, dtypes, expr::FloatMath::fast);
    if (r.derivative.type() == expr::Type::integer) d = "fj_i2f(" + d + ")";
    out += fmt::format("  // d / d {}[...]: {}\n", captures[static_cast<size_t>(r.capture)].name, expr::print(r.derivative, captures));
    out += fmt::format("  fj_grad_add(bp.dcaps[{}], g * {}, {});\n", r.capture, d, join(idx, ", "));
  }
  return out + "}\n\n";
}

}  // namespace flashjit::codegen
