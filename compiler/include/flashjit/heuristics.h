// The tile config used when none is given and no tuned result exists.
#pragma once

#include <string>

#include "flashjit/spec.h"

namespace flashjit {

// A legal (fits the arch's shared memory and registers) config for spec and arch,
// chosen from what FlashAttention-2 uses for the same head dims.
TileConfig default_tile(const AttentionSpec& spec, const std::string& arch);

}  // namespace flashjit

namespace flashjit {

// The backward's bwd_dkdv tile (block_m: query rows per q tile; block_n: keys per block;
// warps; stages 1 or 2 of Q/dO buffers; mma_sync) for spec on arch: FlashAttention-2's
// shapes, the deepest pipeline that fits the arch's shared memory.
TileConfig default_bwd_tile(const AttentionSpec& spec, const std::string& arch);
// Throws SpecError (a shape the skeleton cannot tile) or LegalityError (shared memory, the
// accumulators' registers) naming spec.tile and what is allowed.
void check_bwd_tile(const AttentionSpec& spec, const TileConfig& tile, const std::string& arch);

// The deterministic backward's bwd_dq tile (block_m = 16 query rows per warp, block_n keys
// per key tile, stages of K/V buffers; mma_sync): 4 warps, key tiles of 32 up to head dim
// 128, 16 beyond (dQ's D / 2 accumulators beside S and dP: larger key tiles spill with mask
// expressions and score_mods), the deepest pipeline that fits.
TileConfig default_bwd_dq_tile(const AttentionSpec& spec, const std::string& arch);

}  // namespace flashjit
