// The CUDA driver API loaded with dlopen: the library must work (compile-only) on
// machines without libcuda, so no driver symbol is linked.
#include "flashjit/cuda_driver.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "flashjit/error.h"

// cuda.h #defines many API names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2, ...).
// FJ_STR gives the name as written (what cuGetProcAddress wants); FJ_XSTR expands the
// macro first, giving the ABI symbol the header's prototype describes (the dlsym fallback).
#define FJ_STR(x) #x
#define FJ_XSTR(x) FJ_STR(x)

namespace flashjit {
namespace {

// Names for a few common results, used only when the driver's cuGetErrorName is not
// available (library missing or too old), so messages still name the error.
const char* fallback_error_name(CUresult r) {
  switch (r) {
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_NO_BINARY_FOR_GPU: return "CUDA_ERROR_NO_BINARY_FOR_GPU";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION: return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
    default: return nullptr;
  }
}

// The primary context retained by current_device(), per device: retaining once per
// device (not once per call or thread) keeps the driver's reference count bounded.
std::mutex g_ctx_mutex;
std::unordered_map<int, CUcontext> g_primary_ctx;

}  // namespace

CudaDriver& CudaDriver::get() {
  // Function-local static: thread-safe, one load attempt per process.
  static CudaDriver instance;
  return instance;
}

CudaDriver::CudaDriver() {
  // libcuda.so.1 is what the driver installs; libcuda.so is only present with the
  // development stubs/symlinks, so it is the second choice.
  handle_ = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!handle_) handle_ = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    reason_ = "libcuda.so.1 not found (no NVIDIA driver): compile-only mode";
    return;
  }

  // Resolve the exact symbol the header's prototype describes (cuda.h maps e.g. cuMemFree
  // to cuMemFree_v2): that ABI is what our function pointer types assume. Do NOT ask
  // cuGetProcAddress for the newest version of a base name: for CUDA 13 it hands out
  // cuCtxSynchronize_v2(CUcontext) for "cuCtxSynchronize", whose signature differs.
  auto resolve = [&](const char* base, const char* versioned) -> void* {
    if (void* fn = dlsym(handle_, versioned)) return fn;
    return dlsym(handle_, base);
  };

  std::string missing;
#define FJ_RESOLVE(name)                                                          \
  if (void* fn = resolve(FJ_STR(name), FJ_XSTR(name)))                            \
    this->name = reinterpret_cast<decltype(this->name)>(fn);                      \
  else                                                                            \
    missing += (missing.empty() ? "" : ", ") + std::string(FJ_STR(name));
  FJ_RESOLVE(cuInit)
  FJ_RESOLVE(cuDriverGetVersion)
  FJ_RESOLVE(cuDeviceGetCount)
  FJ_RESOLVE(cuDeviceGet)
  FJ_RESOLVE(cuDeviceGetName)
  FJ_RESOLVE(cuDeviceGetAttribute)
  FJ_RESOLVE(cuDevicePrimaryCtxRetain)
  FJ_RESOLVE(cuCtxGetCurrent)
  FJ_RESOLVE(cuCtxSetCurrent)
  FJ_RESOLVE(cuCtxGetDevice)
  FJ_RESOLVE(cuCtxPushCurrent)
  FJ_RESOLVE(cuCtxPopCurrent)
  FJ_RESOLVE(cuModuleLoadData)
  FJ_RESOLVE(cuModuleUnload)
  FJ_RESOLVE(cuModuleGetFunction)
  FJ_RESOLVE(cuFuncSetAttribute)
  FJ_RESOLVE(cuFuncGetAttribute)
  FJ_RESOLVE(cuLaunchKernel)
  FJ_RESOLVE(cuStreamSynchronize)
  FJ_RESOLVE(cuStreamIsCapturing)
  FJ_RESOLVE(cuCtxSynchronize)
  FJ_RESOLVE(cuGetErrorName)
  FJ_RESOLVE(cuGetErrorString)
  FJ_RESOLVE(cuPointerGetAttribute)
  FJ_RESOLVE(cuMemAlloc)
  FJ_RESOLVE(cuMemFree)
  FJ_RESOLVE(cuMemcpyHtoD)
  FJ_RESOLVE(cuMemcpyDtoH)
  FJ_RESOLVE(cuMemsetD8)
  FJ_RESOLVE(cuMemsetD32Async)
  FJ_RESOLVE(cuMemAllocAsync)
  FJ_RESOLVE(cuMemFreeAsync)
  FJ_RESOLVE(cuEventCreate)
  FJ_RESOLVE(cuEventRecord)
  FJ_RESOLVE(cuEventSynchronize)
  FJ_RESOLVE(cuEventElapsedTime)
  FJ_RESOLVE(cuEventDestroy)
  FJ_RESOLVE(cuTensorMapEncodeTiled)
#undef FJ_RESOLVE
  if (!missing.empty()) {
    reason_ = "the CUDA driver library lacks " + missing + " (driver too old?)";
    return;
  }

  CUresult r = cuInit(0);
  if (r != CUDA_SUCCESS) {
    // Error names are available before cuInit succeeds.
    const char* name = nullptr;
    const char* desc = nullptr;
    if (cuGetErrorName(r, &name) != CUDA_SUCCESS) name = nullptr;
    if (cuGetErrorString(r, &desc) != CUDA_SUCCESS) desc = nullptr;
    reason_ = std::string("cuInit failed: ") + (name ? name : "CUresult " + std::to_string(int(r))) +
              (desc ? std::string(" (") + desc + ")" : std::string());
    return;
  }
  if (cuDriverGetVersion(&driver_version_) != CUDA_SUCCESS) driver_version_ = 0;
  int count = 0;
  r = cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count <= 0) {
    reason_ = "no CUDA device found (cuDeviceGetCount reported " +
              (r == CUDA_SUCCESS ? std::to_string(count) + " devices" : "error " + std::to_string(int(r))) + ")";
    return;
  }
  available_ = true;
}

void CudaDriver::require(const char* what) const {
  if (!available_) throw CudaError(std::string(what) + " needs a GPU: " + reason_);
}

void CudaDriver::check(CUresult r, const char* what) const {
  if (r == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* desc = nullptr;
  if (!cuGetErrorName || cuGetErrorName(r, &name) != CUDA_SUCCESS) name = fallback_error_name(r);
  if (!cuGetErrorString || cuGetErrorString(r, &desc) != CUDA_SUCCESS) desc = nullptr;
  std::string msg = std::string(what) + ": " + (name ? name : "CUresult " + std::to_string(int(r)));
  msg += std::string(" (") + (desc ? desc : "no description available") + ")";
  throw CudaError(msg);
}

CUdevice CudaDriver::current_device() {
  require("current_device");
  CUcontext ctx = nullptr;
  check(cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  if (!ctx) {
    // No context on this thread (e.g. a plain C++ program, not PyTorch): use device 0's
    // primary context, the one the runtime API and frameworks share.
    std::lock_guard<std::mutex> lock(g_ctx_mutex);
    auto it = g_primary_ctx.find(0);
    if (it == g_primary_ctx.end()) {
      CUdevice dev0 = 0;
      check(cuDeviceGet(&dev0, 0), "cuDeviceGet(0)");
      CUcontext primary = nullptr;
      check(cuDevicePrimaryCtxRetain(&primary, dev0), "cuDevicePrimaryCtxRetain");
      it = g_primary_ctx.emplace(0, primary).first;
    }
    check(cuCtxSetCurrent(it->second), "cuCtxSetCurrent");
  }
  CUdevice dev = 0;
  check(cuCtxGetDevice(&dev), "cuCtxGetDevice");
  return dev;
}

int CudaDriver::device_attribute(CUdevice dev, CUdevice_attribute attr) {
  require("device_attribute");
  int value = 0;
  check(cuDeviceGetAttribute(&value, attr, dev), "cuDeviceGetAttribute");
  return value;
}

std::string CudaDriver::device_arch(CUdevice dev) {
  const int major = device_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  const int minor = device_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  // Hopper and datacenter Blackwell get the arch-specific target: wgmma / tcgen05 and
  // the tensor memory accelerator are only available there.
  if (major == 9 && minor == 0) return "sm_90a";
  if (major == 10 && minor == 0) return "sm_100a";
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

std::string CudaDriver::device_name(CUdevice dev) {
  require("device_name");
  char buf[256] = {};
  check(cuDeviceGetName(buf, sizeof(buf) - 1, dev), "cuDeviceGetName");
  return buf;
}

}  // namespace flashjit
