// Per-warp register tiles of the forward kernel, in mma.sync's accumulator layout:
// [m tile][n tile of 8 columns][4], lane (g, t) holding rows g, g+8 and columns 2t, 2t+1.
#pragma once

#include "flashjit/types.cuh"

namespace flashjit {

// Scores S = Q·Kᵀ of one KV tile (then P = softmax numerators, in place).
template <class T>
struct ScoreTile {
  float s[T::MT][T::BN / 8][4];
};

// The output accumulator O (fp32, rescaled as the softmax max moves).
template <class T>
struct OutTile {
  float o[T::MT][T::DV / 8][4];
  __device__ __forceinline__ void fill(float x) {
#pragma unroll
    for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < T::DV / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[mt][nt][e] = x;
  }
};

// One value per query row the lane holds: [m tile][row g or g+8].
template <class T>
struct RowVec {
  float v[T::MT][2];
  __device__ __forceinline__ void fill(float x) {
#pragma unroll
    for (int mt = 0; mt < T::MT; ++mt) v[mt][0] = v[mt][1] = x;
  }
};

}  // namespace flashjit
