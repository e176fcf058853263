// The second launch parameter of a warp-specialised forward kernel (tile.pipeline =
// tma_ws): TMA descriptors of Q, K and V, encoded by the host at each launch (they hold
// the tensors' addresses). Included by the host runtime and by the kernel, so both agree
// on the layout; the kernel takes it as `const __grid_constant__` so that the copies can
// address the descriptors in parameter space.
//
// Each map views a (batch, heads, seqlen, head_dim) tensor as 5 dimensions, innermost first:
//   {64 columns, seqlen rows, head_dim / 64 slabs, heads, batch}
// with byte strides {row, 128, head, batch}, box {64, rows of the tile, head_dim / 64, 1, 1}
// and the 128-byte swizzle, so one copy lands a whole tile slab after slab: the layout of
// smem_tile_sw128.cuh. Rows past seqlen are filled with zeros.
#pragma once

#include "flashjit/tensor_map.cuh"

namespace flashjit {

struct FwdTmaMaps {
  TensorMap q, k, v;
};

}  // namespace flashjit
