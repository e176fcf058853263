// Pass overlap_pv (wgmma kernels): the P·V GEMM of tile kv is issued in iteration kv + 1,
// right after the asynchronous Q·Kᵀ GEMM of tile kv + 1, so that the tensor cores work on
// it while the warpgroup runs the softmax of tile kv + 1 (FlashAttention-3's intra-
// warpgroup overlap). The O rescale of tile kv + 1 then waits for that GEMM; the last
// tile's P·V runs after the loop. The V ring is loaded one tile behind the K ring.
//
// Only the schedule changes, not the values: the op keeps its place in the IR and gets
// `lag = 1`, which codegen implements; the CPU evaluator runs the ops in IR order.
// mma.sync kernels are left alone: their GEMMs are synchronous per warp.
#include "flashjit/passes.h"

namespace flashjit::passes {

void overlap_pv(ir::Kernel& k) {
  if (k.spec.tile && k.spec.tile->mma == MmaKind::wgmma) {
    for (ir::Op& op : k.loop.body)
      if (op.kind == ir::OpKind::gemm && op.has_attr("accumulate") && op.bool_attr("accumulate"))
        op.attrs["lag"] = int64_t(1);
  }
  k.passes_run.push_back("overlap_pv");
  ir::verify(k);
}

}  // namespace flashjit::passes
