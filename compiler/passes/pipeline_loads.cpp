// Pass pipeline_loads: K and V tile loads become asynchronous copies into a shared-memory
// ring `stages` deep (cp.async on sm_80+). Tile kv + stages - 1 is requested while tile kv
// is computed on, so global-memory latency hides behind the two GEMMs and the softmax.
#include "flashjit/passes.h"

namespace flashjit::passes {

void pipeline_loads(ir::Kernel& k) {
  const int stages = k.spec.tile ? k.spec.tile->stages : 2;
  k.loop.stages = stages;
  std::vector<ir::Op> body;
  // Before touching tile kv, wait until at most stages - 2 younger copy groups are pending.
  body.push_back(ir::Op{ir::OpKind::wait_copies, {}, {}, {{"pending", int64_t(stages - 2)}}, {}});
  for (ir::Op op : k.loop.body) {
    if (op.kind == ir::OpKind::load_tile) {
      op.kind = ir::OpKind::async_copy;
      op.attrs["prefetch"] = int64_t(stages - 1);
    }
    body.push_back(std::move(op));
  }
  k.loop.body = std::move(body);
  k.passes_run.push_back("pipeline_loads");
  ir::verify(k);
}

}  // namespace flashjit::passes
