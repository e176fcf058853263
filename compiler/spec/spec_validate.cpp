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

void validate_mask(const MaskSpec& m) {
  if (m.kind != MaskKind::none && m.kind != MaskKind::causal && m.kind != MaskKind::sliding_window)
    throw SpecError("mask.kind", fmt::format("{} is not a mask kind; allowed: none, causal, sliding_window",
                                             static_cast<int>(m.kind)));
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
  validate_mask(n.mask);
  // The kernel folds scale * log2(e) into a float literal: the bounds keep it a normal,
  // finite float (NVRTC rejects out-of-range float constants) with room to spare.
  if (n.softmax_scale &&
      !(*n.softmax_scale >= limits::kMinSoftmaxScale && *n.softmax_scale <= limits::kMaxSoftmaxScale))
    throw SpecError("softmax_scale",
                    fmt::format("{} is not supported; allowed: {:g} to {:g} (or unset for 1/sqrt(head_dim))",
                                *n.softmax_scale, limits::kMinSoftmaxScale, limits::kMaxSoftmaxScale));
  // Range first (a probability), then what the kernel implements today.
  if (!(n.dropout_p >= 0.0 && n.dropout_p < 1.0))
    throw SpecError("dropout_p", fmt::format("{} is not a probability; allowed: 0 <= dropout_p < 1", n.dropout_p));
  if (n.dropout_p != 0.0)
    throw SpecError("dropout_p", fmt::format("{}: dropout is not supported yet by the forward kernel; allowed: 0",
                                             n.dropout_p));
  if (n.direction == Direction::bwd)
    throw SpecError("direction", "\"bwd\": backward is not available yet; allowed: fwd");
  if (n.direction != Direction::fwd)
    throw SpecError("direction", fmt::format("{} is not a direction; allowed: fwd", static_cast<int>(n.direction)));
  if (n.tile) validate(*n.tile, n);
}

namespace {
// wgmma tiles: one warpgroup (4 warps) per 64 query rows; N of each wgmma is block_n
// (S = Q·Kᵀ) or head_dim_v (O += P·V), and the 128-byte swizzle slabs are 64 columns.
void validate_wgmma(const TileConfig& tile, const AttentionSpec& n) {
  check_in("tile.block_m", tile.block_m, {64, 128, 192});
  if (tile.warps != tile.block_m / 16)
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
  if (tile.mma == MmaKind::wgmma) return validate_wgmma(tile, spec.normalized());
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
