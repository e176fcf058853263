// The CUDA driver API, loaded at run time with dlopen so that the library, the CLI
// and the CPU tests work on machines without a GPU or driver. Only types come from
// cuda.h; no symbol is linked.
#pragma once

#include <cuda.h>

#include <string>

namespace flashjit {

class CudaDriver {
 public:
  // The process-wide instance; loading is attempted once.
  static CudaDriver& get();

  bool available() const { return available_; }
  // Why available() is false: "libcuda.so.1 not found", "cuInit failed: CUDA_ERROR_NO_DEVICE", ...
  const std::string& unavailable_reason() const { return reason_; }
  // Throws CudaError with unavailable_reason() when no GPU can be used.
  void require(const char* what) const;
  // Throws CudaError "<what>: <CUDA_ERROR_NAME> (<description>)" when r != CUDA_SUCCESS.
  void check(CUresult r, const char* what) const;

  // Ensures a current context (the device's primary context if none is current)
  // and returns its device.
  CUdevice current_device();
  // "sm_90a" for compute capability 9.0 (Hopper gets the 'a' target), "sm_80", ...
  std::string device_arch(CUdevice dev);
  std::string device_name(CUdevice dev);
  int device_attribute(CUdevice dev, CUdevice_attribute attr);
  int driver_version() const { return driver_version_; }

#define FLASHJIT_DRIVER_FN(name) decltype(&::name) name = nullptr;
  FLASHJIT_DRIVER_FN(cuInit)
  FLASHJIT_DRIVER_FN(cuDriverGetVersion)
  FLASHJIT_DRIVER_FN(cuDeviceGetCount)
  FLASHJIT_DRIVER_FN(cuDeviceGet)
  FLASHJIT_DRIVER_FN(cuDeviceGetName)
  FLASHJIT_DRIVER_FN(cuDeviceGetAttribute)
  FLASHJIT_DRIVER_FN(cuDevicePrimaryCtxRetain)
  FLASHJIT_DRIVER_FN(cuCtxGetCurrent)
  FLASHJIT_DRIVER_FN(cuCtxSetCurrent)
  FLASHJIT_DRIVER_FN(cuCtxGetDevice)
  FLASHJIT_DRIVER_FN(cuCtxPushCurrent)
  FLASHJIT_DRIVER_FN(cuCtxPopCurrent)
  FLASHJIT_DRIVER_FN(cuModuleLoadData)
  FLASHJIT_DRIVER_FN(cuModuleUnload)
  FLASHJIT_DRIVER_FN(cuModuleGetFunction)
  FLASHJIT_DRIVER_FN(cuFuncSetAttribute)
  FLASHJIT_DRIVER_FN(cuFuncGetAttribute)
  FLASHJIT_DRIVER_FN(cuLaunchKernel)
  FLASHJIT_DRIVER_FN(cuStreamSynchronize)
  FLASHJIT_DRIVER_FN(cuStreamIsCapturing)  // background tuning times nothing inside a capture
  FLASHJIT_DRIVER_FN(cuCtxSynchronize)
  FLASHJIT_DRIVER_FN(cuGetErrorName)
  FLASHJIT_DRIVER_FN(cuGetErrorString)
  FLASHJIT_DRIVER_FN(cuPointerGetAttribute)
  FLASHJIT_DRIVER_FN(cuMemAlloc)
  FLASHJIT_DRIVER_FN(cuMemFree)
  FLASHJIT_DRIVER_FN(cuMemcpyHtoD)
  FLASHJIT_DRIVER_FN(cuMemcpyDtoH)
  FLASHJIT_DRIVER_FN(cuMemsetD8)
  FLASHJIT_DRIVER_FN(cuMemsetD32Async)  // the backward zeroes capture gradients in stream order
  FLASHJIT_DRIVER_FN(cuMemAllocAsync)  // stream-ordered: the backward's workspace (graph-capturable)
  FLASHJIT_DRIVER_FN(cuMemFreeAsync)
  FLASHJIT_DRIVER_FN(cuEventCreate)
  FLASHJIT_DRIVER_FN(cuEventRecord)
  FLASHJIT_DRIVER_FN(cuEventSynchronize)
  FLASHJIT_DRIVER_FN(cuEventElapsedTime)
  FLASHJIT_DRIVER_FN(cuEventDestroy)
  FLASHJIT_DRIVER_FN(cuTensorMapEncodeTiled)  // TMA descriptors (tile.pipeline = tma_ws)
#undef FLASHJIT_DRIVER_FN

 private:
  CudaDriver();
  bool available_ = false;
  std::string reason_;
  int driver_version_ = 0;
  void* handle_ = nullptr;
};

}  // namespace flashjit
