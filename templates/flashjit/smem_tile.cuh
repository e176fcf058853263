// Shared-memory tiles: row-major, padded rows (see FwdTraits::PITCH_*), filled from global
// memory with cp.async by the whole block, 16 bytes (8 elements) per thread per step.
#pragma once

#include "flashjit/cp_async.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

// Returns x unchanged, but the compiler can no longer see where it came from. Applied to
// the copy's base address and stride inside the KV loop, it stops loop-invariant code
// motion from hoisting every chunk's 64-bit address out of the loop: those addresses
// cost ~50 registers for the whole loop (measured: d64 kernel, 242 -> 190 registers
// without the in-loop prefetch) while recomputing them costs a few IMADs per tile.
__device__ __forceinline__ unsigned long long opaque(unsigned long long x) {
  asm volatile("mov.b64 %0, %0;" : "+l"(x));
  return x;
}
__device__ __forceinline__ u32 opaque(u32 x) {
  asm volatile("mov.b32 %0, %0;" : "+r"(x));
  return x;
}

// Starts copying rows [0, valid_rows) of a ROWS x COLS tile at `src` (row stride in
// elements) into shared memory at `dst`; rows >= valid_rows become zeros. Layout maps
// (rows, row, col) to the byte offset of the 16-byte chunk starting at element `col`.
template <int ROWS, int COLS, int THREADS, class Layout>
__device__ __forceinline__ void load_tile_async_to(u32 dst, const u16* src, long long row_stride, int valid_rows,
                                                   int tid) {
  constexpr int CHUNKS_PER_ROW = COLS / 8;
  constexpr int CHUNKS = ROWS * CHUNKS_PER_ROW;
  src = reinterpret_cast<const u16*>(opaque(reinterpret_cast<unsigned long long>(src)));
  row_stride = static_cast<long long>(opaque(static_cast<unsigned long long>(row_stride)));
  dst = opaque(dst);
#pragma unroll
  for (int i = 0; i < (CHUNKS + THREADS - 1) / THREADS; ++i) {
    const int c = tid + i * THREADS;
    if (CHUNKS % THREADS == 0 || c < CHUNKS) {
      const int row = c / CHUNKS_PER_ROW;
      const int col = (c % CHUNKS_PER_ROW) * 8;
      const bool valid = row < valid_rows;
      // An invalid row still needs a mapped address; src-size 0 means nothing is read.
      const u16* g = valid ? src + row * row_stride + col : src;
      cp_async_16(dst + Layout::offset(ROWS, row, col), g, valid);
    }
  }
}

// Row-major with rows padded by 8 elements (the mma.sync path; see FwdTraits::PITCH_*).
template <int COLS>
struct PaddedRows {
  static __device__ __forceinline__ u32 offset(int /*rows*/, int row, int col) { return (row * (COLS + 8) + col) * 2; }
};

template <int ROWS, int COLS, int THREADS>
__device__ __forceinline__ void load_tile_async(u32 dst, const u16* src, long long row_stride, int valid_rows,
                                                int tid) {
  load_tile_async_to<ROWS, COLS, THREADS, PaddedRows<COLS>>(dst, src, row_stride, valid_rows, tid);
}

}  // namespace flashjit
