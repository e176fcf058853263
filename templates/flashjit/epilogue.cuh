// The end of a block: normalise O by the softmax sum, store O (16-bit) and the LSE.
#pragma once

#include "flashjit/fragments.cuh"

namespace flashjit {

// Completes l across the quad (each lane summed only its own columns) and divides O by
// it. A fully masked row (l == 0) gets O = 0, not NaN. keep_scale: dropout's 1 / (1 - p).
template <class T>
__device__ __forceinline__ void finalize(OutTile<T>& O, RowVec<T>& l, float keep_scale = 1.f) {
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = l.v[mt][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l.v[mt][h] = sum;
      const float inv = sum > 0.f ? keep_scale / sum : 0.f;
#pragma unroll
      for (int nt = 0; nt < T::DV / 8; ++nt) {
        O.o[mt][nt][2 * h] *= inv;
        O.o[mt][nt][2 * h + 1] *= inv;
      }
    }
}

// Rows >= q_rows (past seqlen_q) are not stored.
template <class T>
__device__ __forceinline__ void store_out(const OutTile<T>& O, u16* o, long long row_stride, int q_rows, int warp,
                                          int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
      if (row < q_rows) {
        u16* dst = o + row * row_stride + 2 * t;
#pragma unroll
        for (int nt = 0; nt < T::DV / 8; ++nt)
          *reinterpret_cast<u32*>(dst + nt * 8) = pack2<typename T::Elem>(O.o[mt][nt][2 * h], O.o[mt][nt][2 * h + 1]);
      }
    }
}

// LSE in natural log: ln(sum_j e^(scale·s_j)) = (m + log2 l)·ln 2 with m in the log2
// domain; −inf for a fully masked row. `l` must be finalized (quad-complete).
template <class T>
__device__ __forceinline__ void store_lse(const RowVec<T>& m, const RowVec<T>& l, float* lse, int q_rows, int warp,
                                          int lane) {
  const int g = lane / 4, t = lane % 4;
  if (t != 0) return;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
      if (row < q_rows)
        lse[row] = l.v[mt][h] > 0.f ? (m.v[mt][h] + __log2f(l.v[mt][h])) * 0.69314718055994531f : neg_inf();
    }
}

}  // namespace flashjit
