// Elementwise band mask on a score tile: invisible scores become -inf. Runs only on
// partial tiles (the classify_tiles pass); full tiles skip it entirely.
//
// Per query row the visible keys are one interval [first, last]; it is computed once per
// row (64-bit, then clamped), so each score costs two 32-bit compares.
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/fragments.cuh"

namespace flashjit {

template <class T>
__device__ __forceinline__ void apply_band_mask(ScoreTile<T>& S, const Band& band, int q0, int kv_tile, int seqlen_k,
                                                int warp, int lane) {
  const int g = lane / 4, t = lane % 4;
  const int col0 = kv_tile * T::BN + 2 * t;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const long long i = q0 + warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
      long long first = 0, last = seqlen_k - 1;
      if (band.has_lo) first = fj_max(first, i + band.offset + band.lo);
      if (band.has_hi) last = fj_min(last, i + band.offset + band.hi);
      // Clamp into int range; an empty interval stays empty (first > last).
      const int lo = (int)fj_min(fj_max(first, -1), 0x3fffffff);
      const int hi = (int)fj_max(fj_min(last, 0x3fffffff), -2);
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = col0 + nt * 8 + e;
          if (j < lo || j > hi) S.s[mt][nt][2 * h + e] = neg_inf();
        }
    }
}

}  // namespace flashjit
