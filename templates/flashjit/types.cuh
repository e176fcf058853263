// Element types and small conversions shared by all device templates.
// No system headers: NVRTC compiles these without an include path.
#pragma once

namespace flashjit {

typedef unsigned int u32;
typedef unsigned short u16;
typedef long long i64;

// Element tags: the templates are parametrised by these, never by cuda_bf16.h types.
struct BF16 {};
struct F16 {};

// Packs two floats into one register of two 16-bit values (lo in the low half),
// rounding to nearest even, as the mma A operand and global stores expect.
template <class E> __device__ __forceinline__ u32 pack2(float lo, float hi);
template <> __device__ __forceinline__ u32 pack2<BF16>(float lo, float hi) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <> __device__ __forceinline__ u32 pack2<F16>(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// 2^x on the special-function unit. Softmax runs in the log2 domain so that the
// softmax scale and log2(e) fold into one FFMA per score (FlashAttention-2's trick).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Shared-memory address of a generic pointer, as ldmatrix / cp.async take it.
__device__ __forceinline__ u32 smem_addr(const void* p) {
  u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

}  // namespace flashjit
