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
#include "flashjit/runtime.h"

namespace fjtest {

inline uint16_t to_bits(double x, flashjit::DType dt) {
  const float f = static_cast<float>(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (dt == flashjit::DType::bf16) {
    u += 0x7fff + ((u >> 16) & 1);  // round to nearest even (inputs are finite)
    return static_cast<uint16_t>(u >> 16);
  }
  // fp16 via a conversion with round-to-nearest-even (inputs are well inside range).
  const uint32_t sign = (u >> 16) & 0x8000;
  int exp = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
  uint32_t mant = u & 0x7fffff;
  if (exp <= 0) {  // subnormal half
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline double from_bits(uint16_t b, flashjit::DType dt) {
  if (dt == flashjit::DType::bf16) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const int exp = (b >> 10) & 0x1f, mant = b & 0x3ff;
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

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
