// Shared-memory tiles for wgmma (sm_90a): the 128-byte swizzle layout.
//
// A ROWS x COLS tile of 16-bit elements is stored as COLS / 64 slabs of 64 columns
// (128 bytes per row), one after the other (slab s at s * ROWS * 128 bytes). Inside a
// slab, row r starts at r * 128 and its eight 16-byte chunks are permuted: chunk c is
// stored at position c ^ (r % 8). Eight consecutive rows form a 1024-byte atom, which is
// exactly what a wgmma descriptor with swizzle mode 128B reads; the XOR also spreads the
// eight rows of an atom over all 32 banks. Tile bases must be 1024-byte aligned.
#pragma once

#include "flashjit/cp_async.cuh"
#include "flashjit/smem_tile.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

struct Swizzle128 {
  static __device__ __forceinline__ u32 offset(int rows, int row, int col) {
    const int slab = col / 64, chunk = (col % 64) / 8;
    return slab * rows * 128 + row * 128 + ((chunk ^ (row % 8)) * 16);
  }
};

// Starts copying rows [0, valid_rows) of a ROWS x COLS tile at `src` (row stride in
// elements) into the swizzled tile at `dst`; rows >= valid_rows become zeros.
template <int ROWS, int COLS, int THREADS>
__device__ __forceinline__ void load_tile_sw128_async(u32 dst, const u16* src, long long row_stride, int valid_rows,
                                                      int tid) {
  static_assert(COLS % 64 == 0 && ROWS % 8 == 0, "128-byte swizzle tiles are 8-row x 64-column atoms");
  load_tile_async_to<ROWS, COLS, THREADS, Swizzle128>(dst, src, row_stride, valid_rows, tid);
}

}  // namespace flashjit
