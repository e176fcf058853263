// Where a block sits in the problem: its q tile, head and batch. Grid: x = q tile,
// y = head_q, z = batch. Only small integers are kept: the 64-bit tensor addresses are
// recomputed where they are used from the launch parameters (constant memory), so they
// do not occupy registers across the KV loop, where the O accumulator needs them.
#pragma once

#include "flashjit/fwd_params.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

struct BlockContext {
  int q0;      // first query row of the tile
  int q_rows;  // rows of the tile that exist (< BM only in the last tile)
  int head, head_kv, batch;
  int tid, warp, lane;
};

// reverse_tiles: launch order longest-first, so causal blocks with the most KV tiles
// start first and the tail of the grid is made of short blocks.
template <int BM>
__device__ __forceinline__ BlockContext block_context(const FwdParams& p, bool reverse_tiles) {
  BlockContext b;
  const int tiles = (p.seqlen_q + BM - 1) / BM;
  const int tile = reverse_tiles ? tiles - 1 - (int)blockIdx.x : (int)blockIdx.x;
  b.q0 = tile * BM;
  b.q_rows = p.seqlen_q - b.q0 < BM ? p.seqlen_q - b.q0 : BM;
  b.head = blockIdx.y;
  b.batch = blockIdx.z;
  b.head_kv = b.head / p.gqa_group;
  b.tid = threadIdx.x;
  b.warp = threadIdx.x / 32;
  b.lane = threadIdx.x % 32;
  return b;
}

// Persistent kernels (tile.persistent): a block walks work items w = blockIdx.x,
// blockIdx.x + gridDim.x, ... of the (q tile, head, batch) space, the q tile outermost, so
// with reverse_tiles every block takes the longest rows first (causal load balance).
template <int BM>
__device__ __forceinline__ long long work_count(const FwdParams& p) {
  return (long long)((p.seqlen_q + BM - 1) / BM) * p.num_heads_q * p.batch;
}
template <int BM>
__device__ __forceinline__ BlockContext block_context_at(const FwdParams& p, long long work, bool reverse_tiles) {
  BlockContext b;
  const int tiles = (p.seqlen_q + BM - 1) / BM;
  const long long per_tile = (long long)p.num_heads_q * p.batch;
  const int t = (int)(work / per_tile), rest = (int)(work % per_tile);
  const int tile = reverse_tiles ? tiles - 1 - t : t;
  b.q0 = tile * BM;
  b.q_rows = p.seqlen_q - b.q0 < BM ? p.seqlen_q - b.q0 : BM;
  b.head = rest % p.num_heads_q;
  b.batch = rest / p.num_heads_q;
  b.head_kv = b.head / p.gqa_group;
  b.tid = threadIdx.x;
  b.warp = threadIdx.x / 32;
  b.lane = threadIdx.x % 32;
  return b;
}

// Row q0 of this block's (batch, head) in Q / O, row 0 of the LSE slice (null if none).
__device__ __forceinline__ const u16* q_rows_ptr(const FwdParams& p, const BlockContext& b) {
  return static_cast<const u16*>(p.q) + b.batch * p.q_batch_stride + b.head * p.q_head_stride + b.q0 * p.q_row_stride;
}
__device__ __forceinline__ u16* o_rows_ptr(const FwdParams& p, const BlockContext& b) {
  return static_cast<u16*>(p.o) + b.batch * p.o_batch_stride + b.head * p.o_head_stride + b.q0 * p.o_row_stride;
}
__device__ __forceinline__ float* lse_rows_ptr(const FwdParams& p, const BlockContext& b) {
  return p.lse + b.batch * p.lse_batch_stride + b.head * p.lse_head_stride + b.q0;
}
// First row of KV tile `tile` (tile * rows_per_tile) of this block's (batch, head_kv).
__device__ __forceinline__ const u16* k_tile_ptr(const FwdParams& p, const BlockContext& b, int tile, int rows_per_tile) {
  return static_cast<const u16*>(p.k) + b.batch * p.k_batch_stride + b.head_kv * p.k_head_stride +
         (long long)tile * rows_per_tile * p.k_row_stride;
}
__device__ __forceinline__ const u16* v_tile_ptr(const FwdParams& p, const BlockContext& b, int tile, int rows_per_tile) {
  return static_cast<const u16*>(p.v) + b.batch * p.v_batch_stride + b.head_kv * p.v_head_stride +
         (long long)tile * rows_per_tile * p.v_row_stride;
}

}  // namespace flashjit
