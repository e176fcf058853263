// Pass check_legality: does the kernel fit the target? Shared memory against the arch's
// opt-in limit per block, and the register fragments a thread must hold against the 255
// registers ptxas can give it (beyond that it spills to local memory, a silent cliff).
#include <fmt/format.h>

#include <algorithm>
#include <regex>

#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "flashjit/passes.h"

namespace flashjit::passes {

namespace {
// Shared-memory rows are padded by 8 elements (16 bytes) so that ldmatrix's eight row
// addresses fall in distinct banks for every supported head dim (see templates/smem_tile.cuh).
constexpr int kRowPad = 8;
constexpr int kMaxRegisters = 255;
// Registers a thread needs beside the fragments: addresses, loop state, softmax temporaries,
// one k-step of A/B operands. (ptxas measured 255 with no spills at 232 fragment registers:
// d128, 128x64, 4 warps.)
constexpr int kRegisterOverhead = 24;
}  // namespace

bool needs_tile_list(const AttentionSpec& spec) {
  if (spec.mask.kind != MaskKind::custom) return false;
  return !expr::as_band(*expr::parse_cached(spec.mask.expr, expr::Context{false, spec.captures}));
}

int smem_bytes(const AttentionSpec& spec0, const TileConfig& t) {
  const AttentionSpec spec = spec0.normalized();
  const int e = dtype_size(spec.dtype);
  // A mask expression classified per tile keeps its list of tiles in shared memory
  // (ir::kTileListBytes, the list of templates/flashjit/kv_tiles.cuh; codegen asserts they agree).
  const int list = needs_tile_list(spec) ? ir::kTileListBytes : 0;
  if (t.mma == MmaKind::wgmma) {
    // Swizzled, unpadded tiles, 64 bytes of pipeline mbarriers, plus 1 KiB to align the
    // tiles to 1024 bytes (fwd_traits_sm90.cuh).
    const int q = t.block_m * spec.head_dim;
    const int kv = t.stages * t.block_n * (spec.head_dim + spec.head_dim_v);
    // tma_ws: q_full and q_empty plus full and empty barriers per slot of the K and the V
    // ring (fwd_ws_sm90.cuh), and for a tile list two buffers and their 4 mbarriers (WsLists).
    if (t.pipeline == PipelineKind::tma_ws)
      return e * (q + kv) + 8 * (2 + 4 * t.stages) + 1024 + (list ? 2 * list + 32 : 0);
    return e * (q + kv) + 64 + 1024 + list;
  }
  const int q = t.block_m * (spec.head_dim + kRowPad);
  const int kv = t.stages * t.block_n * ((spec.head_dim + kRowPad) + (spec.head_dim_v + kRowPad));
  return e * (q + kv) + list;
}

int fragment_registers(const AttentionSpec& spec0, const TileConfig& t) {
  const AttentionSpec spec = spec0.normalized();
  if (t.mma == MmaKind::wgmma) {
    // Per thread of a warpgroup (64 rows): S is block_n / 2 floats, O head_dim_v / 2, and
    // P (packed to 16 bits before the P·V wgmma, which reads it from registers) block_n / 4.
    return t.block_n / 2 + spec.head_dim_v / 2 + t.block_n / 4 + 4;
  }
  const int m_tiles = t.block_m / t.warps / 16;        // 16-row mma tiles per warp
  const int scores = m_tiles * (t.block_n / 8) * 4;    // fp32 S accumulator
  const int out = m_tiles * (spec.head_dim_v / 8) * 4; // fp32 O accumulator
  const int state = m_tiles * 2 * 2;                   // row max and sum
  // P is packed to 16 bits one k-step at a time inside gemm_pv, so it adds no full tile.
  return scores + out + state;
}

int smem_limit(const std::string& arch) {
  std::smatch m;
  static const std::regex re("sm_(\\d+)a?");
  if (!std::regex_match(arch, m, re)) throw ArgumentError("arch", fmt::format("'{}' is not of the form sm_XY or sm_XYa", arch));
  const int cc = std::stoi(m[1]);
  if (cc == 80 || cc == 87) return 163 * 1024;
  if (cc == 90 || cc == 100 || cc == 103) return 227 * 1024;
  if (cc >= 80) return 99 * 1024;  // sm_86, sm_89, sm_120: consumer parts
  return 64 * 1024;
}

void check_legality(ir::Kernel& k, const std::string& arch) {
  const TileConfig& t = *k.spec.tile;
  ir::Resources r;
  r.arch = arch;
  r.smem_bytes = smem_bytes(k.spec, t);
  r.smem_limit = smem_limit(arch);
  r.est_registers = fragment_registers(k.spec, t) + kRegisterOverhead;
  r.threads = 32 * t.warps;
  // One block per SM at least: its threads share the 64 K registers of the SM. A
  // warp-specialised block moves the producer's registers to the consumers (setmaxnreg):
  // theirs is the limit (FwdTraitsSm90Ws::CONSUMER_REGS).
  int register_limit = std::min(kMaxRegisters, (65536 / r.threads) & ~7);
  if (t.pipeline == PipelineKind::tma_ws) {
    const bool lists = needs_tile_list(k.spec);  // the producer keeps more (FwdTraitsSm90Ws<..., LISTS>)
    register_limit = t.block_m == 192 ? (lists ? 152 : 160) : t.block_m == 128 ? (lists ? 224 : 240) : kMaxRegisters;
  }
  k.resources = r;
  if (t.mma == MmaKind::wgmma && arch != "sm_90a")
    throw LegalityError(fmt::format("flashjit: spec.tile.mma = wgmma needs arch sm_90a (Hopper); the target is {}; "
                                    "use mma = mma_sync",
                                    arch));
  const std::string tile = fmt::format("block_m={} block_n={} warps={} stages={} mma={}{}", t.block_m, t.block_n, t.warps,
                                       t.stages, to_string(t.mma),
                                       t.pipeline == PipelineKind::tma_ws ? " pipeline=tma_ws" : "");
  if (r.smem_bytes > r.smem_limit)
    throw LegalityError(fmt::format(
        "flashjit: spec.tile ({}) needs {} bytes of shared memory for head_dim={} head_dim_v={}, but {} allows {} per "
        "block; use a smaller block_m, block_n or stages",
        tile, r.smem_bytes, k.spec.head_dim, k.spec.head_dim_v, arch, r.smem_limit));
  if (r.est_registers > register_limit)
    throw LegalityError(fmt::format(
        "flashjit: spec.tile ({}) needs at least {} registers per thread for head_dim_v={} (limit {}); use more warps "
        "or a smaller block_m / block_n",
        tile, r.est_registers, k.spec.head_dim_v, register_limit));
  k.passes_run.push_back("check_legality");
}

}  // namespace flashjit::passes
