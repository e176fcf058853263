// Block masks without a GPU: the spec a block mask gives (with_block_mask), the built-in masks
// as expressions, the CPU oracle of the builder, the forward over cells on the CPU evaluator
// (classified == unclassified, and equal to the dense mask it stands for), and NVRTC compiles
// of the builder kernel.
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/block_mask.h"
#include "flashjit/block_mask_eval.h"
#include "flashjit/codegen.h"
#include "flashjit/kernel_kind.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "flashjit/ir.h"
#include "flashjit/passes.h"
#include "flashjit/runtime.h"
#include "random_expr.h"

using flashjit::AttentionSpec;
using flashjit::DType;
using flashjit::MaskKind;
namespace expr = flashjit::expr;

namespace {

std::string arg_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const flashjit::ArgumentError& e) {
    return e.param() + " | " + e.what();
  }
  return "";
}

flashjit::eval::HostTensor random_tensor(std::mt19937& rng, DType dt, int64_t b, int64_t h, int64_t s, int64_t d) {
  std::normal_distribution<double> nd(0.0, 1.0);
  flashjit::eval::HostTensor t(b, h, s, d);
  for (double& x : t.data) x = flashjit::eval::round_to(dt, nd(rng));
  return t;
}

}  // namespace

TEST_CASE("block mask: built-in masks as expressions", "[block_mask]") {
  flashjit::MaskSpec m;
  CHECK(flashjit::mask_expression(m) == "true");
  m.kind = MaskKind::causal;
  CHECK(flashjit::mask_expression(m) == "kv_idx <= q_idx + (seqlen_k - seqlen_q)");
  m.align = flashjit::MaskAlign::top_left;
  CHECK(flashjit::mask_expression(m) == "kv_idx <= q_idx");
  m.kind = MaskKind::sliding_window;
  m.left = 8, m.right = 0;
  CHECK(flashjit::mask_expression(m) == "kv_idx >= q_idx - 8 & kv_idx <= q_idx + 0");
  // The expression form of each built-in is the built-in: it compiles to the same band.
  for (const flashjit::MaskSpec& mk : {flashjit::MaskSpec{MaskKind::causal}, m}) {
    AttentionSpec a, b;
    a.head_dim = b.head_dim = 64;
    a.mask = mk;
    b.mask.kind = MaskKind::custom;
    b.mask.expr = flashjit::mask_expression(mk);
    const auto ka = flashjit::passes::run_pipeline(flashjit::ir::lower(flashjit::resolve_tile(a, "sm_80")), "sm_80");
    const auto kb = flashjit::passes::run_pipeline(flashjit::ir::lower(flashjit::resolve_tile(b, "sm_80")), "sm_80");
    CHECK(ka.loop.mask.lo == kb.loop.mask.lo);
    CHECK(ka.loop.mask.hi == kb.loop.mask.hi);
    CHECK(ka.loop.mask.bottom_right == kb.loop.mask.bottom_right);
  }
}

TEST_CASE("block mask: with_block_mask adds the cells as a capture and an expression", "[block_mask]") {
  AttentionSpec s;
  s.mask.kind = MaskKind::causal;
  const AttentionSpec r = flashjit::with_block_mask(s, 128, 64, false, true);
  REQUIRE(r.captures.size() == 1);
  CHECK(r.captures[0].name == "block_mask");
  CHECK(r.captures[0].dtype == expr::CaptureDType::i32);
  CHECK(r.captures[0].rank == 4);
  CHECK(r.mask.kind == MaskKind::custom);
  CHECK(r.mask.expr ==
        "block_mask[0, h, q_idx // 128, kv_idx // 64] == 2 | block_mask[0, h, q_idx // 128, kv_idx // 64] == 1 & "
        "kv_idx <= q_idx + (seqlen_k - seqlen_q)");
  AttentionSpec none;
  CHECK(flashjit::with_block_mask(none, 16, 16, true, false).mask.expr == "block_mask[b, 0, q_idx // 16, kv_idx // 16] != 0");
  AttentionSpec taken;
  taken.mask.kind = MaskKind::custom;
  taken.mask.expr = "block_mask[q_idx] == 0";
  taken.captures = {{"block_mask", expr::CaptureDType::i32, 1}};
  CHECK(arg_error([&] { flashjit::with_block_mask(taken, 128, 128, false, false); }).find("captures | ") == 0);
  CHECK(arg_error([&] { flashjit::with_block_mask(s, 0, 128, false, false); }).find("block_mask.block_q | ") == 0);
}

TEST_CASE("block mask: the CPU oracle classifies cells element by element", "[block_mask][eval]") {
  // Causal over 10 x 10 in blocks of 4: the diagonal cells are partial, below full, above empty.
  const auto c = flashjit::eval::block_mask_cells("kv_idx <= q_idx", {}, {}, 1, 1, 10, 10, 4, 4);
  CHECK(c == std::vector<int32_t>{1, 0, 0, 2, 1, 0, 2, 2, 1});
  // Per head: h selects the mask; the last, short cells count only real elements.
  const auto d = flashjit::eval::block_mask_cells("h == 0 | kv_idx == 9", {}, {}, 1, 2, 3, 10, 3, 4);
  CHECK(d == std::vector<int32_t>{2, 2, 2, 0, 0, 1});
}

TEST_CASE("block mask: the forward over cells equals the dense mask, classified or not", "[block_mask][eval]") {
  std::mt19937 rng(3);
  std::mt19937_64 gen(8);
  int64_t skipped = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const int bq = 1 + static_cast<int>(rng() % 40), bk = 1 + static_cast<int>(rng() % 40);
    const int64_t sq = 1 + rng() % 70, sk = 1 + rng() % 70;
    const bool per_head = trial % 2 == 1;
    AttentionSpec own;
    own.dtype = DType::bf16;
    own.head_dim = 32;
    own.num_heads_q = 2;
    own.num_heads_kv = 1;
    own.return_lse = true;
    if (trial % 3 == 1) own.mask.kind = MaskKind::causal;
    if (trial % 3 == 2) own.mask = flashjit::MaskSpec{MaskKind::custom, {}, -1, -1, "(q_idx + kv_idx) % 3 != 0"};
    // Random index-only masks (no captures of their own) beside the cells.
    if (trial >= 6) own.mask = flashjit::MaskSpec{MaskKind::custom, {}, -1, -1, flashjit::testing::random_mask_expr(gen, {}, 8, 4)};
    AttentionSpec spec = flashjit::with_block_mask(own, bq, bk, false, per_head);
    const int64_t nqb = (sq + bq - 1) / bq, nkb = (sk + bk - 1) / bk, nh = per_head ? 2 : 1;
    std::vector<int32_t> cells(static_cast<size_t>(nh * nqb * nkb));
    for (int32_t& x : cells) x = static_cast<int32_t>(rng() % 3);
    const std::vector<expr::HostCapture> caps = {
        {cells.data(), expr::CaptureDType::i32, 4, {1, nh, nqb, nkb}, {nh * nqb * nkb, nqb * nkb, nkb, 1}}};
    // The dense mask the cells stand for, as a bool capture of the same forward.
    std::vector<unsigned char> dense(static_cast<size_t>(2 * sq * sk));
    const expr::Expr own_mask = expr::parse(flashjit::mask_expression(own.normalized().mask), expr::Context{});
    for (int h = 0; h < 2; ++h)
      for (int64_t i = 0; i < sq; ++i)
        for (int64_t j = 0; j < sk; ++j) {
          const int32_t cell = cells[static_cast<size_t>(((per_head ? h : 0) * nqb + i / bq) * nkb + j / bk)];
          expr::Env env;
          env.h = h, env.q_idx = static_cast<int>(i), env.kv_idx = static_cast<int>(j);
          env.seqlen_q = static_cast<int>(sq), env.seqlen_k = static_cast<int>(sk);
          dense[static_cast<size_t>((h * sq + i) * sk + j)] = cell == 2 || (cell == 1 && expr::eval_mask(own_mask, env));
        }
    AttentionSpec dspec = own;
    dspec.mask = flashjit::MaskSpec{MaskKind::custom, {}, -1, -1, "dense[h, q_idx, kv_idx]"};
    dspec.captures = {{"dense", expr::CaptureDType::boolean, 3}};
    const std::vector<expr::HostCapture> dcaps = {
        {dense.data(), expr::CaptureDType::boolean, 3, {2, sq, sk, 0}, {sq * sk, sk, 1, 0}}};

    spec.tile = flashjit::TileConfig{16, 16, 1, 2, flashjit::MmaKind::mma_sync};
    const auto q = random_tensor(rng, spec.dtype, 1, 2, sq, 32);
    const auto k = random_tensor(rng, spec.dtype, 1, 1, sk, 32);
    const auto v = random_tensor(rng, spec.dtype, 1, 1, sk, 32);
    const auto lowered = flashjit::ir::lower(spec);
    const auto got = flashjit::eval::evaluate(flashjit::passes::run_pipeline(lowered, "sm_80"), q, k, v, caps);
    const auto unclassified = flashjit::eval::evaluate(lowered, q, k, v, caps);
    const auto ref = flashjit::eval::reference_attention(spec, q, k, v, caps);
    const auto dref = flashjit::eval::reference_attention(dspec, q, k, v, dcaps);
    INFO("trial " << trial << " blocks " << bq << "x" << bk << " sq " << sq << " sk " << sk);
    CHECK(std::memcmp(got.o.data.data(), unclassified.o.data.data(), got.o.data.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(got.lse.data(), unclassified.lse.data(), got.lse.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(ref.o.data.data(), dref.o.data.data(), ref.o.data.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(ref.lse.data(), dref.lse.data(), ref.lse.size() * sizeof(double)) == 0);
    for (size_t i = 0; i < ref.o.data.size(); ++i) REQUIRE(std::abs(got.o.data[i] - ref.o.data[i]) < 2e-2);
    skipped += got.tiles_skipped;
  }
  CHECK(skipped > 0);  // tiles inside empty cells are never visited
}

TEST_CASE("block mask: the builder kernel compiles with NVRTC for sm_80 and sm_90a", "[block_mask][nvrtc]") {
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}};
  const std::string mask = "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)";
  const std::string src = flashjit::emit_block_mask_cuda(mask, caps);
  CHECK(src.find("flashjit::block_mask_cells<128>") != std::string::npos);
  CHECK(src.find("// mask_mod: doc[q_idx] == doc[kv_idx] & q_idx >= kv_idx") != std::string::npos);
  for (const char* arch : {"sm_80", "sm_90a"}) {
    flashjit::CompileOptions o;
    o.arch = arch;
    o.use_cache = false;
    const flashjit::CompiledKernel k = flashjit::compile_block_mask(mask, caps, o);
    CHECK(k.kernel_name.rfind("flashjit_block_mask_", 0) == 0);
    CHECK(!k.image.empty());
    CHECK(k.resources.registers > 0);
  }
  // Kernel identity: the expression's structure and the captures' dtypes, not their values.
  CHECK(flashjit::emit_block_mask_cuda("q_idx>=kv_idx", {}) == flashjit::emit_block_mask_cuda("q_idx >= kv_idx", {}));
  CHECK(arg_error([] { flashjit::emit_block_mask_cuda("q_idx >=", {}); }).find("mask_expr | ") == 0);
  CHECK(arg_error([] { flashjit::emit_block_mask_cuda("q_idx + 1", {}); }).find("mask_expr | ") == 0);
}

TEST_CASE("block mask: build_block_mask checks its arguments before needing a GPU", "[block_mask]") {
  std::vector<int32_t> host(4);
  flashjit::TensorView cells;
  cells.data = host.data();
  cells.dtype = flashjit::ElemType::i32;
  cells.rank = 4;
  const int64_t sizes[4] = {1, 1, 2, 2}, strides[4] = {4, 4, 2, 1};
  for (int d = 0; d < 4; ++d) cells.sizes[d] = sizes[d], cells.strides[d] = strides[d];
  const flashjit::BlockMaskShape ok{1, 1, 256, 256, 128, 128};
  auto build = [&](const flashjit::BlockMaskShape& s, const flashjit::TensorView& c) {
    flashjit::build_block_mask("q_idx >= kv_idx", {}, s, c, nullptr);
  };
  CHECK(arg_error([&] { build({0, 1, 256, 256, 128, 128}, cells); }).find("batch | ") == 0);
  CHECK(arg_error([&] { build({1, 1, 0, 256, 128, 128}, cells); }).find("seqlen_q | ") == 0);
  CHECK(arg_error([&] { build({1, 1, 256, 256, 128, 0}, cells); }).find("block_kv | ") == 0);
  CHECK(arg_error([&] { build({1, 1, 257, 256, 128, 128}, cells); }).find("cells | ") == 0);  // 3 q blocks
  flashjit::TensorView f32 = cells;
  f32.dtype = flashjit::ElemType::f32;
  CHECK(arg_error([&] { build(ok, f32); }).find("cells | ") == 0);
  flashjit::TensorView strided = cells;
  strided.strides[2] = 3;
  CHECK(arg_error([&] { build(ok, strided); }).find("cells | ") == 0);
  CHECK(arg_error([&] { flashjit::build_block_mask("doc[q_idx] == 0", {{"doc", expr::CaptureDType::i32, 1}}, ok, cells, nullptr); })
            .find("captures | ") == 0);  // declared but not passed
}

TEST_CASE("kernel kinds: names round-trip and kernels are recognised by name", "[block_mask]") {
  for (flashjit::KernelKind k : flashjit::kernel_kinds()) {
    CHECK(flashjit::kernel_kind_from_string(flashjit::to_string(k)) == k);
    // Each kind's declaration (kind_info) names it, its templates, grid and tensors.
    const flashjit::KernelKindInfo& info = flashjit::kind_info(k);
    CHECK(info.kind == k);
    CHECK(std::string(info.name) == flashjit::to_string(k));
    CHECK(std::string(info.skeleton).find(".cuh") != std::string::npos);
    CHECK(std::string(info.grid).size() > 0);
    CHECK(std::string(info.tensors).find("->") != std::string::npos);
    CHECK(info.tiled == (k == flashjit::KernelKind::fwd || k == flashjit::KernelKind::bwd_dkdv ||
                         k == flashjit::KernelKind::bwd_dq));
  }
  CHECK_FALSE(flashjit::kernel_kind_from_string("bwd").has_value());
  CHECK(flashjit::kernel_kind_names() == "fwd, block_mask, bwd_preprocess, bwd_dkdv, bwd_dq_convert, bwd_dq");
  AttentionSpec s;
  s.head_dim = 64;
  s.mask.kind = MaskKind::causal;
  CHECK(flashjit::kernel_kind_of_name(flashjit::codegen::kernel_name(s)) == flashjit::KernelKind::fwd);
  CHECK(flashjit::kernel_kind_of_name(flashjit::codegen::block_mask_kernel_name("q_idx >= kv_idx", {})) ==
        flashjit::KernelKind::block_mask);
  CHECK_FALSE(flashjit::kernel_kind_of_name("my_kernel").has_value());
}
