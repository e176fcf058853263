// Internal: the steps shared by compile(), forward() and the inspection functions.
#pragma once

#include <string>

#include "flashjit/compiled_kernel.h"
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

// NVRTC with the memory and disk caches, for any kernel kind: `meta_json` is stored beside
// the cubin (what produced it), `tile` reported back as is. quick: NVRTC's fast-compile mode
// (nvrtc_options), and neither cache: such a kernel serves one process while it tunes.
CompiledKernel compile_source(const std::string& name, const std::string& source, const std::string& arch,
                              const std::string& meta_json, int threads, int dynamic_smem_bytes,
                              const TileConfig& tile, bool use_cache, bool quick = false);

}  // namespace flashjit
