// The block-mask builder's launch parameters (block_mask_build.cuh). Included by the host
// runtime and by the generated kernel, so both agree on the layout.
#pragma once

#include "flashjit/fwd_params.cuh"

namespace flashjit {

// Cell classes, as the forward's block_mask capture reads them: 0 empty, 1 partial, 2 full.
struct BlockMaskParams {
  FwdParams f;   // seqlen_q, seqlen_k and caps: what the mask hooks read
  int* cells;    // [nb, nh, nqb, nkb] int32, contiguous
  int nb, nh, nqb, nkb;
  int block_q, block_kv;
  int kb_groups;  // ceil(nkb / threads per block): blockIdx.x = qb * kb_groups + group
};

}  // namespace flashjit
