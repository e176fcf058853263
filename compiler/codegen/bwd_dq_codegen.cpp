// The bwd_dq kernel kind (the deterministic backward's dQ): the device skeleton
// (templates/flashjit/bwd_dq_sm80.cuh) instantiated with the spec's variant, the same
// Variant struct bwd_dkdv gets (bwd_variant_codegen.cpp).
#include <fmt/format.h>

#include <string>

#include "flashjit/codegen.h"
#include "flashjit/ir.h"
#include "flashjit/spec.h"

namespace flashjit::codegen {

int bwd_dq_smem_bytes(const AttentionSpec& spec0, const TileConfig& t) {
  const AttentionSpec spec = spec0.normalized();
  const int pitch_qk = spec.head_dim + 8, pitch_v = spec.head_dim_v + 8;  // BwdDqTraits::SMEM_BYTES
  const int plan = t.block_m * (pitch_qk + pitch_v) * 2 + 2 * t.block_m * 4 + t.stages * t.block_n * (pitch_qk + pitch_v) * 2;
  return plan + (bwd_dkdv_listed(spec) ? ir::kTileListBytes : 0);
}

std::string bwd_dq_kernel_name(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  return fmt::format("flashjit_bwd_dq_{}_d{}x{}_{}_{:08x}", to_string(spec.dtype), spec.head_dim, spec.head_dim_v,
                     mask_tag(spec.mask), static_cast<uint32_t>(spec_hash(spec) & 0xffffffffu));
}

std::string generate_bwd_dq_cuda(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  const TileConfig& t = spec.tile.value();
  const bool listed = bwd_dkdv_listed(spec);
  const std::string name = bwd_dq_kernel_name(spec);
  const int smem = bwd_dq_smem_bytes(spec, t);
  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += "// Regenerate with: flashjit emit --kind bwd_dq --spec '" + spec_to_json(spec) + "'\n//\n";
  out += fmt::format("// The deterministic backward's dQ for q tiles of {} rows ({} warps) over key tiles of {}, {} K/V\n"
                     "// buffer(s): templates/flashjit/bwd_dq_sm80.cuh. This file holds the variant.\n",
                     t.block_m, t.warps, t.block_n, t.stages);
  out += fmt::format("//\n// Launch: grid (ceil(seqlen_q / {}), num_heads_q, batch), block {} threads, {} bytes of dynamic\n"
                     "// shared memory.\n\n",
                     t.block_m, 32 * t.warps, smem);
  out += "#include \"flashjit/bwd_dq_sm80.cuh\"\n";
  if (listed || !spec.score_mod.empty()) out += "#include \"flashjit/expr_ops.cuh\"\n";
  out += "\nnamespace {\n\n";
  out += fmt::format("using T = flashjit::BwdDqTraits<flashjit::{}, /*D=*/{}, /*DV=*/{}, /*BM=*/{}, /*BN=*/{}, /*WARPS=*/{}, "
                     "/*STAGES=*/{}>;\n",
                     spec.dtype == DType::bf16 ? "BF16" : "F16", spec.head_dim, spec.head_dim_v, t.block_m, t.block_n,
                     t.warps, t.stages);
  out += fmt::format("static_assert(T::SMEM_BYTES{} == {}, \"host and device disagree on shared memory\");\n\n",
                     listed ? " + flashjit::kTileListBytes" : "", smem);
  out += bwd_variant_text(spec);  // closes the anonymous namespace
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}(const flashjit::BwdParams params) {{\n",
                     32 * t.warps, name);
  out += "  extern __shared__ __align__(128) unsigned char smem[];\n";
  out += "  flashjit::bwd_dq<T, Variant>(params, smem);\n}\n";
  return out;
}

}  // namespace flashjit::codegen
