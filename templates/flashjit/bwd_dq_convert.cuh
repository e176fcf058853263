// The backward's last kernel: dQ = dq_accum · softmax_scale in the dtype. dq_accum holds
// Σ over key blocks of dS·K (bwd_dkdv_sm80.cuh reduce-adds it; dS is taken with respect to
// the scaled score, so the scale is applied once, here). Memory-bound: each thread converts
// 8 consecutive floats of a row into one 16-byte store.
#pragma once

#include "flashjit/bwd_params.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

struct alignas(16) U32x4 {
  u32 v[4];
};

// ROWS rows per block of THREADS threads; grid (ceil(seqlen_q / ROWS), heads_q, batch).
template <class E, int D, int ROWS, int THREADS>
__device__ __forceinline__ void bwd_dq_convert(const BwdDqConvertParams& p) {
  static_assert(D % 8 == 0, "rows are written as 16-byte chunks");
  constexpr int kChunks = D / 8;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int row0 = blockIdx.x * ROWS;
  const int rows = p.seqlen_q - row0 < ROWS ? p.seqlen_q - row0 : ROWS;
  const float* src = p.dq_accum + (((long long)batch * p.num_heads_q + head) * p.seqlen_q + row0) * D;
  u16* dst = static_cast<u16*>(p.dq) + batch * p.dq_batch_stride + head * p.dq_head_stride +
             (long long)row0 * p.dq_row_stride;
  for (int c = threadIdx.x; c < rows * kChunks; c += THREADS) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const float4 a = *reinterpret_cast<const float4*>(src + r * D + col);
    const float4 b = *reinterpret_cast<const float4*>(src + r * D + col + 4);
    U32x4 out;
    out.v[0] = pack2<E>(a.x * p.scale, a.y * p.scale);
    out.v[1] = pack2<E>(a.z * p.scale, a.w * p.scale);
    out.v[2] = pack2<E>(b.x * p.scale, b.y * p.scale);
    out.v[3] = pack2<E>(b.z * p.scale, b.w * p.scale);
    *reinterpret_cast<U32x4*>(dst + r * p.dq_row_stride + col) = out;
  }
}

}  // namespace flashjit
