// Element-wise hooks on a score tile: the generated kernel's score_mod and mask expressions
// run here, once per score, with the element's query row and key column.
#pragma once

#include "flashjit/expr_ops.cuh"
#include "flashjit/fragments.cuh"

namespace flashjit {

// Visits every score this lane holds (the accumulator layout of fragments.cuh: lane (g, t)
// holds rows g, g + 8 and columns 2t, 2t + 1 of each 16x8 tile), with the expression factored
// (compiler/expr/factor.cpp): row(q_idx) runs once per row this lane holds, col(kv_idx) once
// per column, and f(score, q_idx, kv_idx, in_range, r, c) per score with that row's and
// column's values. Indices are clamped into the real
// rows and keys, so every read stays in bounds; `in_range` says whether the score is real
// (padding rows are never stored, and keys past seqlen_k are masked). The hoisted reads are
// independent loads issued together; a score's own work is register operations.
// `fence`: the element still reads memory (a read indexed by both q_idx and kv_idx); a compiler
// fence every 8 scores keeps the compiler from hoisting every such load to the top, where
// dozens in flight would each hold a register beside S and O (8 in flight at a time).
template <class T, bool fence, class RowF, class ColF, class F>
__device__ __forceinline__ void for_each_score_factored(ScoreTile<T>& S, int q0, int kv_tile, int warp, int lane,
                                                        int seqlen_q, int seqlen_k, RowF&& row, ColF&& col, F&& f) {
  using C = decltype(col(0));
  const int g = lane / 4, t = lane % 4;
  const int col0 = kv_tile * T::BN + 2 * t;
  C cols[T::BN / 8][2];
#pragma unroll
  for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) cols[nt][e] = col(fj_imin(col0 + nt * 8 + e, seqlen_k - 1));
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int i = q0 + warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
      const int ic = fj_imin(i, seqlen_q - 1);
      const auto r = row(ic);
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = col0 + nt * 8 + e;
          f(S.s[mt][nt][2 * h + e], ic, fj_imin(j, seqlen_k - 1), (i < seqlen_q) & (j < seqlen_k), r, cols[nt][e]);
          if (fence && nt % 4 == 3 && e == 1) asm volatile("" ::: "memory");
        }
    }
}

}  // namespace flashjit
