// The backward's kernel kinds on the CPU side: the registry, kernel identity (bwd_preprocess
// depends on the dtype and head dims only), NVRTC compiles for sm_80 and sm_90a over every
// head-dim pair, the one dispatch the CLI and cache import use, and the argument checks of
// backward_preprocess() and backward(); bwd_dkdv's tiles, variants and NVRTC compiles, and
// bwd_dq_convert's (all before any GPU is needed).
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/backward.h"
#include "flashjit/codegen.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/kernel_kinds.h"

using flashjit::AttentionSpec;
using flashjit::DType;
using flashjit::ElemType;
using flashjit::KernelKind;
using flashjit::TensorView;

namespace {

std::string arg_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const flashjit::ArgumentError& e) {
    return e.param() + " | " + e.what();
  }
  return "";
}

AttentionSpec spec_of(DType dt, int d, int dv) {
  AttentionSpec s;
  s.dtype = dt;
  s.head_dim = d;
  s.head_dim_v = dv;
  return s;
}

}  // namespace

TEST_CASE("backward kinds: bwd_preprocess is a registered kind with its own names", "[backward]") {
  REQUIRE(flashjit::kernel_kind_from_string("bwd_preprocess") == KernelKind::bwd_preprocess);
  CHECK(flashjit::kernel_kind_names() == "fwd, block_mask, bwd_preprocess, bwd_dkdv, bwd_dq_convert, bwd_dq");
  const std::string name = flashjit::codegen::bwd_preprocess_kernel_name(spec_of(DType::bf16, 128, 128));
  CHECK(name.rfind("flashjit_bwd_preprocess_bf16_d128x128_", 0) == 0);
  CHECK(flashjit::kernel_kind_of_name(name) == KernelKind::bwd_preprocess);
}

TEST_CASE("backward kinds: one preprocess kernel per dtype and head dims, whatever the variant", "[backward]") {
  AttentionSpec causal = spec_of(DType::bf16, 128, 128);
  causal.mask.kind = flashjit::MaskKind::causal;
  AttentionSpec custom = spec_of(DType::bf16, 128, 128);
  custom.mask.kind = flashjit::MaskKind::custom;
  custom.mask.expr = "doc[q_idx] == doc[kv_idx]";
  custom.captures = {{"doc", flashjit::expr::CaptureDType::i32, 1}};
  custom.score_mod = "score * 0.5";
  custom.num_heads_q = 8, custom.num_heads_kv = 2;
  custom.tile = flashjit::TileConfig{64, 64, 4, 2, flashjit::MmaKind::mma_sync};
  const std::string a = flashjit::emit_kind_cuda(KernelKind::bwd_preprocess, causal);
  CHECK(a == flashjit::emit_kind_cuda(KernelKind::bwd_preprocess, custom));
  CHECK(a != flashjit::emit_kind_cuda(KernelKind::bwd_preprocess, spec_of(DType::f16, 128, 128)));
  CHECK(a != flashjit::emit_kind_cuda(KernelKind::bwd_preprocess, spec_of(DType::bf16, 128, 64)));
  CHECK(a.find("flashjit::bwd_preprocess</*BF16=*/true, /*D=*/128, /*DV=*/128") != std::string::npos);
  // An invalid spec is refused naming its field, as every kind does.
  try {
    flashjit::emit_bwd_preprocess_cuda(spec_of(DType::bf16, 100, 128));
    FAIL("head_dim 100 accepted");
  } catch (const flashjit::SpecError& e) {
    CHECK(e.field() == "head_dim");
  }
}

TEST_CASE("backward kinds: bwd_preprocess compiles with NVRTC for every head-dim pair", "[backward][nvrtc]") {
  const std::vector<std::pair<int, int>> dims = {{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 128}, {256, 256}, {64, 256}};
  int compiled = 0;
  for (const char* arch : {"sm_80", "sm_90a"})
    for (DType dt : {DType::bf16, DType::f16})
      for (const auto& [d, dv] : dims) {
        flashjit::CompileOptions o;
        o.arch = arch;
        o.use_cache = false;
        const flashjit::CompiledKernel k = flashjit::compile_kind(KernelKind::bwd_preprocess, spec_of(dt, d, dv), o);
        INFO(arch << " " << flashjit::to_string(dt) << " d " << d << " dv " << dv << ": " << k.resources.registers
                  << " registers");
        CHECK(!k.image.empty());
        CHECK(k.threads == flashjit::codegen::kBwdPreprocessThreads);
        CHECK(k.resources.spill_store_bytes == 0);
        CHECK(k.resources.registers > 0);
        CHECK(k.resources.registers <= 64);  // a memory-bound kernel: many blocks per SM
        ++compiled;
      }
  CHECK(compiled == 28);
}

TEST_CASE("backward kinds: backward_preprocess checks its tensors before needing a GPU", "[backward]") {
  const AttentionSpec spec = spec_of(DType::bf16, 64, 64);
  alignas(16) static unsigned char o_mem[2 * 2 * 3 * 17 * 64], do_mem[2 * 2 * 3 * 17 * 64];
  alignas(16) static float d_mem[2 * 3 * 17], dq_mem[2 * 3 * 17 * 64];
  AttentionSpec spec3 = spec;
  spec3.num_heads_q = spec3.num_heads_kv = 3;
  const TensorView o = TensorView::bhsd(o_mem, ElemType::bf16, 2, 3, 17, 64);
  const TensorView dout = TensorView::bhsd(do_mem, ElemType::bf16, 2, 3, 17, 64);
  const TensorView d{d_mem, ElemType::f32, 3, {2, 3, 17, 0}, {51, 17, 1, 0}};
  const TensorView dq{dq_mem, ElemType::f32, 4, {2, 3, 17, 64}, {3 * 17 * 64, 17 * 64, 64, 1}};
  auto run = [&](const AttentionSpec& s, const TensorView& a, const TensorView& b, const TensorView& c,
                 const TensorView& e) { flashjit::backward_preprocess(s, a, b, c, e, nullptr); };
  // heads of o against the spec (the default spec has 1 head)
  CHECK(arg_error([&] { run(spec, o, dout, d, dq); }).find("o | ") == 0);
  TensorView o16 = o;
  o16.dtype = ElemType::f16;
  CHECK(arg_error([&] { run(spec3, o16, dout, d, dq); }).find("o | ") == 0);
  TensorView short_do = TensorView::bhsd(do_mem, ElemType::bf16, 2, 3, 16, 64);
  CHECK(arg_error([&] { run(spec3, o, short_do, d, dq); }).find("dout | ") == 0);
  TensorView d_bad = d;
  d_bad.strides[1] = 18;
  CHECK(arg_error([&] { run(spec3, o, dout, d_bad, dq); }).find("d | ") == 0);
  TensorView dq_half = dq;
  dq_half.dtype = ElemType::bf16;
  CHECK(arg_error([&] { run(spec3, o, dout, d, dq_half); }).find("dq_accum | ") == 0);
  TensorView dq_small = dq;
  dq_small.sizes[3] = 32;
  CHECK(arg_error([&] { run(spec3, o, dout, d, dq_small); }).find("dq_accum | ") == 0);
  // outputs may not share bytes with the inputs or each other
  const TensorView dq_on_o{o_mem, ElemType::f32, 4, {2, 3, 17, 64}, {3 * 17 * 64, 17 * 64, 64, 1}};
  CHECK(arg_error([&] { run(spec3, o, dout, d, dq_on_o); }).find("dq_accum | ") == 0);
  const TensorView d_on_dq{dq_mem, ElemType::f32, 3, {2, 3, 17, 0}, {51, 17, 1, 0}};
  CHECK(arg_error([&] { run(spec3, o, dout, d_on_dq, dq); }).find("dq_accum | ") == 0);
  // With everything valid, only the missing GPU stops it (when there is none).
  if (!flashjit::gpu_available()) CHECK_THROWS_AS(run(spec3, o, dout, d, dq), flashjit::CudaError);
}

TEST_CASE("backward kinds: bwd_dkdv and bwd_dq_convert are registered kinds with their own names", "[backward]") {
  AttentionSpec spec = spec_of(DType::bf16, 128, 128);
  spec.mask.kind = flashjit::MaskKind::causal;
  const std::string src = flashjit::emit_kind_cuda(KernelKind::bwd_dkdv, spec, "sm_90a");
  CHECK(src.find("flashjit_bwd_dkdv_bf16_d128x128_causal_br_") != std::string::npos);
  // sm_90a: the wgmma skeleton for head dims 64 and 128; sm_80 (and other head dims): mma.sync.
  CHECK(src.find("flashjit::bwd_dkdv_sm90<T, Variant>(params, smem);") != std::string::npos);
  CHECK(src.find("flashjit::BwdTraitsSm90<flashjit::BF16, /*D=*/128, /*DV=*/128, /*BM=*/64, /*BN=*/128, /*WARPS=*/8") !=
        std::string::npos);
  CHECK(flashjit::emit_kind_cuda(KernelKind::bwd_dkdv, spec, "sm_80").find("flashjit::bwd_dkdv<T, Variant>(params, smem);") !=
        std::string::npos);
  CHECK(flashjit::emit_kind_cuda(KernelKind::bwd_dkdv, spec_of(DType::bf16, 96, 96), "sm_90a")
            .find("flashjit::bwd_dkdv<T, Variant>(params, smem);") != std::string::npos);
  CHECK(src.find("static constexpr bool kListed = false;") != std::string::npos);
  const std::string conv = flashjit::emit_kind_cuda(KernelKind::bwd_dq_convert, spec);
  CHECK(conv.find("flashjit_bwd_dq_convert_bf16_d128_") != std::string::npos);
  // The convert depends on the dtype and head_dim only.
  AttentionSpec other = spec;
  other.mask.kind = flashjit::MaskKind::none;
  other.head_dim_v = 64;
  CHECK(conv == flashjit::emit_kind_cuda(KernelKind::bwd_dq_convert, other));
  // A mask expression that is not a band is classified per q tile; one that is, is not.
  AttentionSpec doc = spec;
  doc.mask.kind = flashjit::MaskKind::custom;
  doc.mask.expr = "doc[q_idx] == doc[kv_idx]";
  doc.captures = {{"doc", flashjit::expr::CaptureDType::i32, 1}};
  doc.score_mod = "30.0 * tanh(score / 30.0)";
  const std::string listed = flashjit::emit_bwd_dkdv_cuda(doc, "sm_80");
  CHECK(listed.find("static constexpr bool kListed = true;") != std::string::npos);
  CHECK(listed.find("mask_interval(params, box)") != std::string::npos);
  CHECK(listed.find("score_mod_grad(params, x, b, h, q_idx, kv_idx)") != std::string::npos);
  CHECK(listed.find("mask_row(") == std::string::npos);  // the forward's factored hooks are not emitted
  AttentionSpec band = spec;
  band.mask.kind = flashjit::MaskKind::custom;
  band.mask.expr = "q_idx >= kv_idx";
  CHECK(flashjit::emit_bwd_dkdv_cuda(band, "sm_80").find("kListed = false") != std::string::npos);
  // The forward's tile in the spec is not the backward's: backward kernels do not read it.
  AttentionSpec tiled = spec;
  tiled.tile = flashjit::TileConfig{128, 64, 4, 2, flashjit::MmaKind::mma_sync};
  CHECK(flashjit::emit_bwd_dkdv_cuda(tiled, "sm_90a") == flashjit::emit_bwd_dkdv_cuda(spec, "sm_90a"));
}

TEST_CASE("backward kinds: bwd_dkdv tiles are checked with errors that say what is allowed", "[backward]") {
  const AttentionSpec spec = spec_of(DType::bf16, 128, 128);
  auto problem = [&](flashjit::TileConfig t, const char* arch) -> std::string {
    try {
      flashjit::check_bwd_tile(spec, t, arch);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  using flashjit::TileConfig;
  CHECK(problem(TileConfig{64, 64, 8, 2}, "sm_90a").empty());
  CHECK(problem(TileConfig{64, 64, 8, 3}, "sm_90a").find("stages must be 1 or 2") != std::string::npos);
  CHECK(problem(TileConfig{64, 40, 8, 2}, "sm_90a").find("block_n must be a positive multiple of 16") != std::string::npos);
  CHECK(problem(TileConfig{64, 128, 4, 2}, "sm_90a").find("multiple of block_n / 16 = 8") != std::string::npos);
  CHECK(problem(TileConfig{48, 64, 8, 2}, "sm_90a").find("block_m must be a positive multiple of") != std::string::npos);
  // wgmma: sm_90a only, 64 keys per warpgroup, q tiles of 64 or 128, head dims 64 or 128, the dQ
  // tile in whole 64-column slabs per warpgroup, and what fits in registers.
  using flashjit::MmaKind;
  CHECK(problem(TileConfig{64, 128, 8, 2, MmaKind::wgmma}, "sm_90a").empty());
  CHECK(problem(TileConfig{64, 128, 8, 2, MmaKind::wgmma}, "sm_80").find("needs arch sm_90a") != std::string::npos);
  CHECK(problem(TileConfig{64, 64, 8, 2, MmaKind::wgmma}, "sm_90a").find("64 keys per warpgroup = 128") != std::string::npos);
  CHECK(problem(TileConfig{96, 128, 8, 2, MmaKind::wgmma}, "sm_90a").find("block_m must be 64 or 128") != std::string::npos);
  CHECK(problem(TileConfig{128, 128, 8, 2, MmaKind::wgmma}, "sm_90a").find("fp32 accumulators") != std::string::npos);
  auto problem_for = [&](int d, flashjit::TileConfig t) -> std::string {
    try {
      flashjit::check_bwd_tile(spec_of(DType::bf16, d, d), t, "sm_90a");
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  CHECK(problem_for(96, TileConfig{64, 128, 8, 2, MmaKind::wgmma}).find("head_dim 64 or 128; got 96") != std::string::npos);
  CHECK(problem_for(64, TileConfig{128, 128, 8, 2, MmaKind::wgmma}).empty());
  CHECK(problem_for(64, TileConfig{64, 128, 8, 2, MmaKind::wgmma}).find("64 x 64 slabs") != std::string::npos);
  CHECK(problem(TileConfig{64, 128, 8, 2}, "sm_90a").find("fp32 accumulators") != std::string::npos);
  AttentionSpec big = spec_of(DType::bf16, 256, 256);
  CHECK_THROWS_AS(flashjit::check_bwd_tile(big, TileConfig{64, 64, 8, 2}, "sm_80"), flashjit::LegalityError);
  // The heuristic picks a legal tile for every head-dim pair on both archs.
  for (const char* arch : {"sm_80", "sm_90a"})
    for (const auto& [d, dv] : std::vector<std::pair<int, int>>{{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 192}, {256, 256}, {64, 128}})
      CHECK_NOTHROW(flashjit::check_bwd_tile(spec_of(DType::bf16, d, dv), flashjit::default_bwd_tile(spec_of(DType::bf16, d, dv), arch), arch));
}

// Spills: at most 32 bytes (8 registers) for the heuristic tiles. The wgmma skeleton runs at
// 255 registers (dK, dV and half a tile's Sᵀ, dPᵀ beside them) and ptxas may spill a few
// loop-invariant values; measured on the H200 it is still 1.01-1.12x FlashAttention-2
// (docs/performance.md). The mma.sync kernels at head dims 192 and 256 likewise.
constexpr int kMaxSpillBytes = 32;

TEST_CASE("backward kinds: bwd_dkdv compiles with NVRTC for every head-dim pair, spilling at most 32 bytes", "[backward][nvrtc]") {
  const std::vector<std::pair<int, int>> dims = {{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 192}, {256, 256}, {128, 64}};
  int compiled = 0;
  for (const char* arch : {"sm_80", "sm_90a"})
    for (DType dt : {DType::bf16, DType::f16})
      for (const auto& [d, dv] : dims) {
        AttentionSpec spec = spec_of(dt, d, dv);
        spec.mask.kind = compiled % 2 ? flashjit::MaskKind::causal : flashjit::MaskKind::none;
        flashjit::CompileOptions o;
        o.arch = arch;
        o.use_cache = false;
        const flashjit::CompiledKernel k = flashjit::compile_kind(KernelKind::bwd_dkdv, spec, o);
        INFO(arch << " " << flashjit::to_string(dt) << " d " << d << " dv " << dv << ": " << k.resources.registers
                  << " registers");
        CHECK(!k.image.empty());
        CHECK(k.resources.spill_store_bytes <= kMaxSpillBytes);
        CHECK(k.dynamic_smem_bytes == flashjit::codegen::bwd_dkdv_smem_bytes(spec, k.tile));
        // sm_90a with head dims 64/128: the wgmma skeleton, and no ptxas warning (a serialised
        // wgmma is a silent performance cliff, HOPPER-NOTES.md).
        const bool wgmma_dims = (d == 64 || d == 128) && (dv == 64 || dv == 128);
        CHECK((k.tile.mma == flashjit::MmaKind::wgmma) == (std::string(arch) == "sm_90a" && wgmma_dims));
        if (k.tile.mma == flashjit::MmaKind::wgmma) {
          INFO(k.log);
          CHECK(k.log.find("wgmma") == std::string::npos);
          CHECK(k.log.find("arning") == std::string::npos);
        }
        ++compiled;
      }
  CHECK(compiled == 28);
  // A classified mask with captures and a score_mod (its derivative compiled beside it), and
  // the convert kernel.
  AttentionSpec doc = spec_of(DType::f16, 64, 64);
  doc.mask.kind = flashjit::MaskKind::custom;
  doc.mask.expr = "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)";
  doc.score_mod = "score + slopes[h] * float(kv_idx - q_idx)";
  doc.captures = {{"doc", flashjit::expr::CaptureDType::i32, 1}, {"slopes", flashjit::expr::CaptureDType::f32, 1}};
  for (const char* arch : {"sm_80", "sm_90a"}) {
    flashjit::CompileOptions o;
    o.arch = arch;
    o.use_cache = false;
    CHECK(flashjit::compile_bwd_dkdv(doc, o).resources.spill_store_bytes <= kMaxSpillBytes);
    CHECK(!flashjit::compile_bwd_dq_convert(doc, o).image.empty());
  }
}

// The deterministic mode's dQ kernel: its own kind, recognised by name beside bwd_dq_convert,
// the same Variant as bwd_dkdv, compiled for every head-dim pair on both archs.
TEST_CASE("backward kinds: bwd_dq (deterministic dQ) compiles for every head-dim pair", "[backward][nvrtc]") {
  REQUIRE(flashjit::kernel_kind_from_string("bwd_dq") == KernelKind::bwd_dq);
  AttentionSpec spec = spec_of(DType::bf16, 128, 128);
  spec.mask.kind = flashjit::MaskKind::causal;
  const std::string src = flashjit::emit_kind_cuda(KernelKind::bwd_dq, spec, "sm_90a");
  CHECK(src.find("flashjit::bwd_dq<T, Variant>(params, smem);") != std::string::npos);
  CHECK(src.find("using T = flashjit::BwdDqTraits<flashjit::BF16, /*D=*/128, /*DV=*/128, /*BM=*/64, /*BN=*/32, /*WARPS=*/4") !=
        std::string::npos);
  CHECK(src.find("return flashjit::band_visible_i32(band, q_idx, kv_idx, params.seqlen_k);") != std::string::npos);
  const std::string name = flashjit::codegen::bwd_dq_kernel_name(spec);
  CHECK(name.rfind("flashjit_bwd_dq_bf16_d128x128_causal_br_", 0) == 0);
  CHECK(flashjit::kernel_kind_of_name(name) == KernelKind::bwd_dq);
  CHECK(flashjit::kernel_kind_of_name(flashjit::codegen::bwd_dq_convert_kernel_name(spec)) == KernelKind::bwd_dq_convert);
  const std::vector<std::pair<int, int>> dims = {{32, 32}, {64, 64}, {96, 96}, {128, 128}, {192, 192}, {256, 256}, {128, 64}};
  int compiled = 0;
  for (const char* arch : {"sm_80", "sm_90a"})
    for (const auto& [d, dv] : dims) {
      AttentionSpec s = spec_of(compiled % 3 ? DType::bf16 : DType::f16, d, dv);
      s.mask.kind = compiled % 2 ? flashjit::MaskKind::causal : flashjit::MaskKind::none;
      flashjit::CompileOptions o;
      o.arch = arch;
      o.use_cache = false;
      const flashjit::CompiledKernel k = flashjit::compile_kind(KernelKind::bwd_dq, s, o);
      INFO(arch << " d " << d << " dv " << dv << ": " << k.resources.registers << " registers");
      CHECK(!k.image.empty());
      // Head dim 256 without a mask: dQ's 128 accumulators per thread leave ptxas too few
      // registers to prefetch K's fragments without spilling ~80 bytes; every other pair: none.
      CHECK(k.resources.spill_store_bytes <= (d == 256 ? 128 : 0));
      CHECK(k.dynamic_smem_bytes == flashjit::codegen::bwd_dq_smem_bytes(s, k.tile));
      ++compiled;
    }
  CHECK(compiled == 14);
  // A classified mask with captures and a score_mod.
  AttentionSpec doc = spec_of(DType::f16, 64, 64);
  doc.mask.kind = flashjit::MaskKind::custom;
  doc.mask.expr = "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)";
  doc.score_mod = "score + slopes[h] * float(kv_idx - q_idx)";
  doc.captures = {{"doc", flashjit::expr::CaptureDType::i32, 1}, {"slopes", flashjit::expr::CaptureDType::f32, 1}};
  flashjit::CompileOptions o;
  o.arch = "sm_90a";
  o.use_cache = false;
  const flashjit::CompiledKernel k = flashjit::compile_bwd_dq(doc, o);
  CHECK(k.resources.spill_store_bytes == 0);
  CHECK(flashjit::emit_bwd_dq_cuda(doc, "sm_90a").find("static constexpr bool kListed = true;") != std::string::npos);
}

// Gradients into captured tensors: the `_dcap` bwd_dkdv kernels add g · d score_mod / d read
// into bp.dcaps for every float read on a differentiable path; both skeletons compile.
TEST_CASE("backward kinds: bwd_dkdv with capture gradients (a learnable bias) compiles on both skeletons", "[backward][nvrtc]") {
  AttentionSpec spec = spec_of(DType::bf16, 128, 128);
  spec.mask.kind = flashjit::MaskKind::causal;
  spec.num_heads_q = 4, spec.num_heads_kv = 2;
  spec.score_mod = "score * (1.0 + 0.1 * slopes[h]) + table[h, min(max(q_idx - kv_idx + 8, 0), 15)] + float(doc[q_idx])";
  spec.captures = {{"slopes", flashjit::expr::CaptureDType::f32, 1}, {"table", flashjit::expr::CaptureDType::f32, 2},
                   {"doc", flashjit::expr::CaptureDType::i32, 1}};
  CHECK(flashjit::codegen::score_grad_captures(spec.score_mod, spec.captures) == std::vector<int>{0, 1});
  for (const char* arch : {"sm_80", "sm_90a"}) {
    AttentionSpec s = spec;
    s.tile = flashjit::default_bwd_tile(spec, arch);
    const std::string src = flashjit::codegen::generate_bwd_dkdv_cuda(s, true, true);
    CHECK(src.find("static constexpr bool kCaptureGrads = true;") != std::string::npos);
    CHECK(src.find("fj_grad_add(bp.dcaps[0], g * (0.100000001f * score), h);") != std::string::npos);
    CHECK(src.find("fj_grad_add(bp.dcaps[1], g * 1.0f, h, fj_imin(fj_imax(fj_iadd(fj_isub(q_idx, kv_idx), 8), 0), 15));") !=
          std::string::npos);
    CHECK(src.find("bp.dcaps[2]") == std::string::npos);  // an int capture: no gradient
    CHECK(flashjit::codegen::bwd_dkdv_kernel_name(s, true, true).find("_dcap") != std::string::npos);
    flashjit::CompileOptions o;
    o.arch = arch;
    o.use_cache = false;
    const flashjit::CompiledKernel k = flashjit::compile_bwd_dkdv(spec, o, std::nullopt, true, true);
    INFO(arch << ": " << k.resources.registers << " registers, " << k.resources.spill_store_bytes << " bytes spilled");
    CHECK(!k.image.empty());
    CHECK(k.kernel_name.find("_dcap") != std::string::npos);
    // The deterministic mode's kernel with capture gradients too.
    CHECK(!flashjit::compile_bwd_dkdv(spec, o, std::nullopt, false, true).image.empty());
  }
  // A score_mod without a differentiable read has no capture gradient to compute.
  AttentionSpec none = spec;
  none.score_mod = "score + float(doc[q_idx])";
  none.tile = flashjit::default_bwd_tile(none, "sm_80");
  CHECK_THROWS_AS(flashjit::codegen::generate_bwd_dkdv_cuda(none, true, true), flashjit::SpecError);
}

TEST_CASE("backward kinds: backward() checks its tensors before needing a GPU", "[backward]") {
  AttentionSpec spec = spec_of(DType::bf16, 64, 64);
  spec.num_heads_q = 3, spec.num_heads_kv = 1;
  constexpr int B = 1, HQ = 3, HK = 1, S = 17, D = 64;
  alignas(16) static uint16_t q[B * HQ * S * D], k[B * HK * S * D], v[B * HK * S * D], o[B * HQ * S * D],
      dout[B * HQ * S * D], dq[B * HQ * S * D], dk[B * HK * S * D], dv[B * HK * S * D];
  alignas(16) static float lse[B * HQ * S];
  const auto t = [](uint16_t* p, int h) { return TensorView::bhsd(p, ElemType::bf16, B, h, S, D); };
  const TensorView tl = TensorView::lse(lse, B, HQ, S);
  auto run = [&](const TensorView& a_dq, const TensorView& a_dk, const TensorView& a_dv, const TensorView& a_do) {
    flashjit::backward(spec, t(q, HQ), t(k, HK), t(v, HK), t(o, HQ), tl, a_do, a_dq, a_dk, a_dv, nullptr);
  };
  CHECK(arg_error([&] { run(t(dq, HQ), t(dk, HK), t(dv, HK), t(dout, 2)); }).find("dout | ") == 0);
  CHECK(arg_error([&] { run(t(dq, 2), t(dk, HK), t(dv, HK), t(dout, HQ)); }).find("dq | ") == 0);
  TensorView dk16 = t(dk, HK);
  dk16.dtype = ElemType::f16;
  CHECK(arg_error([&] { run(t(dq, HQ), dk16, t(dv, HK), t(dout, HQ)); }).find("dk | ") == 0);
  // gradients written over an input, or over each other
  CHECK(arg_error([&] { run(t(dq, HQ), t(dk, HK), t(v, HK), t(dout, HQ)); }).find("dv | ") == 0);
  CHECK(arg_error([&] { run(t(dq, HQ), t(dk, HK), t(dk, HK), t(dout, HQ)); }).find("dv | ") == 0);
  // a workspace that is too small is refused naming the option
  flashjit::BackwardOptions small;
  alignas(16) static unsigned char ws[64];
  small.workspace = ws, small.workspace_bytes = sizeof ws;
  CHECK(arg_error([&] {
          flashjit::backward(spec, t(q, HQ), t(k, HK), t(v, HK), t(o, HQ), tl, t(dout, HQ), t(dq, HQ), t(dk, HK),
                             t(dv, HK), nullptr, {}, small);
        }).find("options.workspace_bytes | ") == 0);
  CHECK(flashjit::backward_workspace_bytes(spec, B, S) == 256 + (B * HQ * S * D * 4 + 255) / 256 * 256);
  if (!flashjit::gpu_available()) CHECK_THROWS_AS(run(t(dq, HQ), t(dk, HK), t(dv, HK), t(dout, HQ)), flashjit::CudaError);
}

// Dropout (issue 11): every kernel kind of a dropout spec compiles for both skeletons (the
// forward, bwd_dkdv with and without dQ, bwd_dq, a capture gradient), carries the threshold,
// and stays inside the register file; the wgmma forward without spills or serialisation.
TEST_CASE("dropout kernels compile with NVRTC for every kind and both skeletons", "[backward][nvrtc][dropout]") {
  for (int d : {64, 128})
    for (const char* arch : {"sm_80", "sm_90a"}) {
      AttentionSpec spec = spec_of(DType::bf16, d, d);
      spec.mask.kind = flashjit::MaskKind::causal;
      spec.num_heads_q = 6, spec.num_heads_kv = 2;
      spec.dropout_p = 0.1;
      spec.return_lse = true;
      flashjit::CompileOptions o;
      o.arch = arch;
      o.use_cache = false;
      INFO(arch << " d " << d);
      const flashjit::CompiledKernel f = flashjit::compile(spec, o);
      CHECK(f.kernel_name.find("_drop_") != std::string::npos);
      CHECK(f.resources.registers <= 255);
      if (f.tile.mma == flashjit::MmaKind::wgmma) {
        INFO(f.log);
        CHECK(f.resources.spill_store_bytes == 0);
        CHECK(f.log.find("wgmma") == std::string::npos);
      }
      for (bool dq_partials : {true, false}) {
        const flashjit::CompiledKernel k = flashjit::compile_bwd_dkdv(spec, o, std::nullopt, dq_partials);
        INFO(k.kernel_name << ": " << k.resources.registers << " registers, " << k.resources.spill_store_bytes << " spilled");
        CHECK(k.resources.spill_store_bytes <= 32);
      }
      CHECK(flashjit::emit_bwd_dkdv_cuda(spec, arch).find("kDropThreshold = 25;") != std::string::npos);
      const flashjit::CompiledKernel q = flashjit::compile_bwd_dq(spec, o);
      CHECK(q.resources.spill_store_bytes == 0);
      AttentionSpec bias = spec;
      bias.score_mod = "score + slopes[h] * float(kv_idx - q_idx)";
      bias.captures = {{"slopes", flashjit::expr::CaptureDType::f32, 1}};
      CHECK(!flashjit::compile_bwd_dkdv(bias, o, std::nullopt, true, true).image.empty());
    }
  // The forward at the other head dims: on sm_90a's wgmma path (192, 256) without spills or
  // serialised wgmma (the numbers are drawn after the softmax, outside any GEMM's flight).
  for (int d : {32, 96, 192, 256}) {
    AttentionSpec spec = spec_of(DType::f16, d, d);
    spec.dropout_p = 0.2;
    flashjit::CompileOptions o;
    o.arch = "sm_90a";
    o.use_cache = false;
    const flashjit::CompiledKernel f = flashjit::compile(spec, o);
    INFO("d " << d << ": " << f.log);
    CHECK(f.resources.spill_store_bytes == 0);
    CHECK(f.log.find("wgmma") == std::string::npos);
  }
}
