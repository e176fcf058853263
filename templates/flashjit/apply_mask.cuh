// Elementwise band mask on a score tile: invisible scores become -inf. Runs only on
// partial tiles (the classify_tiles pass); full tiles skip it entirely.
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/fragments.cuh"

namespace flashjit {

template <class T>
__device__ __forceinline__ void apply_band_mask(ScoreTile<T>& S, const Band& band, int q0, int kv_tile, int seqlen_k,
                                                int warp, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const long long i = q0 + warp * T::ROWS_PER_WARP + mt * 16 + g + 8 * h;
#pragma unroll
      for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const long long j = (long long)kv_tile * T::BN + nt * 8 + 2 * t + e;
          if (!band_visible(band, i, j, seqlen_k)) S.s[mt][nt][2 * h + e] = neg_inf();
        }
    }
}

}  // namespace flashjit
