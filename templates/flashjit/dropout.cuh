// Dropout in the kernels: the 16-bit numbers of philox.cuh for the elements a lane holds in
// an mma fragment, one Philox call per 8 elements. A dropout group (2 query rows × 8 keys) is
// split between a lane and its neighbour lane ^ 4 (fragment row g ^ 1) in both layouts: each
// of the two draws one group and hands the other the half it needs (two shuffles).
//   rows layout (forward S, bwd_dq's S): lane rows rb + g + 8h, columns j16 + 8m + 2t + e
//   cols layout (bwd_dkdv's Sᵀ):         lane keys kb + g + 8m, queries q16 + 8n + 2t + ρ
// Call with every lane of the warp (the shuffles).
#pragma once

#include "flashjit/fragments.cuh"
#include "flashjit/fwd_params.cuh"
#include "flashjit/philox.cuh"

namespace flashjit {

// The call's RNG state: from device memory when the host passed a pointer (CUDA graphs: a
// replay reads the state its capture's generator wrote there), else the launch's values.
__device__ __forceinline__ DropoutKey dropout_key(const FwdParams& p) {
  DropoutKey k;
  if (p.dropout_state != nullptr) {
    k.seed = p.dropout_state[0];
    k.offset = p.dropout_state[1];
  } else {
    k.seed = p.dropout_seed;
    k.offset = p.dropout_offset;
  }
  return k;
}

// The (batch, query head) word of the counter: batch · heads_q + head, in every kernel.
__device__ __forceinline__ u32 dropout_bh(const FwdParams& p, int batch, int head) {
  return (u32)(batch * p.num_heads_q + head);
}

// Whether the number in half `kHigh` of word w is below kThreshold (dropped), with one shift
// at most: hi < T iff w < T·2^16, lo < T iff w·2^16 < T·2^16 (all unsigned, T < 2^16).
template <u32 kThreshold, int kHigh>
__device__ __forceinline__ bool dropped(u32 w) {
  return kHigh ? w < (kThreshold << 16) : (w << 16) < (kThreshold << 16);
}

// Rows layout, one 16-column block: w[h][m] holds the numbers of (row rb + g + 8h, column
// j16 + 8m + 2t + e) in its low (e = 0) and high (e = 1) half. rb and j16: multiples of 16.
__device__ __forceinline__ void dropout_rows16(u32 (&w)[2][2], const DropoutKey& key, u32 bh, int rb, int j16,
                                               int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bool odd = g & 1;
  // This lane draws the group of its row h = odd (rows rb + g + 8·odd and its pair).
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(rb + g + (odd ? 8 : 0)), (u32)(j16 + 2 * t));
  // r.x, r.y: the group's even row (m = 0, 1); r.z, r.w: its odd row.
  const u32 mine0 = odd ? r.z : r.x, mine1 = odd ? r.w : r.y;
  const u32 got0 = __shfl_xor_sync(0xffffffffu, odd ? r.x : r.z, 4);
  const u32 got1 = __shfl_xor_sync(0xffffffffu, odd ? r.y : r.w, 4);
  w[0][0] = odd ? got0 : mine0;
  w[0][1] = odd ? got1 : mine1;
  w[1][0] = odd ? mine0 : got0;
  w[1][1] = odd ? mine1 : got1;
}

// Cols layout, two n-tiles of 8 queries (q8 and q8 + 8): w[n][ρ] holds the numbers of (query
// q8 + 8n + 2t + ρ, key kb + g + 8m) in its low (m = 0) and high (m = 1) half. kb: a
// multiple of 16; q8: even.
__device__ __forceinline__ void dropout_cols16(u32 (&w)[2][2], const DropoutKey& key, u32 bh, int q8, int kb,
                                               int lane) {
  const int g = lane >> 2, t = lane & 3;
  const int eps = g & 1;  // this lane's key parity; it draws n-tile n = eps
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(q8 + 8 * eps + 2 * t), (u32)(kb + g));
  // Words: x (ρ 0, m 0), y (ρ 0, m 1), z (ρ 1, m 0), w (ρ 1, m 1); halves: the key's parity.
  // One byte permute per word pair: the low halves of two words are bytes 1:0 and 5:4 of
  // (x, y), the high halves bytes 3:2 and 7:6.
  const u32 sel_mine = eps ? 0x7632u : 0x5410u, sel_give = eps ? 0x5410u : 0x7632u;
  const u32 mine0 = __byte_perm(r.x, r.y, sel_mine), mine1 = __byte_perm(r.z, r.w, sel_mine);
  const u32 give0 = __byte_perm(r.x, r.y, sel_give), give1 = __byte_perm(r.z, r.w, sel_give);
  const u32 got0 = __shfl_xor_sync(0xffffffffu, give0, 4), got1 = __shfl_xor_sync(0xffffffffu, give1, 4);
  w[0][0] = eps ? got0 : mine0;
  w[0][1] = eps ? got1 : mine1;
  w[1][0] = eps ? mine0 : got0;
  w[1][1] = eps ? mine1 : got1;
}

// The forward's dropout on P (the score tile after the softmax, which summed it whole into
// l): elements whose number is below kThreshold become 0. The kept ones are scaled by
// 1 / (1 - p) in the finalize, once per output element instead of once per score.
template <class T, u32 kThreshold>
__device__ __forceinline__ void apply_dropout(ScoreTile<T>& S, const DropoutKey& key, u32 bh, int q0, int kv_tile,
                                              int warp, int lane) {
  static_assert(T::BN % 16 == 0, "dropout groups are 16 keys wide");
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int blk16 = 0; blk16 < T::BN / 16; ++blk16) {
      u32 w[2][2];
      dropout_rows16(w, key, bh, q0 + warp * T::ROWS_PER_WARP + mt * 16, kv_tile * T::BN + 16 * blk16, lane);
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          float* x = &S.s[mt][2 * blk16 + m][2 * h];
          x[0] = dropped<kThreshold, 0>(w[h][m]) ? 0.f : x[0];
          x[1] = dropped<kThreshold, 1>(w[h][m]) ? 0.f : x[1];
        }
    }
}

}  // namespace flashjit
