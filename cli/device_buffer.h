// Device memory for the CLI's GPU commands (tune, check), through the dlopen'ed driver API.
// free() on the normal path reports errors; the destructor only cleans up after an
// exception, which is then the error worth reporting.
#pragma once

#include <cstddef>

#include "flashjit/cuda_driver.h"

namespace flashjit::cli {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    CudaDriver& d = CudaDriver::get();
    d.check(d.cuMemAlloc(&ptr_, bytes ? bytes : 16), "cuMemAlloc");
  }
  ~DeviceBuffer() {
    if (ptr_) (void)CudaDriver::get().cuMemFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return reinterpret_cast<void*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  void upload(const void* src) {
    CudaDriver& d = CudaDriver::get();
    d.check(d.cuMemcpyHtoD(ptr_, src, bytes_), "cuMemcpyHtoD");
  }
  void download(void* dst) const {
    CudaDriver& d = CudaDriver::get();
    d.check(d.cuMemcpyDtoH(dst, ptr_, bytes_), "cuMemcpyDtoH");
  }
  // 0xFF bytes: NaN in fp16, bf16 and float32, so an element the kernel did not write fails.
  void poison() {
    CudaDriver& d = CudaDriver::get();
    d.check(d.cuMemsetD8(ptr_, 0xFF, bytes_), "cuMemsetD8");
  }
  void free() {
    CudaDriver& d = CudaDriver::get();
    const CUdeviceptr p = ptr_;
    ptr_ = 0;
    d.check(d.cuMemFree(p), "cuMemFree");
  }

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace flashjit::cli
