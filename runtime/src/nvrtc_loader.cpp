// NVRTC found and loaded at run time (see nvrtc_loader.h for the search order and why).
#include "flashjit/nvrtc_loader.h"

#include <cuda.h>  // CUDA_VERSION: the toolkit this file is compiled against
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "flashjit/error.h"

#ifndef FLASHJIT_CUDA_BUILD_LIBDIR
#define FLASHJIT_CUDA_BUILD_LIBDIR ""
#endif

namespace flashjit {
namespace {

std::mutex g_dirs_mutex;
std::vector<std::string> g_search_dirs;
std::string g_search_origin;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string join_path(const std::string& dir, const std::string& file) {
  if (dir.empty() || dir.back() == '/') return dir + file;
  return dir + "/" + file;
}

// The pip package to suggest: from CUDA 13 on NVIDIA publishes one name per major version
// range (nvidia-cuda-nvrtc 13.x, with nvidia-cuda-nvrtc-cu13 deprecated in its favour);
// up to 12 the major was part of the name.
std::string pip_requirement() {
  const int major = nvrtc_built_major();
  if (major >= 13) return "nvidia-cuda-nvrtc==" + std::to_string(major) + ".*";
  return "nvidia-cuda-nvrtc-cu" + std::to_string(major);
}

// dlopen's reason, or a fallback when it gives none.
std::string last_dlerror() {
  const char* e = dlerror();
  return e ? std::string(e) : std::string("dlopen failed without a message");
}

// Loads one candidate; on failure returns false with `why` set and nothing left open.
bool try_candidate(const NvrtcCandidate& c, NvrtcApi& api, std::string& why) {
  const bool is_path = c.path.find('/') != std::string::npos;
  if (is_path && ::access(c.path.c_str(), F_OK) != 0) {
    why = "not found";
    return false;
  }
  dlerror();  // clear a stale message
  // RTLD_LOCAL: NVRTC's symbols stay out of the global namespace, so a second NVRTC (say
  // torch's) in the process cannot bind to ours or ours to it.
  void* h = dlopen(c.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    why = last_dlerror();
    return false;
  }
  NvrtcApi a;
  a.path = c.path;
  a.origin = c.origin;
  a.handle = h;
  std::string missing;
#define FJ_NVRTC_RESOLVE(name)                                      \
  if (void* fn = dlsym(h, #name))                                   \
    a.name = reinterpret_cast<decltype(a.name)>(fn);                \
  else                                                              \
    missing += (missing.empty() ? "" : ", ") + std::string(#name);
  FJ_NVRTC_RESOLVE(nvrtcGetErrorString)
  FJ_NVRTC_RESOLVE(nvrtcVersion)
  FJ_NVRTC_RESOLVE(nvrtcGetNumSupportedArchs)
  FJ_NVRTC_RESOLVE(nvrtcGetSupportedArchs)
  FJ_NVRTC_RESOLVE(nvrtcCreateProgram)
  FJ_NVRTC_RESOLVE(nvrtcDestroyProgram)
  FJ_NVRTC_RESOLVE(nvrtcCompileProgram)
  FJ_NVRTC_RESOLVE(nvrtcGetProgramLogSize)
  FJ_NVRTC_RESOLVE(nvrtcGetProgramLog)
  FJ_NVRTC_RESOLVE(nvrtcGetCUBINSize)
  FJ_NVRTC_RESOLVE(nvrtcGetCUBIN)
#undef FJ_NVRTC_RESOLVE
  if (!missing.empty()) {
    dlclose(h);
    why = "loaded, but lacks " + missing + " (not an NVRTC library, or one too old)";
    return false;
  }
  int major = 0, minor = 0;
  if (a.nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) {
    dlclose(h);
    why = "loaded, but nvrtcVersion failed";
    return false;
  }
  if (major != nvrtc_built_major()) {
    dlclose(h);
    why = "loaded, but it is NVRTC " + std::to_string(major) + "." + std::to_string(minor) +
          "; flashjit was built for CUDA " + std::to_string(nvrtc_built_major());
    return false;
  }
  api = std::move(a);
  return true;
}

}  // namespace

int nvrtc_built_major() { return CUDA_VERSION / 1000; }

std::string nvrtc_soname() { return "libnvrtc.so." + std::to_string(nvrtc_built_major()); }

void set_nvrtc_search_dirs(const std::vector<std::string>& dirs, const std::string& origin) {
  std::lock_guard<std::mutex> lock(g_dirs_mutex);
  g_search_dirs = dirs;
  g_search_origin = origin;
}

std::vector<NvrtcCandidate> nvrtc_candidates() {
  const std::string so = nvrtc_soname();
  const std::string explicit_path = env("FLASHJIT_NVRTC");
  if (!explicit_path.empty()) return {{explicit_path, "FLASHJIT_NVRTC"}};

  std::vector<NvrtcCandidate> out;
  auto add = [&](const std::string& path, const std::string& origin) {
    for (const NvrtcCandidate& c : out)
      if (c.path == path) return;
    out.push_back({path, origin});
  };
  {
    std::lock_guard<std::mutex> lock(g_dirs_mutex);
    for (const std::string& d : g_search_dirs)
      if (!d.empty()) add(join_path(d, so), g_search_origin);
  }
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    const std::string root = env(var);
    if (!root.empty()) add(join_path(join_path(root, "lib64"), so), std::string("$") + var + "/lib64");
  }
  add("/usr/local/cuda/lib64/" + so, "the default toolkit folder");
  const std::string built = FLASHJIT_CUDA_BUILD_LIBDIR;
  if (!built.empty()) add(join_path(built, so), "the toolkit flashjit was built with");
  add(so, "the dynamic loader's search (LD_LIBRARY_PATH, ldconfig)");
  return out;
}

NvrtcApi load_nvrtc(const std::vector<NvrtcCandidate>& candidates) {
  std::string tried;
  for (const NvrtcCandidate& c : candidates) {
    NvrtcApi api;
    std::string why;
    if (try_candidate(c, api, why)) return api;
    tried += "\n  " + c.path + " (" + c.origin + "): " + why;
  }
  const std::string so = nvrtc_soname();
  const std::string major = std::to_string(nvrtc_built_major());
  throw CompileError("flashjit: compiling a kernel needs NVRTC (" + so + ", CUDA " + major +
                     "), and none could be loaded. Tried, in order:" + (tried.empty() ? "\n  (nothing)" : tried) +
                     "\nTo fix it, do one of: install the CUDA " + major +
                     " toolkit (set CUDA_HOME if it is not in /usr/local/cuda); `pip install \"" + pip_requirement() +
                     "\"` into the Python environment that imports flashjit; or set FLASHJIT_NVRTC to the full path "
                     "of " + so + ".");
}

const NvrtcApi& nvrtc() {
  static std::mutex mu;
  static std::atomic<const NvrtcApi*> loaded{nullptr};
  if (const NvrtcApi* p = loaded.load(std::memory_order_acquire)) return *p;
  std::lock_guard<std::mutex> lock(mu);
  if (const NvrtcApi* p = loaded.load(std::memory_order_relaxed)) return *p;
  // Never freed: the library stays loaded for the life of the process (cubins and function
  // pointers handed out earlier must stay valid), and so does its table.
  const NvrtcApi* api = new NvrtcApi(load_nvrtc(nvrtc_candidates()));
  loaded.store(api, std::memory_order_release);
  return *api;
}

bool nvrtc_available() noexcept {
  try {
    nvrtc();
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace flashjit
