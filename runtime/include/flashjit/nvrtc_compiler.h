// NVRTC: CUDA C++ source -> cubin, with flashjit's device templates as in-memory headers.
#pragma once

#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"

namespace flashjit {

struct EmbeddedFile {
  const char* name;     // include name, e.g. "flashjit/mma_sm80.cuh"
  const char* content;
};
// The templates/ headers, embedded into the library at build time.
const std::vector<EmbeddedFile>& embedded_templates();

struct NvrtcOutput {
  std::string cubin;
  std::string log;
  ResourceUsage resources;
  double compile_ms = 0.0;
};

// Options flashjit passes for `arch` (e.g. "sm_90a"): -arch, -std=c++17,
// --ptxas-options=-v (the resource report), -lineinfo only with FLASHJIT_LINEINFO=1 (it makes
// the cubin depend on the working directory), -no-cache on NVRTC >= 13 (its own cache would
// drop that report). No fast-math flags: the templates choose their approximations. Part of the cache key.
// quick: also --Ofast-compile=max (about half the compile time for a slower kernel, which may
// use local memory): background tuning's interim kernel, never a tuned or cached one.
std::vector<std::string> nvrtc_options(const std::string& arch, bool quick = false);
// "13.0"
std::string nvrtc_version_string();
// Accepts sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100a, ... ; throws ArgumentError("arch", ...) otherwise.
void check_arch(const std::string& arch);

// Compiles `source` (named `source_name` in diagnostics). On failure throws CompileError
// carrying NVRTC's log and the path where the failing source was written.
NvrtcOutput nvrtc_compile(const std::string& source, const std::string& source_name,
                          const std::string& arch, bool quick = false);

// Parses ptxas' "-v" report lines found in an NVRTC log.
ResourceUsage parse_ptxas_report(const std::string& log);

}  // namespace flashjit
