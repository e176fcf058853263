// Pass classify_tiles: FlashAttention-2's causal trick, generalised to every band mask.
//
// Per (q tile, kv tile) the band decides empty / full / partial (templates/flashjit/
// band_mask.cuh holds the arithmetic, shared by the device code and the CPU evaluator):
// the loop then runs only over non-empty tiles, and the mask is applied only on partial
// ones. The bounds depend on run-time sequence lengths, so the pass records *that* the
// loop is classified; the tile ranges are computed per block at run time.
//
// A mask expression that is not a band is classified by interval analysis instead
// (templates/flashjit/interval.cuh): each block evaluates the expression over each kv
// tile's index box, skips tiles where it is never true and leaves unmasked those where it
// is always true.
#include "flashjit/passes.h"

namespace flashjit::passes {

void classify_tiles(ir::Kernel& k) {
  k.loop.classes.analysed = true;
  k.loop.classes.by_interval = !k.loop.mask_expr.empty();
  k.loop.classes.skip_empty = true;
  k.loop.classes.unmasked_full = true;
  for (ir::Op& op : k.loop.body)
    if (op.kind == ir::OpKind::apply_mask) op.attrs["when"] = std::string("partial");
  k.passes_run.push_back("classify_tiles");
  ir::verify(k);
}

}  // namespace flashjit::passes
