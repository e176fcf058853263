// Tile IR (after passes) -> readable CUDA C++ that instantiates the device templates.
#pragma once

#include <string>

#include "flashjit/ir.h"

namespace flashjit::codegen {

// The complete translation unit handed to NVRTC: a header comment with the spec and
// the IR, the launch contract, and an extern "C" __global__ entry named k.name.
std::string generate_cuda(const ir::Kernel& k);

// The kernel entry name for a spec: flashjit_fwd_<dtype>_d<D>x<DV>_<mask>_<hash8>.
std::string kernel_name(const AttentionSpec& spec);

}  // namespace flashjit::codegen
