// The variant part of the backward's kernels (bwd_dkdv, bwd_dq): the mask as a band in closed
// form or as mask_mod plus its interval classification, score_mod and its symbolic
// derivative, wrapped in the `Variant` struct the device skeletons call (bwd_block.cuh).
#include <fmt/format.h>

#include <cmath>
#include <string>

#include "flashjit/codegen.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/philox.cuh"
#include "flashjit/spec.h"

namespace flashjit::codegen {
namespace {

std::string band_text(const ir::BandMask& b) {
  return fmt::format("flashjit::Band{{/*has_lo=*/{}, /*has_hi=*/{}, /*lo=*/{}, /*hi=*/{}, /*offset=*/{}}}",
                     b.lo ? "true" : "false", b.hi ? "true" : "false", b.lo.value_or(0), b.hi.value_or(0),
                     b.bottom_right ? "(long long)params.seqlen_k - params.seqlen_q" : "0");
}

}  // namespace

std::string bwd_variant_text(const AttentionSpec& spec0, bool capture_grads) {
  const AttentionSpec spec = spec0.normalized();
  const ir::LoopMask lm = ir::loop_mask(spec);  // a band, or an expression to classify
  const std::string& mask_expr = lm.expr;
  const bool listed = !mask_expr.empty();
  const bool score = !spec.score_mod.empty();
  const double scale = spec.effective_scale();
  std::string out;
  out += capture_comments(spec.captures);
  if (listed) out += mask_hooks(mask_expr, spec.captures, /*factored=*/false);
  if (score) out += score_hook(spec.score_mod, spec.captures, /*factored=*/false) + score_grad_hook(spec.score_mod, spec.captures);
  if (capture_grads) out += capture_grad_hook(spec.score_mod, spec.captures);

  // The struct goes outside the anonymous namespace: with external linkage, the members a
  // variant does not call (classify of a band, score without a score_mod) draw no
  // "declared but never referenced" warning into the compile log.
  out += "}  // namespace\n\n";
  out += "// The variant the skeleton calls (bwd_block.cuh, top).\n";
  out += "struct Variant {\n";
  out += listed ? "  // Mask custom: tiles classified by interval analysis of mask_mod.\n"
                : fmt::format("  // Mask {}: tiles in closed form (band_q_tiles, band_kv_tiles).\n", to_string(spec.mask.kind));
  out += fmt::format("  static constexpr bool kListed = {};\n", listed ? "true" : "false");
  out += fmt::format("  static constexpr bool kScoreMod = {};\n", score ? "true" : "false");
  out += fmt::format("  static constexpr bool kCaptureGrads = {};  // gradients into captured tensors\n",
                     capture_grads ? "true" : "false");
  const uint32_t threshold = dropout_threshold(spec.dropout_p);
  out += fmt::format("  static constexpr bool kDropout = {};  // p = {:.9g} (philox.cuh)\n", spec.dropout_p > 0 ? "true" : "false",
                     spec.dropout_p);
  out += fmt::format("  static constexpr flashjit::u32 kDropThreshold = {};  // dropped below floor(p * 256)\n", threshold);
  out += fmt::format("  static constexpr float kDropScale = {};  // 1 / (1 - p) for the kept\n",
                     float_literal(dropout_keep_scale(threshold)));
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
  out += "  }\n";
  out += "  static __device__ __forceinline__ void capture_grads(const flashjit::BwdParams& bp, float g, float x, int b, "
         "int h, int q_idx, int kv_idx) {\n";
  out += capture_grads ? "    score_mod_capture_grads(bp, g, x, b, h, q_idx, kv_idx);\n" : "    // none: kCaptureGrads is false\n";
  out += "  }\n};\n\n";
  return out;
}

}  // namespace flashjit::codegen
