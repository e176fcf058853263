// Element-wise hooks on a score tile: the generated kernel's score_mod and mask expressions
// run here, once per score, with the element's query row and key column.
#pragma once

#include "flashjit/fragments.cuh"

namespace flashjit {

// Calls f(score, q_idx, kv_idx) for every score this lane holds (the accumulator layout of
// fragments.cuh: lane (g, t) holds rows g, g + 8 and columns 2t, 2t + 1 of each 16x8 tile).
template <class T, class F>
__device__ __forceinline__ void for_each_score(ScoreTile<T>& S, int q0, int kv_tile, int warp, int lane, F&& f) {
  const int g = lane / 4, t = lane % 4;
  const int col0 = kv_tile * T::BN + 2 * t;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int i = q0 + warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          f(S.s[mt][nt][2 * h + e], i, col0 + nt * 8 + e);
          // Keeps the compiler from hoisting every element's reads of captured tensors to
          // the top (dozens of loads in flight, each holding a register beside S and O).
          asm volatile("" ::: "memory");
        }
    }
}

}  // namespace flashjit
