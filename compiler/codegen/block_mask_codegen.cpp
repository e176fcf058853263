// The block-mask builder kernel kind: a mask expression -> CUDA C++ for NVRTC. The mask
// hooks are the forward's (expr_hooks.cpp); the skeleton is block_mask_build.cuh.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "flashjit/codegen.h"
#include "flashjit/spec.h"

namespace flashjit::codegen {
AttentionSpec mask_only_spec(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures) {
  AttentionSpec s;
  s.head_dim = s.head_dim_v = 64;
  s.mask.kind = MaskKind::custom;
  s.mask.expr = mask_expr;
  s.captures = captures;
  return s;
}

std::string block_mask_kernel_name(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures) {
  return fmt::format("flashjit_block_mask_{:08x}",
                     static_cast<uint32_t>(spec_hash(mask_only_spec(mask_expr, captures).normalized()) & 0xffffffffu));
}

std::string generate_block_mask_cuda(const std::string& mask_expr0, const std::vector<expr::CaptureDecl>& captures) {
  const AttentionSpec spec = mask_only_spec(mask_expr0, captures).normalized();
  const std::string name = block_mask_kernel_name(mask_expr0, captures);
  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += "// The block mask of: " + spec.mask.expr + "\n";
  out += fmt::format(
      "//\n// Launch: grid (num_q_blocks * ceil(num_kv_blocks / {0}), batch, heads), block {0} threads;\n"
      "// each thread writes the class of one (query block, key block) cell: 0 empty, 1 partial, 2 full.\n\n",
      kBlockMaskThreads);
  out += "#include \"flashjit/block_mask_build.cuh\"\n\nnamespace {\n\n";
  out += capture_comments(spec.captures);
  out += mask_hooks(spec.mask.expr, spec.captures);
  out += "}  // namespace\n\n";
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({0}) {1}(const flashjit::BlockMaskParams p) {{\n",
                     kBlockMaskThreads, name);
  out += "  flashjit::block_mask_cells<" + std::to_string(kBlockMaskThreads) + ">(\n";
  out += "      p, [&](const flashjit::IvBox& box) { return mask_interval(p.f, box); },\n";
  out += "      [&](int b, int h, int q_idx, int kv_idx) { return mask_mod(p.f, b, h, q_idx, kv_idx); });\n}\n";
  return out;
}

}  // namespace flashjit::codegen
