// The textual form of the tile IR. Stable: golden tests match it with FileCheck.
#include <fmt/format.h>

#include <cmath>

#include "flashjit/ir.h"

namespace flashjit::ir {
namespace {

std::string format_value(const Attr& a) {
  if (const auto* i = std::get_if<int64_t>(&a)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&a)) {
    if (std::isinf(*d)) return *d < 0 ? "-inf" : "inf";
    return fmt::format("{:.9g}", *d);
  }
  if (const auto* s = std::get_if<std::string>(&a)) return "\"" + *s + "\"";
  return std::get<bool>(a) ? "true" : "false";
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", %" : "%") + names[i];
  return out;
}

void print_op(std::string& out, const Op& op, int indent) {
  out.append(indent, ' ');
  if (!op.results.empty()) out += join_names(op.results) + " = ";
  out += to_string(op.kind);
  // Tensor-indexed ops read like C: load_tile K[kv]
  if (op.has_attr("tensor")) out += " " + op.str_attr("tensor") + "[" + op.str_attr("index") + "]";
  if (op.kind == OpKind::fill) out += " " + format_value(op.attrs.at("value"));
  if (!op.operands.empty()) out += (op.has_attr("tensor") ? ", " : " ") + join_names(op.operands);
  std::string attrs;
  for (const auto& [key, value] : op.attrs) {
    if (key == "tensor" || key == "index" || (op.kind == OpKind::fill && key == "value")) continue;
    if (!attrs.empty()) attrs += ", ";
    // A true flag prints as its name: {transpose_b}
    if (const auto* b = std::get_if<bool>(&value); b && *b) attrs += key;
    else attrs += key + " = " + format_value(value);
  }
  if (!attrs.empty()) out += " {" + attrs + "}";
  if (op.kind != OpKind::wait_copies) out += " : " + to_string(op.type);
  out += "\n";
}

std::string band_text(const BandMask& b) {
  if (b.is_trivial()) return "all keys < seqlen_k";
  const std::string diff = b.bottom_right ? "k - q - (seqlen_k - seqlen_q)" : "k - q";
  std::string s;
  if (b.lo) s += std::to_string(*b.lo) + " <= ";
  s += diff;
  if (b.hi) s += " <= " + std::to_string(*b.hi);
  return s;
}

}  // namespace

std::string print(const Op& op) {
  std::string out;
  print_op(out, op, 0);
  out.pop_back();  // the newline
  return out;
}

std::string print(const Kernel& k) {
  std::string out;
  out += fmt::format("kernel @{} {{\n", k.name);
  out += fmt::format("  grid q_tile = ceil(seqlen_q / {}), head_q, batch; head_kv = head_q / {}{}\n",
                     k.grid.block_m, k.grid.gqa_group, k.grid.reverse_q_tiles ? "; longest_rows_first" : "");
  if (k.grid.producer_warps)
    out += fmt::format("  block warps = {} + {} producer (TMA), threads = {}\n", k.grid.warps, k.grid.producer_warps,
                       32 * (k.grid.warps + k.grid.producer_warps));
  else
    out += fmt::format("  block warps = {}, threads = {}\n", k.grid.warps, 32 * k.grid.warps);
  for (const Op& op : k.prologue) print_op(out, op, 2);

  const KvLoop& loop = k.loop;
  std::string loop_attrs;
  if (loop.classes.analysed) {
    loop_attrs += loop.classes.by_interval ? " by_interval" : "";
    loop_attrs += loop.classes.skip_empty ? " skip_empty" : "";
    loop_attrs += loop.classes.unmasked_full ? " unmasked_full" : "";
  }
  if (loop.stages > 1) loop_attrs += fmt::format(" stages = {}", loop.stages);
  const std::string mask = loop.mask_expr.empty() ? "band: " + band_text(loop.mask) : "mask: " + loop.mask_expr;
  out += fmt::format("  for %{} in kv_tiles(block_n = {}, {}){} {{\n", loop.induction, k.grid.block_n, mask, loop_attrs);
  for (const Op& op : loop.body) print_op(out, op, 4);
  out += "  }\n";
  for (const Op& op : k.epilogue) print_op(out, op, 2);
  out += "}\n";
  if (k.resources) {
    const Resources& r = *k.resources;
    out += fmt::format("// resources({}): smem {} / {} bytes, >= {} registers/thread (fragments), {} threads\n", r.arch,
                       r.smem_bytes, r.smem_limit, r.est_registers, r.threads);
  }
  if (!k.passes_run.empty()) {
    out += "// passes:";
    for (const auto& p : k.passes_run) out += " " + p;
    out += "\n";
  }
  return out;
}

}  // namespace flashjit::ir
