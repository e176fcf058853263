// NVRTC loaded with dlopen at run time, like the CUDA driver (cuda_driver.h). Nothing links
// libnvrtc, so the library, the CLI and the Python wheel start on machines without it (and
// without a RUNPATH into a toolkit that only the build machine has); the first compile looks
// for it and, when it is nowhere, says where it looked and how to fix that.
//
// Only nvrtc.h's types are used here (a signature change in a new toolkit is a build error).
#pragma once

#include <nvrtc.h>

#include <string>
#include <vector>

namespace flashjit {

// The NVRTC entry points flashjit calls, resolved from one loaded library.
struct NvrtcApi {
  std::string path;    // what was dlopen'ed: a full path, or the soname (the loader's own search)
  std::string origin;  // where that candidate came from, e.g. "FLASHJIT_NVRTC"
  void* handle = nullptr;
  decltype(&::nvrtcGetErrorString) nvrtcGetErrorString = nullptr;
  decltype(&::nvrtcVersion) nvrtcVersion = nullptr;
  decltype(&::nvrtcGetNumSupportedArchs) nvrtcGetNumSupportedArchs = nullptr;
  decltype(&::nvrtcGetSupportedArchs) nvrtcGetSupportedArchs = nullptr;
  decltype(&::nvrtcCreateProgram) nvrtcCreateProgram = nullptr;
  decltype(&::nvrtcDestroyProgram) nvrtcDestroyProgram = nullptr;
  decltype(&::nvrtcCompileProgram) nvrtcCompileProgram = nullptr;
  decltype(&::nvrtcGetProgramLogSize) nvrtcGetProgramLogSize = nullptr;
  decltype(&::nvrtcGetProgramLog) nvrtcGetProgramLog = nullptr;
  decltype(&::nvrtcGetCUBINSize) nvrtcGetCUBINSize = nullptr;
  decltype(&::nvrtcGetCUBIN) nvrtcGetCUBIN = nullptr;
};

// The CUDA major flashjit was compiled against (CUDA_VERSION / 1000, e.g. 13), and the
// soname of that major's NVRTC ("libnvrtc.so.13"). Only that major is accepted: the soname's
// number is NVIDIA's ABI promise.
int nvrtc_built_major();
std::string nvrtc_soname();

// Extra folders to look in, after FLASHJIT_NVRTC and before the toolkit's: the Python package
// passes the lib folders of the pip package nvidia-cuda-nvrtc here (origin names them in
// messages). Replaces the previous list; affects loads that have not happened yet.
void set_nvrtc_search_dirs(const std::vector<std::string>& dirs, const std::string& origin);

// One place to look: a full path (or the bare soname for the dynamic loader's own search),
// and where it came from, for the message that lists what was tried.
struct NvrtcCandidate {
  std::string path;
  std::string origin;
};

// The candidates in the order they are tried:
//   1. $FLASHJIT_NVRTC (the full path of the .so). When set, it is the only candidate: an
//      explicit choice that fails is an error, not a silent fallback to another NVRTC;
//   2. <dir>/libnvrtc.so.N for each folder of set_nvrtc_search_dirs (pip's nvidia-cuda-nvrtc);
//   3. $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64, then the lib folder of the
//      toolkit flashjit was built with (a string, not an rpath: used only if it exists here);
//   4. the bare soname: LD_LIBRARY_PATH, the ldconfig cache, the system folders.
// Duplicates are dropped (the first origin is kept).
std::vector<NvrtcCandidate> nvrtc_candidates();

// Tries each candidate in turn; the first that dlopens, has every symbol of NvrtcApi and
// reports NVRTC major == nvrtc_built_major() wins (the others stay closed). When none does,
// throws CompileError listing every candidate with why it failed (not found, dlopen's error,
// the missing symbols by name, the wrong major), then how to fix it.
NvrtcApi load_nvrtc(const std::vector<NvrtcCandidate>& candidates);

// The process's NVRTC: loaded by the first call (thread-safe) and kept for the process. A
// failed load throws load_nvrtc's CompileError and is tried again by the next call, so a
// program can set FLASHJIT_NVRTC (or install the package) and retry.
const NvrtcApi& nvrtc();
// Whether nvrtc() succeeds (it loads, if not yet done); never throws. Lets the work that needs
// no compiler (emit, emit_ir, arch checks) go on without NVRTC.
bool nvrtc_available() noexcept;

}  // namespace flashjit
