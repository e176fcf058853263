// Shared-memory tiles: row-major, padded rows (see FwdTraits::PITCH_*), filled from global
// memory with cp.async by the whole block, 16 bytes (8 elements) per thread per step.
#pragma once

#include "flashjit/cp_async.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

// Starts copying rows [0, valid_rows) of a ROWS x COLS tile at `src` (row stride in
// elements) into shared memory at `dst`; rows >= valid_rows become zeros.
template <int ROWS, int COLS, int THREADS>
__device__ __forceinline__ void load_tile_async(u32 dst, const u16* src, long long row_stride, int valid_rows,
                                                int tid) {
  constexpr int CHUNKS_PER_ROW = COLS / 8;
  constexpr int CHUNKS = ROWS * CHUNKS_PER_ROW;
  constexpr int PITCH = COLS + 8;
#pragma unroll
  for (int i = 0; i < (CHUNKS + THREADS - 1) / THREADS; ++i) {
    const int c = tid + i * THREADS;
    if (CHUNKS % THREADS == 0 || c < CHUNKS) {
      const int row = c / CHUNKS_PER_ROW;
      const int col = (c % CHUNKS_PER_ROW) * 8;
      const bool valid = row < valid_rows;
      // An invalid row still needs a mapped address; src-size 0 means nothing is read.
      const u16* g = valid ? src + row * row_stride + col : src;
      cp_async_16(dst + (row * PITCH + col) * 2, g, valid);
    }
  }
}

}  // namespace flashjit
