// The bwd_dkdv tile: what the skeleton can tile (templates/flashjit/bwd_traits.cuh's
// static_asserts, checked here first with errors that say what is allowed) and the heuristic
// choice. The warp grid: block_n / 16 rows of 16 keys, warps / (block_n / 16) warps per row.
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "flashjit/codegen.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/passes.h"

namespace flashjit {

namespace {

// fp32 values a thread keeps live: dK and dV (the whole loop), Sᵀ and dPᵀ (per q tile).
int accumulator_floats(const AttentionSpec& spec, const TileConfig& t) {
  const int wq = t.warps / (t.block_n / 16);
  return 16 * (spec.head_dim + spec.head_dim_v) / (32 * wq) + 2 * 16 * (t.block_m / wq) / 32;
}
// Beside addresses and fragments, under 255 registers: ptxas (sm_90a, causal) spills at 192
// (head dim 128, 64 x 128, 8 warps: 64 bytes) and not at 128 (head dim 64, same tile: 247
// registers) or 96 (head dim 128, 64 x 64, 8 warps: 172).
constexpr int kMaxAccumulatorFloats = 160;

// The wgmma skeleton (bwd_traits_sm90.cuh) keeps dK and dV ((D + DV) / 2 floats) and, per
// q tile, Sᵀ and dPᵀ of a 32-query pass, P packed for dV, and dQ's share. Counted as
// (D + DV) / 2 + block_m: the configurations past it (head dim 128 with block_m 128) need
// more than 255 registers.
constexpr int kMaxWgmmaAccumulatorFloats = 192;

void check_bwd_wgmma_tile(const AttentionSpec& spec, const TileConfig& t, const std::string& arch,
                          const std::function<void(const std::string&)>& bad) {
  if (arch != "sm_90a") throw LegalityError(fmt::format("flashjit: a backward tile with mma = wgmma needs arch sm_90a (Hopper); "
                                                        "the target is {}; use mma = mma_sync", arch));
  if (t.warps != 4 && t.warps != 8) bad("with mma = wgmma, warps must be 4 or 8 (one or two warpgroups)");
  if (t.block_n != 16 * t.warps) bad(fmt::format("with mma = wgmma, block_n must be 64 keys per warpgroup = {}", 16 * t.warps));
  if (t.block_m != 64 && t.block_m != 128) bad("with mma = wgmma, block_m must be 64 or 128");
  for (const auto& [name, d] : {std::pair<const char*, int>{"head_dim", spec.head_dim}, {"head_dim_v", spec.head_dim_v}})
    if (d != 64 && d != 128)
      throw SpecError("tile", fmt::format("the wgmma backward takes {} 64 or 128; got {} (use mma = mma_sync)", name, d));
  const int wgs = t.warps / 4, wg_m = t.block_m / 64;
  if (wgs % wg_m != 0 || spec.head_dim % (wgs / wg_m) != 0 || (spec.head_dim / (wgs / wg_m)) % 64 != 0)
    bad(fmt::format("the dQ tile (block_m x head_dim = {} x {}) does not split over {} warpgroup(s) in 64 x 64 slabs",
                    t.block_m, spec.head_dim, wgs));
  const int floats = (spec.head_dim + spec.head_dim_v) / 2 + t.block_m;
  if (floats > kMaxWgmmaAccumulatorFloats)
    throw LegalityError(fmt::format("flashjit: backward tile block_m={} with mma = wgmma keeps {} fp32 accumulators per thread "
                                    "for head_dim={} head_dim_v={} (at most {}); use block_m = 64 or mma = mma_sync",
                                    t.block_m, floats, spec.head_dim, spec.head_dim_v, kMaxWgmmaAccumulatorFloats));
}

}  // namespace

void check_bwd_tile(const AttentionSpec& spec0, const TileConfig& t, const std::string& arch) {
  const AttentionSpec spec = spec0.normalized();
  const std::string tile = fmt::format("block_m={} block_n={} warps={} stages={}", t.block_m, t.block_n, t.warps, t.stages);
  auto bad = [&](const std::string& why) { throw SpecError("tile", "backward tile " + tile + ": " + why); };
  if (t.stages != 1 && t.stages != 2) bad("stages must be 1 or 2");
  if (t.pipeline != PipelineKind::cp_async) bad("pipeline must be cp_async (tma_ws is the forward's)");
  if (t.mma == MmaKind::wgmma) {
    check_bwd_wgmma_tile(spec, t, arch, bad);
    const int smem = codegen::bwd_dkdv_smem_bytes(spec, t), limit = passes::smem_limit(arch);
    if (smem > limit)
      throw LegalityError(fmt::format("flashjit: backward tile {} mma=wgmma needs {} bytes of shared memory for head_dim={} "
                                      "head_dim_v={}, but {} allows {}; use stages = 1 or block_m = 64",
                                      tile, smem, spec.head_dim, spec.head_dim_v, arch, limit));
    return;
  }
  if (t.mma != MmaKind::mma_sync) bad("mma must be mma_sync or wgmma");
  if (t.block_n < 16 || t.block_n % 16 != 0) bad("block_n must be a positive multiple of 16");
  if (t.warps < 1 || t.warps > 16) bad("warps must be 1 to 16");
  const int wk = t.block_n / 16;
  if (t.warps % wk != 0) bad(fmt::format("warps must be a multiple of block_n / 16 = {}", wk));
  const int wq = t.warps / wk;
  if (t.block_m < 16 || t.block_m % (16 * wq) != 0)
    bad(fmt::format("block_m must be a positive multiple of 16 * warps / (block_n / 16) = {}", 16 * wq));
  if (spec.head_dim % (16 * wq) != 0 || spec.head_dim_v % (16 * wq) != 0)
    bad(fmt::format("head_dim {} and head_dim_v {} must be multiples of 16 * warps / (block_n / 16) = {}", spec.head_dim,
                    spec.head_dim_v, 16 * wq));
  const int wm = std::min(t.warps, t.block_m / 16);
  if ((t.block_m / 16) % wm != 0 || t.warps % wm != 0 || (spec.head_dim / (t.warps / wm)) % 16 != 0)
    bad(fmt::format("the dQ tile (block_m x head_dim = {} x {}) does not split over {} warps in 16 x 16 pieces", t.block_m,
                    spec.head_dim, t.warps));
  const int smem = codegen::bwd_dkdv_smem_bytes(spec, t), limit = passes::smem_limit(arch);
  if (smem > limit)
    throw LegalityError(fmt::format("flashjit: backward tile {} needs {} bytes of shared memory for head_dim={} "
                                    "head_dim_v={}, but {} allows {}; use a smaller block_m, block_n or stages",
                                    tile, smem, spec.head_dim, spec.head_dim_v, arch, limit));
  if (accumulator_floats(spec, t) > kMaxAccumulatorFloats)
    throw LegalityError(fmt::format("flashjit: backward tile {} keeps {} fp32 accumulators per thread for head_dim={} "
                                    "head_dim_v={} (at most {}); use more warps per block_n / 16 key rows",
                                    tile, accumulator_floats(spec, t), spec.head_dim, spec.head_dim_v,
                                    kMaxAccumulatorFloats));
}

TileConfig default_bwd_tile(const AttentionSpec& spec0, const std::string& arch) {
  const AttentionSpec spec = spec0.normalized();
  const int d = std::max(spec.head_dim, spec.head_dim_v);
  std::vector<TileConfig> candidates;
  // sm_90a: the wgmma skeleton, two warpgroups of 64 keys; q tiles of 64 rows at head dim
  // 128 (registers), 128 at 64 (dQ's columns must be whole 64-column slabs per warpgroup).
  if (arch == "sm_90a") {
    candidates.push_back({spec.head_dim == 64 ? 128 : 64, 128, 8, 2, MmaKind::wgmma});
    candidates.push_back({64, 128, 8, 2, MmaKind::wgmma});
  }
  // {block_m, block_n, warps, stages}: FlashAttention-2's backward blocks (64 x 128 with 8
  // warps for head dim 64, 64 x 64 beyond, where two warps share a row of 16 keys), two Q/dO
  // buffers where they fit.
  const std::vector<TileConfig> mma_sync = d <= 64 ? std::vector<TileConfig>{{64, 128, 8, 2}, {64, 128, 8, 1}, {64, 64, 8, 2}}
                                                   : std::vector<TileConfig>{{64, 64, 8, 2}, {64, 64, 8, 1}, {64, 32, 8, 1}};
  candidates.insert(candidates.end(), mma_sync.begin(), mma_sync.end());
  candidates.push_back({32, 32, 4, 1});
  candidates.push_back({16, 16, 1, 1});
  for (const TileConfig& t : candidates) {
    try {
      check_bwd_tile(spec, t, arch);
      return t;
    } catch (const SpecError&) {
    } catch (const LegalityError&) {
    }
  }
  throw LegalityError(fmt::format("flashjit: no backward tile fits head_dim={} head_dim_v={} on {}", spec.head_dim,
                                  spec.head_dim_v, arch));
}

TileConfig default_bwd_dq_tile(const AttentionSpec& spec0, const std::string& arch) {
  const AttentionSpec spec = spec0.normalized();
  const int d = std::max(spec.head_dim, spec.head_dim_v);
  const int bn = d <= 128 ? 32 : 16;
  for (const TileConfig& t : std::vector<TileConfig>{{64, bn, 4, 2}, {64, bn, 4, 1}, {32, 16, 2, 1}})
    if (codegen::bwd_dq_smem_bytes(spec, t) <= passes::smem_limit(arch)) return t;
  throw LegalityError(fmt::format("flashjit: no deterministic dQ tile fits head_dim={} head_dim_v={} on {}", spec.head_dim,
                                  spec.head_dim_v, arch));
}

}  // namespace flashjit
