// The pass pipeline: which passes run, in which order, and stopping after any of them
// (`flashjit ir --after PASS`, golden tests).
#include <stdexcept>

#include "flashjit/passes.h"

namespace flashjit::passes {

const std::vector<std::string>& pass_names() {
  static const std::vector<std::string> names = {"classify_tiles", "pipeline_loads", "overlap_pv", "check_legality"};
  return names;
}

ir::Kernel run_pipeline(ir::Kernel k, const std::string& arch, const std::string& stop_after) {
  if (!stop_after.empty() && stop_after != "lower") {
    bool known = false;
    for (const auto& n : pass_names()) known |= n == stop_after;
    if (!known) {
      std::string allowed = "lower";
      for (const auto& n : pass_names()) allowed += ", " + n;
      throw std::invalid_argument("flashjit: unknown pass '" + stop_after + "'; allowed: " + allowed);
    }
  }
  ir::verify(k);
  if (stop_after == "lower") return k;
  for (const auto& name : pass_names()) {
    if (name == "classify_tiles") classify_tiles(k);
    else if (name == "pipeline_loads") pipeline_loads(k);
    else if (name == "overlap_pv") overlap_pv(k);
    else if (name == "check_legality") check_legality(k, arch);
    if (name == stop_after) break;
  }
  return k;
}

}  // namespace flashjit::passes
