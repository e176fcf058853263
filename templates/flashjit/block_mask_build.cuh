// The block-mask builder (flashjit.create_block_mask, flashjit::build_block_mask): the class
// of every (query block, key block) cell of a mask, without forming the dense mask.
//
// One thread per cell classifies it by the mask's range over the cell's index box (interval
// analysis, interval.cuh): empty, full, or undecided. The cells the analysis leaves undecided
// are then decided exactly, element by element, by the whole warp together (one cell at a
// time, stopping as soon as it has seen a visible and a hidden key). So a document mask costs
// one interval evaluation per cell plus an element scan of the cells on its diagonal.
#pragma once

#include "flashjit/block_mask_params.cuh"
#include "flashjit/interval.cuh"

namespace flashjit {

template <int THREADS, class Interval, class Element>
__device__ __forceinline__ void block_mask_cells(const BlockMaskParams& p, Interval interval, Element element) {
  const int qb = (int)(blockIdx.x / p.kb_groups);
  const int kb = (int)(blockIdx.x % p.kb_groups) * THREADS + (int)threadIdx.x;
  const int b = (int)blockIdx.y, h = (int)blockIdx.z;
  const int lane = (int)threadIdx.x % 32;
  const int q_lo = qb * p.block_q;
  const int q_hi = (int)iv_lmin((long long)q_lo + p.block_q, (long long)p.f.seqlen_q) - 1;
  const auto kv_range = [&](int cell, int& lo, int& hi) {
    lo = cell * p.block_kv;
    hi = (int)iv_lmin((long long)lo + p.block_kv, (long long)p.f.seqlen_k) - 1;
  };
  int kv_lo, kv_hi;
  kv_range(kb, kv_lo, kv_hi);
  const bool live = kb < p.nkb && q_lo <= q_hi && kv_lo <= kv_hi;
  int cls = kTileEmpty;
  if (live) {
    const IvBox box{iv_i(b), iv_i(h), IvI{q_lo, q_hi}, IvI{kv_lo, kv_hi}, p.f.seqlen_q, p.f.seqlen_k};
    cls = iv_tile_class(interval(box));
  }
  // Undecided cells of this warp, one after another, all 32 lanes on each.
  unsigned todo = __ballot_sync(0xffffffffu, live && cls == kTilePartial);
  while (todo) {
    const int src = __ffs(todo) - 1;
    todo &= todo - 1;
    int lo, hi;
    kv_range(__shfl_sync(0xffffffffu, kb, src), lo, hi);
    bool seen_true = false, seen_false = false;
    for (int q = q_lo; q <= q_hi; ++q) {
      for (int k0 = lo; k0 <= hi; k0 += 32) {
        const int k = k0 + lane;
        if (k <= hi) (element(b, h, q, k) ? seen_true : seen_false) = true;
      }
      if (__any_sync(0xffffffffu, seen_true) && __any_sync(0xffffffffu, seen_false)) break;
    }
    const bool t = __any_sync(0xffffffffu, seen_true), f = __any_sync(0xffffffffu, seen_false);
    if (lane == src) cls = !t ? kTileEmpty : !f ? kTileFull : kTilePartial;
  }
  if (kb < p.nkb) p.cells[(((long long)b * p.nh + h) * p.nqb + qb) * p.nkb + kb] = cls;
}

}  // namespace flashjit
