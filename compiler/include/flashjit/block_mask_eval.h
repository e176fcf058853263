// The CPU oracle of the block-mask builder (templates/flashjit/block_mask_build.cuh): each
// cell's class by evaluating the mask at every element of it. The GPU builder classifies by
// interval analysis first and must give the same cells.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit::eval {

// Cells [batch, heads, ceil(seqlen_q / block_q), ceil(seqlen_k / block_kv)] row-major:
// 0 empty, 1 partial, 2 full. Cell (b, h) evaluates the mask at batch b and head h.
std::vector<int32_t> block_mask_cells(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& decls,
                                      const std::vector<expr::HostCapture>& captures, int64_t batch, int64_t heads,
                                      int64_t seqlen_q, int64_t seqlen_k, int block_q, int block_kv);

}  // namespace flashjit::eval
