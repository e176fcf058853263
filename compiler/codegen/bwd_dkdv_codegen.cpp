// The bwd_dkdv kernel kind: a device skeleton (templates/flashjit/bwd_dkdv_sm80.cuh on
// mma.sync, bwd_dkdv_sm90.cuh on wgmma) instantiated with the spec's variant. The schedule lives in the skeleton; what is generated
// is the variant: the band in closed form or the mask expression (per element and over tile
// boxes), score_mod and its symbolic derivative, and the tile constants. Users read this file
// when debugging, so each part says what it is.
#include <fmt/format.h>

#include <string>

#include "flashjit/codegen.h"
#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/spec.h"

namespace flashjit::codegen {
namespace {

// BwdTraits::SMEM_BYTES (bwd_traits.cuh) on the host; every generated kernel static_asserts
// that the two agree.
int plan_bytes(int d, int dv, const TileConfig& t) {
  if (t.mma == MmaKind::wgmma)  // BwdTraitsSm90::SMEM_BYTES (bwd_traits_sm90.cuh)
    return 1024 + t.block_n * (d + dv) * 2 + t.stages * (t.block_m * (d + dv) * 2 + 2 * t.block_m * 4) +
           t.block_n * t.block_m * 2;
  const int wq = t.warps / (t.block_n / 16);
  const int pitch_qk = d + 8, pitch_v = dv + 8, pitch_s = t.block_m + 8;
  const int k = t.block_n * pitch_qk * 2, v = t.block_n * pitch_v * 2;
  const int q = t.block_m * pitch_qk * 2, dout = t.block_m * pitch_v * 2, rowstat = 2 * t.block_m * 4;
  const int ds = t.block_n * pitch_s * 2, pt = wq > 1 ? t.block_n * pitch_s * 2 : 0;
  return k + v + t.stages * (q + dout + rowstat) + ds + pt;
}

}  // namespace

bool bwd_dkdv_listed(const AttentionSpec& spec) { return !ir::loop_mask(spec).expr.empty(); }

int bwd_dkdv_smem_bytes(const AttentionSpec& spec0, const TileConfig& t) {
  const AttentionSpec spec = spec0.normalized();
  return plan_bytes(spec.head_dim, spec.head_dim_v, t) + (bwd_dkdv_listed(spec) ? ir::kTileListBytes : 0);
}

std::string bwd_dkdv_kernel_name(const AttentionSpec& spec0, bool dq_partials, bool capture_grads) {
  const AttentionSpec spec = spec0.normalized();
  return fmt::format("flashjit_bwd_dkdv_{}_d{}x{}_{}_{:08x}{}{}", to_string(spec.dtype), spec.head_dim, spec.head_dim_v,
                     mask_tag(spec.mask), static_cast<uint32_t>(spec_hash(spec) & 0xffffffffu), dq_partials ? "" : "_nodq",
                     capture_grads ? "_dcap" : "");
}

std::string generate_bwd_dkdv_cuda(const AttentionSpec& spec0, bool dq_partials, bool capture_grads) {
  const AttentionSpec spec = spec0.normalized();
  const TileConfig& t = spec.tile.value();
  const ir::LoopMask lm = ir::loop_mask(spec);  // a band, or an expression to classify
  const std::string& mask_expr = lm.expr;
  const bool listed = !mask_expr.empty();
  const bool score = !spec.score_mod.empty();
  if (capture_grads && score_grad_captures(spec.score_mod, spec.captures).empty())
    throw SpecError("spec.score_mod", "no captured tensor is read on a differentiable path, so none can get a gradient");
  const std::string name = bwd_dkdv_kernel_name(spec, dq_partials, capture_grads);
  const int smem = bwd_dkdv_smem_bytes(spec, t);
  const bool wgmma = t.mma == MmaKind::wgmma;
  const char* skeleton = wgmma ? "bwd_dkdv_sm90" : "bwd_dkdv_sm80";

  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += "// Regenerate with: flashjit emit --kind bwd_dkdv --spec '" + spec_to_json(spec) + "'\n//\n";
  out += fmt::format("// The backward's dK, dV ({}) for {} keys per block, q tiles of {} rows, {} warps,\n"
                     "// {} Q/dO buffer(s), {}: templates/flashjit/{}.cuh. This file holds the variant.\n",
                     dq_partials ? "and dQ partials" : "no dQ: the deterministic mode's", t.block_n, t.block_m, t.warps,
                     t.stages, wgmma ? "wgmma" : "mma.sync", skeleton);
  out += fmt::format("//\n// Launch: grid (ceil(seqlen_k / {}), num_heads_kv, batch), block {} threads, {} bytes of dynamic\n"
                     "// shared memory.\n\n",
                     t.block_n, 32 * t.warps, smem);
  out += fmt::format("#include \"flashjit/{}.cuh\"\n", skeleton);
  if (listed || score) out += "#include \"flashjit/expr_ops.cuh\"\n";
  out += "\nnamespace {\n\n";
  out += fmt::format("using T = flashjit::{}<flashjit::{}, /*D=*/{}, /*DV=*/{}, /*BM=*/{}, /*BN=*/{}, /*WARPS=*/{}, "
                     "/*STAGES=*/{}>;\n",
                     wgmma ? "BwdTraitsSm90" : "BwdTraits", spec.dtype == DType::bf16 ? "BF16" : "F16", spec.head_dim,
                     spec.head_dim_v, t.block_m, t.block_n, t.warps, t.stages);
  out += fmt::format("static_assert(T::SMEM_BYTES{} == {}, \"host and device disagree on shared memory\");\n\n",
                     listed ? " + flashjit::kTileListBytes" : "", smem);
  out += bwd_variant_text(spec, capture_grads);  // closes the anonymous namespace
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}(const flashjit::BwdParams params) {{\n",
                     32 * t.warps, name);
  if (wgmma) {
    out += "  extern __shared__ __align__(1024) unsigned char smem[];  // aligned up to 1024 bytes inside\n";
    out += fmt::format("  flashjit::bwd_dkdv_sm90<T, Variant{}>(params, smem);\n}}\n", dq_partials ? "" : ", /*kDq=*/false");
  } else {
    out += "  extern __shared__ __align__(128) unsigned char smem[];\n";
    out += fmt::format("  flashjit::bwd_dkdv<T, Variant{}>(params, smem);\n}}\n", dq_partials ? "" : ", /*kDq=*/false");
  }
  return out;
}

AttentionSpec bwd_dq_convert_spec(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  AttentionSpec s;
  s.dtype = spec.dtype;
  s.head_dim = spec.head_dim;
  return s.normalized();
}

std::string bwd_dq_convert_kernel_name(const AttentionSpec& spec0) {
  const AttentionSpec s = bwd_dq_convert_spec(spec0);
  return fmt::format("flashjit_bwd_dq_convert_{}_d{}_{:08x}", to_string(s.dtype), s.head_dim,
                     static_cast<uint32_t>(spec_hash(s) & 0xffffffffu));
}

std::string generate_bwd_dq_convert_cuda(const AttentionSpec& spec0) {
  const AttentionSpec s = bwd_dq_convert_spec(spec0);
  const std::string name = bwd_dq_convert_kernel_name(s);
  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += fmt::format("// The backward's last step for {} with head_dim {}: dQ = dq_accum * softmax_scale in {}.\n",
                     to_string(s.dtype), s.head_dim, to_string(s.dtype));
  out += fmt::format("//\n// Launch: grid (ceil(seqlen_q / {0}), num_heads_q, batch), block {1} threads.\n\n",
                     kBwdDqConvertRows, kBwdDqConvertThreads);
  out += "#include \"flashjit/bwd_dq_convert.cuh\"\n\n";
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({0}) {1}(const flashjit::BwdDqConvertParams p) {{\n",
                     kBwdDqConvertThreads, name);
  out += fmt::format("  flashjit::bwd_dq_convert<flashjit::{}, /*D=*/{}, /*ROWS=*/{}, /*THREADS=*/{}>(p);\n}}\n",
                     s.dtype == DType::bf16 ? "BF16" : "F16", s.head_dim, kBwdDqConvertRows, kBwdDqConvertThreads);
  return out;
}

}  // namespace flashjit::codegen
