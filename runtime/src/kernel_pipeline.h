// Internal: the steps shared by compile(), forward() and the inspection functions.
#pragma once

#include <string>

#include "flashjit/ir.h"
#include "flashjit/spec.h"

namespace flashjit {

struct GeneratedKernel {
  AttentionSpec spec;  // normalized, tile resolved
  ir::Kernel kernel;   // after all passes
  std::string source;  // CUDA C++ for NVRTC
};

// `arch` if given (validated), else the current device's; throws ArgumentError("arch")
// when neither exists.
std::string resolve_arch(const std::string& arch);
GeneratedKernel generate(const AttentionSpec& spec, const std::string& arch);

}  // namespace flashjit
