// Test-only helpers for GPU tests: device buffers through the dlopen'ed driver, 16-bit
// conversions, and a float64 reference computed row by row (so large sequences can be
// checked on sampled rows).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "flashjit/cuda_driver.h"
#include "flashjit/half_bits.h"
#include "flashjit/runtime.h"

namespace fjtest {

inline uint16_t to_bits(double x, flashjit::DType dt) { return flashjit::to_bits16(x, dt); }
inline double from_bits(uint16_t b, flashjit::DType dt) { return flashjit::from_bits16(b, dt); }

struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    auto& d = flashjit::CudaDriver::get();
    d.check(d.cuMemAlloc(&ptr, n ? n : 16), "cuMemAlloc");
  }
  ~DeviceBuffer() {
    if (ptr) flashjit::CudaDriver::get().cuMemFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return reinterpret_cast<void*>(ptr); }
  void upload(const void* src) {
    auto& d = flashjit::CudaDriver::get();
    d.check(d.cuMemcpyHtoD(ptr, src, bytes), "cuMemcpyHtoD");
  }
  void download(void* dst) const {
    auto& d = flashjit::CudaDriver::get();
    d.check(d.cuMemcpyDtoH(dst, ptr, bytes), "cuMemcpyDtoH");
  }
  // 0xFF bytes: NaN in fp16, bf16 and float32, so an unwritten element cannot pass.
  void poison() {
    auto& d = flashjit::CudaDriver::get();
    d.check(d.cuMemsetD8(ptr, 0xFF, bytes), "cuMemsetD8");
  }
};

// Float64 attention for one query row of one (batch, head); `visible(i, j)` is the mask.
// Returns the LSE (natural log; -inf when no key is visible) and writes out[dv].
template <class GetQ, class GetK, class GetV, class Visible>
double reference_row(int64_t i, int64_t sk, int d, int dv, double scale, GetQ q, GetK k, GetV v, Visible visible,
                     std::vector<double>& out) {
  std::vector<double> s(static_cast<size_t>(sk));
  double mx = -INFINITY;
  for (int64_t j = 0; j < sk; ++j) {
    if (!visible(i, j)) {
      s[j] = -INFINITY;
      continue;
    }
    double acc = 0;
    for (int c = 0; c < d; ++c) acc += q(c) * k(j, c);
    s[j] = acc * scale;
    mx = std::max(mx, s[j]);
  }
  out.assign(static_cast<size_t>(dv), 0.0);
  if (mx == -INFINITY) return -INFINITY;
  double sum = 0;
  for (int64_t j = 0; j < sk; ++j) {
    if (s[j] == -INFINITY) continue;
    const double p = std::exp(s[j] - mx);
    sum += p;
    for (int c = 0; c < dv; ++c) out[c] += p * v(j, c);
  }
  for (int c = 0; c < dv; ++c) out[c] /= sum;
  return mx + std::log(sum);
}

}  // namespace fjtest

// Skips the current test case when no GPU exists, printing why (Catch2 2.x shows WARN
// only for failing tests, so the reason also goes to stdout).
#define FJ_REQUIRE_GPU_OR_SKIP()                                                              \
  do {                                                                                       \
    if (!flashjit::gpu_available()) {                                                        \
      std::printf("SKIPPED (no GPU): %s\n", flashjit::gpu_unavailable_reason().c_str());     \
      WARN("GPU test skipped: " << flashjit::gpu_unavailable_reason());                      \
      return;                                                                                \
    }                                                                                        \
    /* Device buffers are allocated before forward() runs: make a context current now. */   \
    flashjit::CudaDriver::get().current_device();                                            \
  } while (0)
