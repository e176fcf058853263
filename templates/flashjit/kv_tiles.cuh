// The KV loop's tiles as a sequence the generated loops index by iteration r: the r-th tile
// and whether it is full, so one loop body serves every way of choosing tiles:
//   BandTiles        - a contiguous range from the closed-form band (band_mask.cuh);
//   ListTiles        - the non-empty tiles of a mask expression, classified by interval
//                      analysis (interval.cuh) into a shared-memory list: empty tiles
//                      are never loaded.
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/interval.cuh"

namespace flashjit {

struct BandTiles {
  KvTileRange r;
  __device__ __forceinline__ int count() const { return r.end - r.begin; }
  __device__ __forceinline__ bool is_full(int t) const { return tile_is_full(r, t); }
  // The same in ListTiles' terms: the r-th tile of the sequence.
  __device__ __forceinline__ int at(int i) const { return r.begin + i; }
  __device__ __forceinline__ bool is_full_at(int i) const { return tile_is_full(r, r.begin + i); }
};

// Tiles classified by a mask expression, listed in shared memory: at(r) is the r-th
// non-empty tile, is_full_at(r) whether it needs no mask. Entries are tile | (full << 31).
struct ListTiles {
  const int* list;
  int n;
  __device__ __forceinline__ int count() const { return n; }
  __device__ __forceinline__ int at(int r) const { return list[r] & 0x7fffffff; }
  __device__ __forceinline__ bool is_full_at(int r) const { return list[r] < 0; }
};

// Candidate tiles are classified kTileListCap at a time, before the pipelined loop runs
// over them, so no interval arithmetic competes with the accumulators for registers inside
// the loop. The list area holds kTileListCap entries plus 32 ints of scratch.
constexpr int kTileListCap = 256;
constexpr int kTileListBytes = (kTileListCap + 32) * 4;

// Lists the non-empty tiles of [first, last) (last - first <= kTileListCap) in ascending
// order: every thread classifies tiles base + tid; a ballot and per-warp counts give each
// kept tile its slot. classify(t) -> kTileEmpty / kTilePartial / kTileFull, uniform per t.
// Starts with a barrier, so the previous chunk's list may still be read until then.
// THREADS threads with tid 0 .. THREADS - 1 take part; sync() is their barrier
// (__syncthreads for a whole block, a named barrier for a warp-specialised block's producer).
template <int THREADS, class Classify, class Sync>
__device__ __forceinline__ ListTiles build_tile_list_with(int* list, int first, int last, Classify classify, int tid,
                                                          Sync sync) {
  static_assert(THREADS / 32 <= 31, "the per-warp counts and the count slot share the list's scratch");
  int* const warp_counts = list + kTileListCap;
  const int warp = tid / 32, lane = tid % 32;
  int n = 0;
  sync();
  for (int base = first; base < last; base += THREADS) {
    const int t = base + tid;
    const int c = t < last ? classify(t) : (int)kTileEmpty;
    const unsigned keep = __ballot_sync(0xffffffffu, c != kTileEmpty);
    if (lane == 0) warp_counts[warp] = __popc(keep);
    __syncthreads();
    int offset = n, total = n;
#pragma unroll
    for (int w = 0; w < THREADS / 32; ++w) {
      const int k = warp_counts[w];
      offset += w < warp ? k : 0;
      total += k;
    }
    if (c != kTileEmpty)
      list[offset + __popc(keep & ((1u << lane) - 1u))] = t | (c == kTileFull ? (int)0x80000000u : 0);
    sync();  // the list is complete, and warp_counts free for the next round
    n = total;
  }
  return ListTiles{list, n};
}

template <int THREADS, class Classify>
__device__ __forceinline__ ListTiles build_tile_list(int* list, int first, int last, Classify classify, int tid) {
  return build_tile_list_with<THREADS>(list, first, last, classify, tid, [] { __syncthreads(); });
}

// Where a list's length is kept for readers that did not build it (a warp-specialised
// block's consumers): the last int of the scratch.
constexpr int kTileListCountSlot = kTileListCap + 31;

}  // namespace flashjit
