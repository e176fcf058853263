// The backward's kernel kinds on the CPU side: the registry, kernel identity (bwd_preprocess
// depends on the dtype and head dims only), NVRTC compiles for sm_80 and sm_90a over every
// head-dim pair, the one dispatch the CLI and cache import use, and the argument checks of
// backward_preprocess() (all before any GPU is needed).
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/backward.h"
#include "flashjit/codegen.h"
#include "flashjit/error.h"
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
  CHECK(flashjit::kernel_kind_names() == "fwd, block_mask, bwd_preprocess");
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
