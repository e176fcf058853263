// Validation of an AttentionSpec and its tile: every error names the field, the bad
// value and what is allowed. Resource fitting (shared memory, registers) is not done
// here: that depends on the arch and is the legality pass's job.
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "flashjit/error.h"
#include "flashjit/limits.h"
#include "flashjit/spec.h"

namespace flashjit {
namespace {

template <typename Range>
bool contains(const Range& r, int v) {
  for (int x : r)
    if (x == v) return true;
  return false;
}

template <typename Range>
std::string join(const Range& r) {
  std::string s;
  for (int x : r) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

void check_in(const std::string& field, int value, const std::vector<int>& allowed) {
  if (!contains(allowed, value))
    throw SpecError(field, fmt::format("{} is not supported; allowed: {}", value, join(allowed)));
}

void validate_heads(const AttentionSpec& n) {
  // Heads index grid dimension y (at most 65535); bounded first, so nothing below can overflow.
  if (n.num_heads_q < 1 || n.num_heads_q > limits::kMaxHeads)
    throw SpecError("num_heads_q",
                    fmt::format("{} is not supported; allowed: 1 to {}", n.num_heads_q, limits::kMaxHeads));
  if (n.num_heads_kv < 1 || n.num_heads_kv > n.num_heads_q)
    throw SpecError("num_heads_kv",
                    fmt::format("{} is not supported; allowed: 1 to num_heads_q ({}), a divisor of it",
                                n.num_heads_kv, n.num_heads_q));
  if (n.num_heads_q % n.num_heads_kv != 0) {
    std::vector<int> divisors;
    for (int d = 1; d <= n.num_heads_q; ++d)
      if (n.num_heads_q % d == 0) divisors.push_back(d);
    // A prime num_heads_q near the bound has 2 divisors; a highly composite one ~100.
    throw SpecError(
        "num_heads_kv",
        fmt::format("{} does not divide num_heads_q ({}): the ratio {}/{} = {:.3g} is not an "
                    "integer group size; allowed: {}",
                    n.num_heads_kv, n.num_heads_q, n.num_heads_q, n.num_heads_kv,
                    double(n.num_heads_q) / n.num_heads_kv, join(divisors)));
  }
}

void validate_captures(const std::vector<expr::CaptureDecl>& caps) {
  if (caps.size() > static_cast<size_t>(expr::kMaxCaptures))
    throw SpecError("captures", fmt::format("{} tensors are declared; allowed: at most {}", caps.size(), expr::kMaxCaptures));
  for (size_t i = 0; i < caps.size(); ++i) {
    const std::string at = fmt::format("captures[{}]", i);
    if (!expr::is_valid_capture_name(caps[i].name))
      throw SpecError(at + ".name", fmt::format("\"{}\" is not allowed; allowed: an identifier of 1 to {} characters "
                                                "([A-Za-z_][A-Za-z0-9_]*) that is not a variable or function name",
                                                caps[i].name, expr::kMaxCaptureName));
    for (size_t j = 0; j < i; ++j)
      if (caps[j].name == caps[i].name)
        throw SpecError(at + ".name", fmt::format("\"{}\" is declared twice (also captures[{}])", caps[i].name, j));
    if (caps[i].rank < 1 || caps[i].rank > 4)
      throw SpecError(at + ".rank", fmt::format("{} is not supported; allowed: 1 to 4", caps[i].rank));
    if (!expr::capture_dtype_from(expr::to_string(caps[i].dtype)))
      throw SpecError(at + ".dtype", "is not a capture dtype; allowed: i32, i64, f32, f16, bf16, bool");
  }
}

void validate_expression(const std::string& field, const std::string& text, bool score,
                         const std::vector<expr::CaptureDecl>& caps) {
  try {
    const expr::Expr& e = *expr::parse_cached(text, expr::Context{score, caps});
    if (!score && e.type() != expr::Type::boolean)
      throw SpecError(field, fmt::format("the mask must be a bool; this expression is {} (compare it, e.g. (x != 0))",
                                         expr::to_string(e.type())));
    if (score && e.type() == expr::Type::boolean)
      throw SpecError(field, "a score_mod must give a number; this expression is a bool (use where(c, score, -inf))");
  } catch (const expr::ExprError& err) {
    throw SpecError(field, err.what());
  }
}

void validate_mask(const MaskSpec& m, const std::vector<expr::CaptureDecl>& caps) {
  if (m.kind != MaskKind::none && m.kind != MaskKind::causal && m.kind != MaskKind::sliding_window &&
      m.kind != MaskKind::custom)
    throw SpecError("mask.kind", fmt::format("{} is not a mask kind; allowed: none, causal, sliding_window, custom",
                                             static_cast<int>(m.kind)));
  if (m.kind == MaskKind::custom) {
    if (m.expr.empty()) throw SpecError("mask.expr", "is required with kind \"custom\" (docs/expressions.md)");
    validate_expression("mask.expr", m.expr, false, caps);
  } else if (!m.expr.empty()) {
    throw SpecError("mask.expr", fmt::format("is set, but only custom masks use it; allowed with kind \"{}\": unset",
                                             to_string(m.kind)));
  }
  if (m.align != MaskAlign::top_left && m.align != MaskAlign::bottom_right)
    throw SpecError("mask.align", fmt::format("{} is not an alignment; allowed: top_left, bottom_right",
                                              static_cast<int>(m.align)));
  if (m.kind != MaskKind::sliding_window) {
    // left/right mean nothing without a window; a set value is most likely a wrong kind.
    for (auto [name, value] : {std::pair{"mask.left", m.left}, std::pair{"mask.right", m.right}})
      if (value != -1)
        throw SpecError(name, fmt::format("{} is set, but only sliding_window masks use it; allowed "
                                          "with kind \"{}\": -1 (unset)",
                                          value, to_string(m.kind)));
    return;
  }
  for (auto [name, value] : {std::pair{"mask.left", m.left}, std::pair{"mask.right", m.right}})
    if (value < -1 || value > limits::kMaxWindow)
      throw SpecError(name, fmt::format("{} is not supported; allowed: -1 (unbounded) or 0 to {} (the longest "
                                        "sequence flashjit runs)",
                                        value, limits::kMaxWindow));
  if (m.left < 0 && m.right < 0)
    throw SpecError("mask", "sliding_window with left = -1 and right = -1 is unbounded on both sides; "
                            "allowed: left >= 0 and/or right >= 0 (or use kind \"none\")");
}

}  // namespace

void validate(const AttentionSpec& spec) {
  const AttentionSpec n = spec.normalized();
  if (n.dtype != DType::f16 && n.dtype != DType::bf16)
    throw SpecError("dtype", fmt::format("{} is not a dtype; allowed: bf16, fp16", static_cast<int>(n.dtype)));
  const std::vector<int> dims(std::begin(kSupportedHeadDims), std::end(kSupportedHeadDims));
  check_in("head_dim", n.head_dim, dims);
  check_in("head_dim_v", n.head_dim_v, dims);
  validate_heads(n);
  validate_captures(n.captures);
  validate_mask(n.mask, n.captures);
  if (!n.score_mod.empty()) validate_expression("score_mod", n.score_mod, true, n.captures);
  // The kernel folds scale * log2(e) into a float literal: the bounds keep it a normal,
  // finite float (NVRTC rejects out-of-range float constants) with room to spare.
  if (n.softmax_scale &&
      !(*n.softmax_scale >= limits::kMinSoftmaxScale && *n.softmax_scale <= limits::kMaxSoftmaxScale))
    throw SpecError("softmax_scale",
                    fmt::format("{} is not supported; allowed: {:g} to {:g} (or unset for 1/sqrt(head_dim))",
                                *n.softmax_scale, limits::kMinSoftmaxScale, limits::kMaxSoftmaxScale));
  // p = 1 would drop everything (output 0, gradients 0): rejected rather than special-cased,
  // as it only happens by mistake. The kernels use p rounded down to a multiple of 2^-16
  // (philox.cuh, docs/dropout.md).
  if (!(n.dropout_p >= 0.0 && n.dropout_p < 1.0))
    throw SpecError("dropout_p", fmt::format("{} is not supported; allowed: 0 <= dropout_p < 1", n.dropout_p));
  if (n.tile) validate(*n.tile, n);
}

namespace {
// wgmma tiles: one warpgroup (4 warps) per 64 query rows; N of each wgmma is block_n
// (S = Q·Kᵀ) or head_dim_v (O += P·V), and the 128-byte swizzle slabs are 64 columns.
void validate_wgmma(const TileConfig& tile, const AttentionSpec& n) {
  check_in("tile.block_m", tile.block_m, {64, 128, 192});
  if (tile.pipeline == PipelineKind::tma_ws) {
    // The consumers' warpgroups own 64 rows each; the producer's 4 warps come on top.
    if (tile.warps != tile.block_m / 16 + 4)
      throw SpecError("tile.warps", fmt::format("{} with pipeline=tma_ws and block_m={}: a warpgroup of 4 warps per 64 "
                                                "rows plus the producer's 4; allowed: {}",
                                                tile.warps, tile.block_m, tile.block_m / 16 + 4));
    // A tile list built at run time (a mask expression that is not a band, a block mask) is
    // built chunk by chunk by the producer; a persistent block walks closed-form ranges only.
    if (tile.persistent && n.mask.kind == MaskKind::custom &&
        !expr::as_band(*expr::parse_cached(n.mask.expr, expr::Context{false, n.captures})))
      throw SpecError("tile.persistent", "persistent tma_ws blocks support masks whose tiles have a closed form (none, "
                                         "causal, sliding_window, or an expression recognised as one of them); this mask "
                                         "expression is classified per tile at run time: use persistent=false");
  } else if (tile.warps != tile.block_m / 16)
    throw SpecError("tile.warps", fmt::format("{} with mma=wgmma and block_m={}: each warpgroup of 4 warps owns 64 "
                                              "rows; allowed: {}",
                                              tile.warps, tile.block_m, tile.block_m / 16));
  // 176: FlashAttention-3's block_n at head dim 128 (S, P and O fit 2 warpgroups' registers).
  // 96: lets two 64-row blocks share an SM at head dim 128 (112 KiB of shared memory each).
  check_in("tile.block_n", tile.block_n, {64, 96, 128, 176, 192});
  check_in("tile.stages", tile.stages, {2, 3, 4});
  const std::vector<int> dims = {64, 128, 192, 256};
  if (!contains(dims, n.head_dim))
    throw SpecError("tile.mma", fmt::format("wgmma needs head_dim in {}; got head_dim={} (use mma=mma_sync)",
                                            join(dims), n.head_dim));
  if (!contains(dims, n.head_dim_v))
    throw SpecError("tile.mma", fmt::format("wgmma needs head_dim_v in {}; got head_dim_v={} (use mma=mma_sync)",
                                            join(dims), n.head_dim_v));
}
}  // namespace

void validate(const TileConfig& tile, const AttentionSpec& spec) {
  // The rules below are arch- and shape-independent; fitting is the legality pass.
  if (tile.pingpong && !(tile.pipeline == PipelineKind::tma_ws && tile.block_m == 128))
    throw SpecError("tile.pingpong", fmt::format("needs pipeline=tma_ws and block_m=128 (two consumer warpgroups take "
                                                 "turns); got pipeline={} block_m={}",
                                                 to_string(tile.pipeline), tile.block_m));
  if (tile.persistent && tile.pipeline != PipelineKind::tma_ws)
    throw SpecError("tile.persistent", fmt::format("needs pipeline=tma_ws (the warp-specialised kernel walks its work "
                                                   "items); got pipeline={}",
                                                   to_string(tile.pipeline)));
  if (tile.pipeline != PipelineKind::cp_async && tile.pipeline != PipelineKind::tma_ws)
    throw SpecError("tile.pipeline",
                    fmt::format("{} is not a pipeline kind; allowed: cp_async, tma_ws", static_cast<int>(tile.pipeline)));
  if (tile.mma == MmaKind::wgmma) return validate_wgmma(tile, spec.normalized());
  if (tile.pipeline == PipelineKind::tma_ws)
    throw SpecError("tile.pipeline", "tma_ws needs mma=wgmma (the warp-specialised kernel is sm_90a's)");
  if (tile.mma != MmaKind::mma_sync)
    throw SpecError("tile.mma", fmt::format("{} is not an mma kind; allowed: mma_sync, wgmma", static_cast<int>(tile.mma)));
  const std::vector<int> blocks = {16, 32, 64, 128, 256};
  check_in("tile.block_m", tile.block_m, blocks);
  check_in("tile.block_n", tile.block_n, blocks);
  check_in("tile.warps", tile.warps, {1, 2, 4, 8});
  check_in("tile.stages", tile.stages, {2, 3, 4});
  // Each warp owns block_m / warps query rows and computes them with m16 MMA tiles.
  if (tile.block_m % (16 * tile.warps) != 0) {
    std::vector<int> ok;
    for (int b : blocks)
      if (b % (16 * tile.warps) == 0) ok.push_back(b);
    throw SpecError("tile.block_m",
                    fmt::format("{} with {} warps gives {} rows per warp, which is not a multiple of 16; "
                                "allowed with {} warps: {}",
                                tile.block_m, tile.warps, double(tile.block_m) / tile.warps, tile.warps,
                                join(ok)));
  }
}

}  // namespace flashjit
