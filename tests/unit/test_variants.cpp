// User-written variants without a GPU: the spec's expression fields (JSON, validation,
// canonical keys), band recognition giving the built-in kernel, the CPU evaluator of the
// classified IR against the unclassified float64 reference, NVRTC compiles of variant
// kernels, and forward()'s checks of captured tensors (which come before the GPU is needed).
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/block_mask.h"
#include "flashjit/codegen.h"
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

AttentionSpec custom(const std::string& mask, const std::string& score = "",
                     std::vector<expr::CaptureDecl> caps = {}) {
  AttentionSpec s;
  s.dtype = DType::bf16;
  s.head_dim = 64;
  s.num_heads_q = 4;
  s.num_heads_kv = 2;
  if (!mask.empty()) {
    s.mask.kind = MaskKind::custom;
    s.mask.expr = mask;
  }
  s.score_mod = score;
  s.captures = std::move(caps);
  return s;
}

std::string spec_error_field(const std::string& json) {
  try {
    flashjit::validate(flashjit::spec_from_json(json));
  } catch (const flashjit::SpecError& e) {
    return e.field() + ": " + e.what();
  }
  return "";
}

// The printed IR without the kernel's name line (names carry the mask kind and hash).
std::string ir_body(const AttentionSpec& s, const std::string& arch) {
  std::string out;
  std::string text = flashjit::emit_ir(s, arch);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    if (line.find("kernel @") == std::string::npos) out += line + "\n";
    pos = end + 1;
  }
  return out;
}

flashjit::eval::HostTensor random_tensor(std::mt19937& rng, DType dt, int64_t b, int64_t h, int64_t s, int64_t d) {
  std::normal_distribution<double> nd(0.0, 1.0);
  flashjit::eval::HostTensor t(b, h, s, d);
  for (double& x : t.data) x = flashjit::eval::round_to(dt, nd(rng));
  return t;
}

// Tolerance against the float64 reference: P and O are rounded to the dtype.
double tol(const AttentionSpec& s) { return s.dtype == DType::bf16 ? 2e-2 : 4e-3; }

struct Compare {
  double max_abs = 0;
  int64_t skipped = 0, full = 0, partial = 0;
};

// The evaluated IR after the passes (tile classification on) against the lowered IR (every
// tile masked), which must agree bit for bit, and against the float64 reference (within the
// dtype's rounding of P and the output; max_abs).
Compare compare(const AttentionSpec& spec0, int64_t sq, int64_t sk, const std::vector<expr::HostCapture>& caps,
                uint32_t seed, flashjit::TileConfig tile = {16, 16, 1, 2, flashjit::MmaKind::mma_sync}) {
  AttentionSpec spec = spec0;
  spec.tile = tile;
  spec.return_lse = true;
  std::mt19937 rng(seed);
  const auto q = random_tensor(rng, spec.dtype, 2, spec.num_heads_q, sq, spec.head_dim);
  const auto k = random_tensor(rng, spec.dtype, 2, spec.num_heads_kv, sk, spec.head_dim);
  const auto v = random_tensor(rng, spec.dtype, 2, spec.num_heads_kv, sk, spec.head_dim);
  const flashjit::ir::Kernel lowered = flashjit::ir::lower(spec);
  const flashjit::ir::Kernel kern = flashjit::passes::run_pipeline(lowered, "sm_80");
  const auto got = flashjit::eval::evaluate(kern, q, k, v, caps);
  const auto unclassified = flashjit::eval::evaluate(lowered, q, k, v, caps);
  const auto ref = flashjit::eval::reference_attention(spec, q, k, v, caps);
  REQUIRE(got.o.data.size() == unclassified.o.data.size());
  // memcmp, not ==: rows a score_mod makes NaN must be NaN in both.
  CHECK(std::memcmp(got.o.data.data(), unclassified.o.data.data(), got.o.data.size() * sizeof(double)) == 0);
  CHECK(std::memcmp(got.lse.data(), unclassified.lse.data(), got.lse.size() * sizeof(double)) == 0);
  Compare c;
  c.skipped = got.tiles_skipped, c.full = got.tiles_full, c.partial = got.tiles_partial;
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isnan(ref.lse[i])) continue;  // NaN by the expression's own arithmetic
    if (ref.lse[i] == -INFINITY) {
      REQUIRE(got.lse[i] == -INFINITY);
    } else {
      c.max_abs = std::max(c.max_abs, std::abs(got.lse[i] - ref.lse[i]));
    }
  }
  for (size_t i = 0; i < ref.o.data.size(); ++i) {
    const size_t row = i / static_cast<size_t>(spec.head_dim);
    if (std::isnan(ref.lse[row])) continue;
    REQUIRE(std::isfinite(got.o.data[i]));
    c.max_abs = std::max(c.max_abs, std::abs(got.o.data[i] - ref.o.data[i]));
  }
  return c;
}

}  // namespace

TEST_CASE("variants: JSON round trip and canonical expression text", "[variants]") {
  const std::string json = R"J({"dtype":"bf16","head_dim":64,"mask":{"kind":"custom","expr":"(q_idx>=kv_idx)&(doc[q_idx]==doc[kv_idx])"},)J"
                           R"J("score_mod":"score+slopes[h]*float(kv_idx-q_idx)",)J"
                           R"("captures":[{"name":"doc","dtype":"i32","rank":1},{"name":"slopes","dtype":"f32","rank":1}]})";
  const AttentionSpec s = flashjit::spec_from_json(json);
  flashjit::validate(s);
  const std::string canon = flashjit::spec_to_json(s);
  CHECK(canon.find(R"("expr":"q_idx >= kv_idx & doc[q_idx] == doc[kv_idx]")") != std::string::npos);
  CHECK(canon.find(R"J("score_mod":"score + slopes[h] * float(kv_idx - q_idx)")J") != std::string::npos);
  CHECK(canon.find(R"("captures":[{"name":"doc","dtype":"i32","rank":1})") != std::string::npos);
  const AttentionSpec back = flashjit::spec_from_json(canon);
  CHECK(back == s);
  CHECK(flashjit::spec_to_json(back) == canon);
  // Spellings of one expression share a key; a different expression does not.
  AttentionSpec a = custom("q_idx>=kv_idx"), b = custom("((q_idx) >= (kv_idx))"), c = custom("q_idx > kv_idx");
  CHECK(flashjit::spec_hash(a) == flashjit::spec_hash(b));
  CHECK(flashjit::spec_hash(a) != flashjit::spec_hash(c));
  // Specs without expressions keep their canonical JSON (no new keys).
  AttentionSpec plain;
  plain.dtype = DType::f16;
  plain.head_dim = 64;
  CHECK(flashjit::spec_to_json(plain).find("captures") == std::string::npos);
  CHECK(flashjit::spec_to_json(plain).find("score_mod") == std::string::npos);
  CHECK(flashjit::spec_to_json(plain).find("expr") == std::string::npos);
}

TEST_CASE("variants: bad expression fields name the field", "[variants]") {
  const std::string head = R"({"dtype":"bf16","head_dim":64,)";
  CHECK_THAT(spec_error_field(head + R"("mask":{"kind":"custom"}})"), Catch::Matchers::StartsWith("mask.expr"));
  CHECK_THAT(spec_error_field(head + R"("mask":{"kind":"custom","expr":"q_idx >= "}})"),
             Catch::Matchers::StartsWith("mask.expr"));
  CHECK(spec_error_field(head + R"("mask":{"kind":"custom","expr":"q_idx >= "}})").find("at 9") != std::string::npos);
  CHECK_THAT(spec_error_field(head + R"("mask":{"kind":"custom","expr":"score > 0.0"}})"),
             Catch::Matchers::StartsWith("mask.expr"));
  CHECK_THAT(spec_error_field(head + R"("mask":{"kind":"custom","expr":"q_idx + 1"}})"),
             Catch::Matchers::StartsWith("mask.expr"));
  CHECK_THAT(spec_error_field(head + R"("mask":{"kind":"causal","expr":"q_idx >= kv_idx"}})"),
             Catch::Matchers::StartsWith("mask.expr"));
  CHECK_THAT(spec_error_field(head + R"("score_mod":"score > 0.0"})"), Catch::Matchers::StartsWith("score_mod"));
  CHECK_THAT(spec_error_field(head + R"("score_mod":"score + t[q_idx]"})"), Catch::Matchers::StartsWith("score_mod"));
  CHECK_THAT(spec_error_field(head + R"("captures":[{"name":"q_idx","dtype":"i32","rank":1}]})"),
             Catch::Matchers::StartsWith("captures[0].name"));
  CHECK_THAT(spec_error_field(head + R"("captures":[{"name":"t","dtype":"i32","rank":1},{"name":"t","dtype":"f32","rank":1}]})"),
             Catch::Matchers::StartsWith("captures[1].name"));
  CHECK_THAT(spec_error_field(head + R"("captures":[{"name":"t","dtype":"i32","rank":5}]})"),
             Catch::Matchers::StartsWith("captures[0].rank"));
  CHECK_THAT(spec_error_field(head + R"("captures":[{"name":"t","dtype":"u8","rank":1}]})"),
             Catch::Matchers::StartsWith("captures[0].dtype"));
  CHECK_THAT(spec_error_field(head + R"("captures":[{"name":"t","dtype":"i32"}]})"),
             Catch::Matchers::StartsWith("captures[0].rank"));
  CHECK_THAT(spec_error_field(head + R"("captures":{"name":"t"}})"), Catch::Matchers::StartsWith("captures"));
}

TEST_CASE("variants: a band written as an expression compiles to the built-in kernel", "[variants]") {
  AttentionSpec builtin = custom("");
  builtin.mask.kind = MaskKind::causal;
  builtin.mask.align = flashjit::MaskAlign::top_left;
  CHECK(ir_body(custom("q_idx >= kv_idx"), "sm_90a") == ir_body(builtin, "sm_90a"));
  CHECK(ir_body(custom("~(kv_idx > q_idx)"), "sm_80") == ir_body(builtin, "sm_80"));
  builtin.mask.align = flashjit::MaskAlign::bottom_right;
  CHECK(ir_body(custom("kv_idx <= q_idx + seqlen_k - seqlen_q"), "sm_90a") == ir_body(builtin, "sm_90a"));
  AttentionSpec window = custom("");
  window.mask.kind = MaskKind::sliding_window;
  window.mask.align = flashjit::MaskAlign::top_left;
  window.mask.left = 255;
  window.mask.right = 0;
  CHECK(ir_body(custom("(q_idx >= kv_idx) & (q_idx - kv_idx < 256)"), "sm_90a") == ir_body(window, "sm_90a"));
  // Not a band: classified by interval analysis, with the expression in the IR.
  const std::string ir = flashjit::emit_ir(custom("(kv_idx <= q_idx) | (kv_idx < 64)"), "sm_90a", "classify_tiles");
  CHECK(ir.find("mask: kv_idx <= q_idx | kv_idx < 64) by_interval skip_empty unmasked_full") != std::string::npos);
  CHECK(ir.find(R"(apply_mask %s {expr = "kv_idx <= q_idx | kv_idx < 64", when = "partial"})") != std::string::npos);
}

TEST_CASE("variants: the classified IR evaluates like the unclassified reference", "[variants][eval]") {
  const expr::CaptureDecl doc{"doc", expr::CaptureDType::i32, 1};
  const expr::CaptureDecl slopes{"slopes", expr::CaptureDType::f32, 1};
  std::vector<int32_t> doc_ids(200);
  for (size_t i = 0; i < doc_ids.size(); ++i) doc_ids[i] = static_cast<int32_t>(i / 37);
  std::vector<float> slope_vals = {0.5f, 0.25f, 0.125f, 0.0625f};
  expr::HostCapture cdoc{doc_ids.data(), expr::CaptureDType::i32, 1, {200, 0, 0, 0}, {1, 0, 0, 0}};
  expr::HostCapture cslopes{slope_vals.data(), expr::CaptureDType::f32, 1, {4, 0, 0, 0}, {1, 0, 0, 0}};

  SECTION("prefix-LM: empty tiles skipped, full tiles unmasked") {
    const AttentionSpec s = custom("(kv_idx <= q_idx) | (kv_idx < 20)");
    const Compare c = compare(s, 77, 77, {}, 1);
    CHECK(c.max_abs < tol(s));
    CHECK(c.skipped > 0);
    CHECK(c.full > 0);
    CHECK(c.partial > 0);
  }
  SECTION("document mask + causal: the classification scans doc over each tile") {
    const AttentionSpec s = custom("(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", "", {doc});
    const Compare c = compare(s, 150, 150, {cdoc}, 2);
    CHECK(c.max_abs < tol(s));
    CHECK(c.skipped > 0);  // above the diagonal, and between documents
    CHECK(c.full > 0);     // inside one document, below the diagonal
    CHECK(c.partial > 0);
  }
  SECTION("blocks, seqlen_q != seqlen_k, rows with no key") {
    const AttentionSpec s = custom("(q_idx // 32 == kv_idx // 32) & (q_idx >= 40)");
    const Compare c = compare(s, 90, 61, {}, 3);
    CHECK(c.max_abs < tol(s));
  }
  SECTION("ALiBi score_mod on a causal mask") {
    AttentionSpec s = custom("", "score + slopes[h] * float(kv_idx - q_idx)", {slopes});
    s.mask.kind = MaskKind::causal;
    const Compare c = compare(s, 50, 70, {cslopes}, 4);
    CHECK(c.max_abs < tol(s));
  }
  SECTION("softcap, fp16, a larger tile") {
    AttentionSpec s = custom("q_idx >= kv_idx", "30.0 * tanh(score / 30.0)");
    s.dtype = DType::f16;
    const Compare c = compare(s, 130, 130, {}, 5, {64, 32, 4, 2, flashjit::MmaKind::mma_sync});
    CHECK(c.max_abs < tol(s));
  }
  SECTION("random masks and score_mods") {
    const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}, {"bias", expr::CaptureDType::f32, 2}};
    std::vector<int32_t> small_doc = {0, 0, 1, 1, 1, 2, 3, 3};
    std::vector<float> bias(64);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
    const std::vector<expr::HostCapture> host = {
        {small_doc.data(), expr::CaptureDType::i32, 1, {8, 0, 0, 0}, {1, 0, 0, 0}},
        {bias.data(), expr::CaptureDType::f32, 2, {8, 8, 0, 0}, {8, 1, 0, 0}}};
    std::mt19937_64 gen(11);
    for (int i = 0; i < 25; ++i) {
      AttentionSpec s = custom(flashjit::testing::random_mask_expr(gen, caps, 8, 4),
                               i % 2 ? flashjit::testing::random_score_expr(gen, caps, 8, 3) : "", caps);
      INFO(s.mask.expr << " | " << s.score_mod);
      const Compare c = compare(s, 37, 45, host, 100 + i);
      CHECK(c.max_abs < tol(s));
    }
  }
}

TEST_CASE("variants: variant kernels compile with NVRTC for sm_80 and sm_90a", "[variants][nvrtc]") {
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1},
                                               {"slopes", expr::CaptureDType::f32, 1},
                                               {"table", expr::CaptureDType::bf16, 2},
                                               {"keep", expr::CaptureDType::boolean, 1},
                                               {"ids", expr::CaptureDType::i64, 1},
                                               {"h16", expr::CaptureDType::f16, 1}};
  const std::vector<AttentionSpec> specs = {
      custom("(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", "score + slopes[h] * float(kv_idx - q_idx)", caps),
      custom("keep[kv_idx] | (ids[q_idx] == 3)", "score + table[h, min(max(q_idx - kv_idx, 0), 7)] + h16[kv_idx]", caps),
      custom("(kv_idx <= q_idx) | (kv_idx < 64)", "30.0 * tanh(score / 30.0)"),
  };
  for (const AttentionSpec& s : specs)
    for (const char* arch : {"sm_80", "sm_90a"}) {
      INFO(flashjit::spec_to_json(s) << " on " << arch);
      flashjit::CompileOptions opts;
      opts.arch = arch;
      opts.use_cache = false;
      const flashjit::CompiledKernel k = flashjit::compile(s, opts);
      CHECK(!k.image.empty());
      CHECK(k.kernel_name.find("custom") != std::string::npos);
    }
}

TEST_CASE("variants: the heuristic tiles of the benchmarked variants do not spill on sm_90a", "[variants][nvrtc]") {
  const expr::CaptureDecl doc{"doc", expr::CaptureDType::i32, 1}, slopes{"slopes", expr::CaptureDType::f32, 1};
  std::vector<AttentionSpec> specs;
  for (int d : {64, 128}) {
    AttentionSpec s = custom("(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", "", {doc});
    s.head_dim = d;
    specs.push_back(s);
    AttentionSpec a = custom("", "score + slopes[h] * float(kv_idx - q_idx)", {slopes});
    a.mask.kind = MaskKind::causal;
    a.head_dim = d;
    specs.push_back(a);
    AttentionSpec c;
    c.head_dim = d;
    c.mask.kind = MaskKind::causal;
    specs.push_back(flashjit::with_block_mask(c, 128, 128, false, false));
  }
  AttentionSpec prefix = custom("(kv_idx <= q_idx) | (kv_idx < 2048)");
  prefix.head_dim = 128;
  specs.push_back(prefix);
  AttentionSpec softcap = custom("", "30.0 * tanh(score / 30.0)");
  softcap.mask.kind = MaskKind::causal;
  softcap.head_dim = 128;
  specs.push_back(softcap);
  for (const AttentionSpec& s : specs) {
    flashjit::CompileOptions opts;
    opts.arch = "sm_90a";
    const flashjit::CompiledKernel k = flashjit::compile(s, opts);
    INFO(flashjit::spec_to_json(flashjit::resolve_tile(s, "sm_90a")) << ": " << k.resources.registers << " registers");
    CHECK(k.resources.spill_store_bytes == 0);
    CHECK(k.resources.spill_load_bytes == 0);
  }
}

TEST_CASE("variants: forward() checks captured tensors before any launch", "[variants]") {
  // Fake device addresses (never dereferenced): validation comes before the GPU is needed.
  auto fake = [](int i) { return reinterpret_cast<void*>((std::uintptr_t(i + 1) << 40)); };
  AttentionSpec s = custom("doc[q_idx] == doc[kv_idx]", "", {{"doc", expr::CaptureDType::i32, 1}});
  const auto q = flashjit::TensorView::bhsd(fake(0), flashjit::ElemType::bf16, 1, 4, 100, 64);
  const auto k = flashjit::TensorView::bhsd(fake(1), flashjit::ElemType::bf16, 1, 2, 80, 64);
  const auto v = flashjit::TensorView::bhsd(fake(2), flashjit::ElemType::bf16, 1, 2, 80, 64);
  const auto o = flashjit::TensorView::bhsd(fake(3), flashjit::ElemType::bf16, 1, 4, 100, 64);
  auto cap = [&](int64_t n, flashjit::ElemType t = flashjit::ElemType::i32, void* data = nullptr) {
    flashjit::TensorView c;
    c.data = data ? data : fake(5);
    c.dtype = t;
    c.rank = 1;
    c.sizes[0] = n;
    c.strides[0] = 1;
    return c;
  };
  auto param = [&](const AttentionSpec& spec, const std::vector<flashjit::TensorView>& caps) -> std::string {
    try {
      flashjit::forward(spec, q, k, v, o, nullptr, nullptr, caps);
    } catch (const flashjit::ArgumentError& e) {
      return e.param() + ": " + e.what();
    } catch (const std::exception&) {
      return "";
    }
    return "";
  };
  CHECK_THAT(param(s, {}), Catch::Matchers::StartsWith("captures:"));
  CHECK_THAT(param(s, {cap(100, flashjit::ElemType::f32)}), Catch::Matchers::StartsWith("captures.doc"));
  // q_idx reaches 99: a doc of 99 elements is too short; 100 is enough (kv_idx < 80).
  const std::string short_doc = param(s, {cap(99)});
  CHECK_THAT(short_doc, Catch::Matchers::StartsWith("captures.doc"));
  CHECK(short_doc.find("0..99") != std::string::npos);
  // Enough elements: validation passes (then the missing GPU stops it; with a GPU the call
  // would launch on the fake addresses, so it is not made there).
  if (!flashjit::gpu_available()) CHECK(param(s, {cap(100)}).empty());
  // A data-dependent index cannot be bounded.
  AttentionSpec dep = custom("doc[doc[q_idx]] == 0", "", {{"doc", expr::CaptureDType::i32, 1}});
  CHECK_THAT(param(dep, {cap(1000)}), Catch::Matchers::StartsWith("captures.doc"));
  // Misaligned and overlapping the output.
  CHECK_THAT(param(s, {cap(100, flashjit::ElemType::i32, static_cast<char*>(fake(5)) + 2)}),
             Catch::Matchers::StartsWith("captures.doc"));
  CHECK_THAT(param(s, {cap(100, flashjit::ElemType::i32, fake(3))}), Catch::Matchers::StartsWith("o"));
}

TEST_CASE("variants: interval analysis that scans captured tensors is sound", "[variants][expr]") {
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}, {"bias", expr::CaptureDType::f32, 2}};
  std::mt19937_64 gen(5);
  std::mt19937 rng(6);
  std::vector<int32_t> doc(8);
  std::vector<float> bias(64);
  int decided = 0, total = 0;
  for (int i = 0; i < 400; ++i) {
    // Sorted ids (documents) or random ones; random floats with some repeats.
    int32_t id = 0;
    for (auto& d : doc) d = i % 2 ? (id += static_cast<int32_t>(rng() % 2)) : static_cast<int32_t>(rng() % 4);
    for (auto& b : bias) b = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
    const std::vector<expr::HostCapture> host = {
        {doc.data(), expr::CaptureDType::i32, 1, {8, 0, 0, 0}, {1, 0, 0, 0}},
        {bias.data(), expr::CaptureDType::f32, 2, {8, 8, 0, 0}, {8, 1, 0, 0}}};
    const std::string text = flashjit::testing::random_mask_expr(gen, caps, 8, 4);
    const expr::Expr e = expr::parse(text, expr::Context{false, caps});
    expr::Box box;
    box.b_lo = box.b_hi = static_cast<int64_t>(rng() % 2);
    box.h_lo = box.h_hi = static_cast<int64_t>(rng() % 3);
    box.q_lo = static_cast<int64_t>(rng() % 6), box.q_hi = box.q_lo + static_cast<int64_t>(rng() % 3);
    box.kv_lo = static_cast<int64_t>(rng() % 6), box.kv_hi = box.kv_lo + static_cast<int64_t>(rng() % 3);
    box.seqlen_q = 8, box.seqlen_k = 8;
    const expr::Truth t = expr::mask_over(e, box, &host);
    bool any_true = false, any_false = false;
    for (int64_t q = box.q_lo; q <= box.q_hi; ++q)
      for (int64_t k = box.kv_lo; k <= box.kv_hi; ++k) {
        expr::Env env;
        env.b = static_cast<int>(box.b_lo), env.h = static_cast<int>(box.h_lo);
        env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(k), env.seqlen_q = 8, env.seqlen_k = 8;
        env.captures = &host;
        (expr::eval_mask(e, env) ? any_true : any_false) = true;
      }
    INFO(text);
    if (t == expr::Truth::always) CHECK(!any_false);
    if (t == expr::Truth::never) CHECK(!any_true);
    decided += t != expr::Truth::sometimes;
    ++total;
  }
  CHECK(decided * 4 > total);  // the scan decides many boxes (not a vacuous pass)
}
