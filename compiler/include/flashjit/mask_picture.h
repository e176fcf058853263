// A picture of a mask: which keys each query sees and how the kernel classifies its tiles,
// so users see what they wrote (`flashjit mask`, flashjit.plot_block_mask()).
#pragma once

#include <cstdint>
#include <vector>

#include "flashjit/expr.h"
#include "flashjit/spec.h"

namespace flashjit::eval {

struct MaskPicture {
  int width = 0, height = 0;  // pixels: columns are keys, rows are queries
  std::vector<uint8_t> rgb;   // width * height * 3, row-major from query 0
  int block_m = 0, block_n = 0;
  int64_t tiles_empty = 0, tiles_partial = 0, tiles_full = 0;
};

// The mask of batch `b`, head `h` for seqlen_q x seqlen_k, with the tile classes of the
// spec's tile (resolved for sm_80 if unset) computed as the kernel computes them:
//   empty tiles     light grey  (never loaded)
//   full tiles      dark blue   (no mask arithmetic)
//   partial tiles   blue where the key is visible, white where it is masked.
// At most `max_side` pixels per side: a larger problem is sampled (each pixel shows the
// element at its top-left corner). `captures`: host copies of the tensors the mask reads.
MaskPicture mask_picture(const AttentionSpec& spec, int64_t seqlen_q, int64_t seqlen_k,
                         const std::vector<expr::HostCapture>& captures = {}, int b = 0, int h = 0,
                         int max_side = 1024);

}  // namespace flashjit::eval
