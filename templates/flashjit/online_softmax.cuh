// Online softmax (FlashAttention-2), in the log2 domain, on one score tile:
//   m' = max(m, rowmax(S)·c)            c = softmax_scale · log2(e)
//   P  = 2^(S·c − m')                   one FFMA + one EX2 per score
//   l' = l·2^(m − m') + rowsum(P)       this lane's columns only; summed across the
//   O' = O·2^(m − m')                   quad once, in finalize()
// The wgmma path with the P·V GEMM overlapped (pass overlap_pv) calls the two halves
// apart: softmax_rows while the previous tile's P·V runs, rescale_rows after it lands.
// A row that has seen no visible key keeps m = −inf; 0 stands in for it so that no
// (−inf) − (−inf) = NaN appears and its P is exactly 0.
#pragma once

#include "flashjit/fragments.cuh"

namespace flashjit {

// P, m and l of one score tile; alpha = 2^(m - m') per row, the factor O still owes.
template <class T>
__device__ __forceinline__ void softmax_rows(ScoreTile<T>& S, RowVec<T>& m, RowVec<T>& l, RowVec<T>& alpha,
                                             float scale_log2) {
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = neg_inf();
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt) mx = fmaxf(mx, fmaxf(S.s[mt][nt][2 * h], S.s[mt][nt][2 * h + 1]));
      // The four lanes of a quad hold the same row.
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m.v[mt][h], mx * scale_log2);
      const float m_use = m_new == neg_inf() ? 0.f : m_new;
      alpha.v[mt][h] = fast_exp2(m.v[mt][h] - m_use);
      m.v[mt][h] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = fast_exp2(fmaf(S.s[mt][nt][2 * h + e], scale_log2, -m_use));
          S.s[mt][nt][2 * h + e] = p;
          sum += p;
        }
      l.v[mt][h] = l.v[mt][h] * alpha.v[mt][h] + sum;
    }
}

// O' = O·alpha per row.
template <class T>
__device__ __forceinline__ void rescale_rows(OutTile<T>& O, const RowVec<T>& alpha) {
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int nt = 0; nt < T::DV / 8; ++nt) {
        O.o[mt][nt][2 * h] *= alpha.v[mt][h];
        O.o[mt][nt][2 * h + 1] *= alpha.v[mt][h];
      }
}

template <class T>
__device__ __forceinline__ void online_softmax(ScoreTile<T>& S, RowVec<T>& m, RowVec<T>& l, OutTile<T>& O,
                                               float scale_log2) {
  RowVec<T> alpha;
  softmax_rows(S, m, l, alpha, scale_log2);
  rescale_rows(O, alpha);
}

}  // namespace flashjit
