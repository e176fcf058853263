// A tensor captured by a mask or score expression (docs/expressions.md), as the kernel
// receives it, and its element reads. The host fills these in after checking every read's
// index range against `sizes` (interval analysis), so the reads need no bounds checks.
#pragma once

#include "flashjit/expr_ops.cuh"

namespace flashjit {

inline constexpr int kMaxCaptures = 8;

struct CaptureArg {
  const void* data;
  long long strides[4];  // in elements
  int sizes[4];          // checked on the host before launch, kept for debugging
};

FJ_HOST_DEVICE long long fj_offset(const CaptureArg& c, int i0, int i1 = 0, int i2 = 0, int i3 = 0) {
  return i0 * c.strides[0] + i1 * c.strides[1] + i2 * c.strides[2] + i3 * c.strides[3];
}

// One read per dtype; i64 values are truncated to 32 bits, bool is a byte (nonzero = true).
template <class... I> FJ_HOST_DEVICE int fj_read_i32(const CaptureArg& c, I... i) {
  return static_cast<const int*>(c.data)[fj_offset(c, i...)];
}
template <class... I> FJ_HOST_DEVICE int fj_read_i64(const CaptureArg& c, I... i) {
  return (int)static_cast<const long long*>(c.data)[fj_offset(c, i...)];
}
template <class... I> FJ_HOST_DEVICE float fj_read_f32(const CaptureArg& c, I... i) {
  return static_cast<const float*>(c.data)[fj_offset(c, i...)];
}
template <class... I> FJ_HOST_DEVICE float fj_read_f16(const CaptureArg& c, I... i) {
  return fj_f16_bits_to_float(static_cast<const unsigned short*>(c.data)[fj_offset(c, i...)]);
}
template <class... I> FJ_HOST_DEVICE float fj_read_bf16(const CaptureArg& c, I... i) {
  return fj_bf16_bits_to_float(static_cast<const unsigned short*>(c.data)[fj_offset(c, i...)]);
}
template <class... I> FJ_HOST_DEVICE bool fj_read_bool(const CaptureArg& c, I... i) {
  return static_cast<const unsigned char*>(c.data)[fj_offset(c, i...)] != 0;
}

}  // namespace flashjit
