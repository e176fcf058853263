// The bwd_dkdv kernel kind: a device skeleton (templates/flashjit/bwd_dkdv_sm80.cuh on
// mma.sync, bwd_dkdv_sm90.cuh on wgmma) instantiated with the spec's variant. The schedule lives in the skeleton; what is generated
// is the variant: the band in closed form or the mask expression (per element and over tile
// boxes), score_mod and its symbolic derivative, and the tile constants. Users read this file
// when debugging, so each part says what it is.
#include <fmt/format.h>

#include <string>

#include "flashjit/codegen.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/spec.h"

namespace flashjit::codegen {
namespace {

constexpr int kTileListBytes = (256 + 32) * 4;  // kv_tiles.cuh: (kTileListCap + 32) ints

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
std::string band_text(const ir::BandMask& b) {
  return fmt::format("flashjit::Band{{/*has_lo=*/{}, /*has_hi=*/{}, /*lo=*/{}, /*hi=*/{}, /*offset=*/{}}}",
                     b.lo ? "true" : "false", b.hi ? "true" : "false", b.lo.value_or(0), b.hi.value_or(0),
                     b.bottom_right ? "(long long)params.seqlen_k - params.seqlen_q" : "0");
}

}  // namespace

bool bwd_dkdv_listed(const AttentionSpec& spec) { return !ir::loop_mask(spec).expr.empty(); }

int bwd_dkdv_smem_bytes(const AttentionSpec& spec0, const TileConfig& t) {
  const AttentionSpec spec = spec0.normalized();
  return plan_bytes(spec.head_dim, spec.head_dim_v, t) + (bwd_dkdv_listed(spec) ? kTileListBytes : 0);
}

std::string bwd_dkdv_kernel_name(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  return fmt::format("flashjit_bwd_dkdv_{}_d{}x{}_{}_{:08x}", to_string(spec.dtype), spec.head_dim, spec.head_dim_v,
                     mask_tag(spec.mask), static_cast<uint32_t>(spec_hash(spec) & 0xffffffffu));
}

std::string generate_bwd_dkdv_cuda(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  const TileConfig& t = spec.tile.value();
  const ir::LoopMask lm = ir::loop_mask(spec);  // a band, or an expression to classify
  const std::string& mask_expr = lm.expr;
  const bool listed = !mask_expr.empty();
  const bool score = !spec.score_mod.empty();
  const std::string name = bwd_dkdv_kernel_name(spec);
  const double scale = spec.effective_scale();
  const int smem = bwd_dkdv_smem_bytes(spec, t);
  const bool wgmma = t.mma == MmaKind::wgmma;
  const char* skeleton = wgmma ? "bwd_dkdv_sm90" : "bwd_dkdv_sm80";

  std::string out = "// flashjit generated kernel: " + name + "\n";
  out += "// Regenerate with: flashjit emit --kind bwd_dkdv --spec '" + spec_to_json(spec) + "'\n//\n";
  out += fmt::format("// The backward's dK, dV (and dQ partials) for {} keys per block, q tiles of {} rows, {} warps,\n"
                     "// {} Q/dO buffer(s), {}: templates/flashjit/{}.cuh. This file holds the variant.\n",
                     t.block_n, t.block_m, t.warps, t.stages, wgmma ? "wgmma" : "mma.sync", skeleton);
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
  out += capture_comments(spec.captures);
  if (listed) out += mask_hooks(mask_expr, spec.captures, /*factored=*/false);
  if (score) out += score_hook(spec.score_mod, spec.captures, /*factored=*/false) + score_grad_hook(spec.score_mod, spec.captures);

  out += "// The variant the skeleton calls (bwd_dkdv_sm80.cuh, top; bwd_block.cuh).\n";
  out += "struct Variant {\n";
  out += listed ? "  // Mask custom: q tiles classified per key block by interval analysis of mask_mod.\n"
                : fmt::format("  // Mask {}: q tiles of a key block in closed form (band_q_tiles).\n", to_string(spec.mask.kind));
  out += fmt::format("  static constexpr bool kListed = {};\n", listed ? "true" : "false");
  out += fmt::format("  static constexpr bool kScoreMod = {};\n", score ? "true" : "false");
  out += fmt::format("  static constexpr float kScale = {};      // softmax_scale\n", float_literal(scale));
  out += fmt::format("  static constexpr float kScaleLog2 = {};  // softmax_scale * log2(e)\n", float_literal(scale * M_LOG2E));
  out += "  static __device__ __forceinline__ flashjit::Band band(const flashjit::FwdParams& params) {\n";
  out += "    return " + band_text(lm.band) + ";\n  }\n";
  out += "  // band: the band as 32-bit bounds on kv_idx - q_idx (band_i32).\n";
  out += "  static __device__ __forceinline__ bool visible(const flashjit::FwdParams& params, const flashjit::BandI32& band, "
         "int b, int h, int q_idx, int kv_idx) {\n";
  out += listed ? "    return mask_mod(params, b, h, q_idx, kv_idx);\n"
                : "    return flashjit::band_visible_i32(band, q_idx, kv_idx, params.seqlen_k);\n";
  out += "  }\n";
  out += "  // Empty / partial / full for q rows [q0, q0 + q_rows) and keys [k0, k0 + k_rows). Padding rows or\n"
         "  // keys must be masked (they would add to dK, dV), so a tile holding any is never full.\n";
  out += "  static __device__ __forceinline__ int classify(const flashjit::FwdParams& params, int b, int h, int q0, "
         "int q_rows, int k0, int k_rows) {\n";
  if (listed) {
    out += "    const flashjit::IvBox box{flashjit::iv_i(b), flashjit::iv_i(h), flashjit::IvI{q0, q0 + q_rows - 1},\n"
           "                              flashjit::IvI{k0, k0 + k_rows - 1}, params.seqlen_q, params.seqlen_k};\n";
    out += "    const int c = flashjit::iv_tile_class(mask_interval(params, box));\n";
    out += "    return c == flashjit::kTileFull && (q_rows < T::BM || k_rows < T::BN) ? (int)flashjit::kTilePartial : c;\n";
  } else {
    out += "    return flashjit::kTilePartial;  // not called: the band gives the tiles\n";
  }
  out += "  }\n";
  out += "  static __device__ __forceinline__ float score(const flashjit::FwdParams& params, float x, int b, int h, "
         "int q_idx, int kv_idx) {\n";
  out += score ? "    return score_mod(params, x, b, h, q_idx, kv_idx);\n" : "    return x;\n";
  out += "  }\n";
  out += "  static __device__ __forceinline__ float dscore(const flashjit::FwdParams& params, float x, int b, int h, "
         "int q_idx, int kv_idx) {\n";
  out += score ? "    return score_mod_grad(params, x, b, h, q_idx, kv_idx);\n" : "    return 1.0f;\n";
  out += "  }\n};\n\n}  // namespace\n\n";
  out += fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}(const flashjit::BwdParams params) {{\n",
                     32 * t.warps, name);
  if (wgmma) {
    out += "  extern __shared__ __align__(1024) unsigned char smem[];  // aligned up to 1024 bytes inside\n";
    out += "  flashjit::bwd_dkdv_sm90<T, Variant>(params, smem);\n}\n";
  } else {
    out += "  extern __shared__ __align__(128) unsigned char smem[];\n";
    out += "  flashjit::bwd_dkdv<T, Variant>(params, smem);\n}\n";
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
