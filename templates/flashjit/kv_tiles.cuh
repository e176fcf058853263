// The KV loop's tiles as a sequence: first(), next(t), count(), is_full(t). The loops in
// the generated kernel walk it with cursors (one for compute, one ahead for the copies),
// so one loop body serves every way of choosing tiles:
//   BandTiles        - a contiguous range from the closed-form band (band_mask.cuh);
//   ClassifiedTiles  - every tile, classified by interval analysis of a mask expression
//                      (interval.cuh): empty tiles are stepped over, never loaded.
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/interval.cuh"

namespace flashjit {

struct BandTiles {
  KvTileRange r;
  __device__ __forceinline__ int first() const { return r.begin; }
  __device__ __forceinline__ int next(int t) const { return t + 1; }
  __device__ __forceinline__ int count() const { return r.end - r.begin; }
  __device__ __forceinline__ bool is_full(int t) const { return tile_is_full(r, t); }
};

// Classify(t) returns kTileEmpty / kTilePartial / kTileFull for kv tile t; it is uniform
// across the block (it depends on the block's q tile and t only), so every thread takes the
// same path. Stepping over a run of empty tiles costs one classification each.
template <class Classify>
struct ClassifiedTiles {
  int n_tiles;  // all kv tiles: ceil(seqlen_k / BN)
  Classify classify;
  __device__ __forceinline__ int next_from(int t) const {
    while (t < n_tiles && classify(t) == kTileEmpty) ++t;
    return t;
  }
  __device__ __forceinline__ int first() const { return next_from(0); }
  __device__ __forceinline__ int next(int t) const { return next_from(t + 1); }
  __device__ __forceinline__ int count() const {
    int c = 0;
    for (int t = 0; t < n_tiles; ++t) c += classify(t) != kTileEmpty;
    return c;
  }
  __device__ __forceinline__ bool is_full(int t) const { return classify(t) == kTileFull; }
};

template <class Classify>
__device__ __forceinline__ ClassifiedTiles<Classify> classified_tiles(int n_tiles, Classify c) {
  return ClassifiedTiles<Classify>{n_tiles, c};
}

}  // namespace flashjit
