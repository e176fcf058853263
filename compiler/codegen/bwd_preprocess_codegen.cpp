// The bwd_preprocess kernel kind (templates/flashjit/bwd_preprocess.cuh): D = rowsum(dO ∘ O)
// and a zeroed fp32 dQ accumulator. It depends on the dtype and the head dims only, so every
// mask, score_mod and tile of a spec shares one preprocess kernel (and one cache entry).
#include <fmt/format.h>

#include <string>

#include "flashjit/codegen.h"
#include "flashjit/spec.h"

namespace flashjit::codegen {

AttentionSpec bwd_preprocess_spec(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  AttentionSpec s;
  s.dtype = spec.dtype;
  s.head_dim = spec.head_dim;
  s.head_dim_v = spec.head_dim_v;
  return s.normalized();
}

std::string bwd_preprocess_kernel_name(const AttentionSpec& spec0) {
  const AttentionSpec s = bwd_preprocess_spec(spec0);
  return fmt::format("flashjit_bwd_preprocess_{}_d{}x{}_{:08x}", to_string(s.dtype), s.head_dim, s.head_dim_v,
                     static_cast<uint32_t>(spec_hash(s) & 0xffffffffu));
}

std::string generate_bwd_preprocess_cuda(const AttentionSpec& spec0) {
  const AttentionSpec s = bwd_preprocess_spec(spec0);
  const std::string name = bwd_preprocess_kernel_name(s);
  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += fmt::format("// The backward's preprocess for {} with head_dim {} and head_dim_v {}: D = rowsum(dO ∘ O)\n"
                     "// in fp32, and the fp32 dQ accumulator of the same rows zeroed.\n",
                     to_string(s.dtype), s.head_dim, s.head_dim_v);
  out += fmt::format("//\n// Launch: grid (ceil(seqlen_q / {0}), num_heads_q, batch), block {1} threads.\n\n",
                     kBwdPreprocessRows, kBwdPreprocessThreads);
  out += "#include \"flashjit/bwd_preprocess.cuh\"\n\n";
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({0}) {1}(const flashjit::BwdPreprocessParams p) {{\n",
                     kBwdPreprocessThreads, name);
  out += fmt::format("  flashjit::bwd_preprocess</*BF16=*/{}, /*D=*/{}, /*DV=*/{}, /*ROWS=*/{}, /*THREADS=*/{}>(p);\n}}\n",
                     s.dtype == DType::bf16 ? "true" : "false", s.head_dim, s.head_dim_v, kBwdPreprocessRows,
                     kBwdPreprocessThreads);
  return out;
}

}  // namespace flashjit::codegen
