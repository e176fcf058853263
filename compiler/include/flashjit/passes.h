// Passes over the tile IR, one per file in compiler/passes/, run in this order:
//   classify_tiles  - empty / full / partial tiles: skip empty ones, mask only partial ones
//   pipeline_loads  - K/V loads become a cp.async ring `stages` deep
//   overlap_pv      - wgmma: tile kv's P·V GEMM runs during tile kv+1's softmax
//   check_legality  - shared memory and register budget for the target arch
#pragma once

#include <string>
#include <vector>

#include "flashjit/ir.h"

namespace flashjit::passes {

void classify_tiles(ir::Kernel& k);
void pipeline_loads(ir::Kernel& k);
void overlap_pv(ir::Kernel& k);
// Throws LegalityError naming the resource, what the spec needs and what the arch has.
void check_legality(ir::Kernel& k, const std::string& arch);

// Names in pipeline order.
const std::vector<std::string>& pass_names();
// Runs the pipeline on `k`, stopping after `stop_after` when given (throws
// std::invalid_argument for an unknown pass name).
ir::Kernel run_pipeline(ir::Kernel k, const std::string& arch, const std::string& stop_after = "");

// Shared-memory bytes and per-thread fragment registers a tile config needs.
int smem_bytes(const AttentionSpec& spec, const TileConfig& tile);
int fragment_registers(const AttentionSpec& spec, const TileConfig& tile);
// Opt-in shared memory per block for an arch ("sm_80" -> 163 KiB, "sm_90a" -> 227 KiB, ...).
int smem_limit(const std::string& arch);

}  // namespace flashjit::passes
