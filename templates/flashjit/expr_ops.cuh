// Scalar semantics of the expression language (docs/expressions.md), for host and device.
//
// Generated mask / score hooks call these; the CPU evaluator (compiler/expr/eval.cpp) calls
// the very same functions, so integer results agree bit for bit and float results up to the
// math library's last-bit differences. Integers are 32-bit and wrap (computed in unsigned,
// where overflow is defined); // and % round toward -inf like Python; x // 0 and x % 0 are 0.
#pragma once

#include "flashjit/host_device.cuh"

#ifndef __CUDACC__
#include <math.h>
#include <string.h>
#endif

namespace flashjit {

FJ_HOST_DEVICE int fj_iadd(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
FJ_HOST_DEVICE int fj_isub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
FJ_HOST_DEVICE int fj_imul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
FJ_HOST_DEVICE int fj_ineg(int a) { return (int)(0u - (unsigned)a); }
FJ_HOST_DEVICE int fj_iabs(int a) { return a < 0 ? fj_ineg(a) : a; }
FJ_HOST_DEVICE int fj_imin(int a, int b) { return a < b ? a : b; }
FJ_HOST_DEVICE int fj_imax(int a, int b) { return a > b ? a : b; }

FJ_HOST_DEVICE int fj_ifloordiv(int a, int b) {
  if (b == 0) return 0;
  if (b == -1) return fj_ineg(a);  // INT_MIN // -1 wraps to INT_MIN instead of trapping
  const int q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
FJ_HOST_DEVICE int fj_imod(int a, int b) {
  if (b == 0 || b == -1) return 0;
  const int r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

FJ_HOST_DEVICE float fj_bits_float(unsigned bits) {
#ifdef __CUDACC__
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}
FJ_HOST_DEVICE float fj_nan() { return fj_bits_float(0x7fc00000u); }

// Float + - * / rounded once each: on the device the _rn intrinsics keep NVRTC from fusing
// a multiply and an add into one FMA (which rounds once instead of twice), so a user's
// expression gives the same bits on the GPU as in the CPU evaluator (x86-64 has no implicit
// FMA contraction at the default target).
FJ_HOST_DEVICE float fj_fadd(float a, float b) {
#ifdef __CUDACC__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FJ_HOST_DEVICE float fj_fsub(float a, float b) {
#ifdef __CUDACC__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FJ_HOST_DEVICE float fj_fmul(float a, float b) {
#ifdef __CUDACC__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FJ_HOST_DEVICE float fj_fdiv(float a, float b) {
#ifdef __CUDACC__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// torch.minimum / maximum: NaN if either is NaN (fminf would drop it).
FJ_HOST_DEVICE float fj_fmin(float a, float b) { return (a != a || b != b) ? fj_nan() : (a < b ? a : b); }
FJ_HOST_DEVICE float fj_fmax(float a, float b) { return (a != a || b != b) ? fj_nan() : (a > b ? a : b); }
FJ_HOST_DEVICE float fj_ffloordiv(float a, float b) { return floorf(fj_fdiv(a, b)); }
// torch.remainder: a - floor(a / b) * b (the sign of b).
FJ_HOST_DEVICE float fj_fmod(float a, float b) { return fj_fsub(a, fj_fmul(floorf(fj_fdiv(a, b)), b)); }
FJ_HOST_DEVICE float fj_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Eager forms of & | and where() for the element loops: every operand is computed, so the
// loop does not branch. Safe because every captured-tensor read is in bounds on every path
// (the launch checks each read's index over the whole index box, whatever guards it).
FJ_HOST_DEVICE bool fj_and(bool a, bool b) { return a & b; }
FJ_HOST_DEVICE bool fj_or(bool a, bool b) { return a | b; }
template <class V> FJ_HOST_DEVICE V fj_sel(bool c, V a, V b) { return c ? a : b; }

// Fast forms for score_mod only (emit_value with FloatMath::fast). A score is a float that
// already differs between the GPU and the CPU oracle by the GEMM's rounding, so a few ulp more
// change nothing, while the exact forms cost 10-40 instructions per score. Masks keep the exact
// forms: their comparisons must decide the same on both sides.
//   tanh: the hardware's tanh.approx.f32 (one MUFU operation, as FlashAttention's softcap;
//   relative error about 2^-11), where 1 - 2 / (e^2x + 1) took two and made the softmax's
//   exponentials wait; +-inf and NaN as tanhf.
FJ_HOST_DEVICE float fj_fdiv_fast(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdividef(a, b);
#else
  return a / b;
#endif
}
FJ_HOST_DEVICE float fj_exp_fast(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return expf(x);
#endif
}
FJ_HOST_DEVICE float fj_log_fast(float x) {
#ifdef __CUDA_ARCH__
  return __logf(x);
#else
  return logf(x);
#endif
}
FJ_HOST_DEVICE float fj_tanh_fast(float x) {
#ifdef __CUDA_ARCH__
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return tanhf(x);
#endif
}
FJ_HOST_DEVICE float fj_sigmoid_fast(float x) {
#ifdef __CUDA_ARCH__
  return __fdividef(1.0f, 1.0f + __expf(-x));
#else
  return 1.0f / (1.0f + expf(-x));
#endif
}

// float -> int rounding toward 0, saturating, NaN -> 0 (what cvt.rzi.s32.f32 does).
FJ_HOST_DEVICE int fj_f2i(float x) {
  if (x != x) return 0;
  if (x >= 2147483648.0f) return 2147483647;
  if (x <= -2147483648.0f) return -2147483647 - 1;
  return (int)x;  // C++ conversion truncates toward 0
}
FJ_HOST_DEVICE float fj_i2f(int x) { return (float)x; }

// 16-bit float storage formats -> float (no cuda_fp16.h: NVRTC compiles without includes).
FJ_HOST_DEVICE float fj_bf16_bits_to_float(unsigned short h) { return fj_bits_float((unsigned)h << 16); }
FJ_HOST_DEVICE float fj_f16_bits_to_float(unsigned short h) {
  const unsigned sign = (unsigned)(h & 0x8000u) << 16;
  const unsigned exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1fu) return fj_bits_float(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp != 0) return fj_bits_float(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return fj_bits_float(sign);
  // Subnormal: value = man * 2^-24, exact in float.
  const float v = (float)man * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

}  // namespace flashjit
