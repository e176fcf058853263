// Dropout in the kernels: the 8-bit numbers of philox.cuh for the elements a lane holds in
// an mma fragment, one Philox call per 16 elements. A dropout group (one 16 × 16 block) is
// held by a lane and its neighbour lane ^ 4 (fragment row g ^ 1) in both layouts: of two
// neighbouring blocks each lane draws one and hands the other the half it needs (two
// shuffles); a block without a neighbour is drawn by both.
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

// Whether byte `byte` of word w is below kThreshold (dropped), with one shift at most:
// byte b < T iff w · 2^(8(3 − b)) < T · 2^24 (unsigned, T < 2^8). byte: a constant after
// unrolling.
template <u32 kThreshold>
__device__ __forceinline__ bool dropped(u32 w, int byte) {
  return (w << (8 * (3 - byte))) < (kThreshold << 24);
}

// Rows layout. w[h] of a block: the numbers of (row rb + g + 8h, column j16 + 8m + 2t + e)
// in byte 2m + e (the group's word 2ρ + h, ρ = g & 1). rb, j16: multiples of 16.
// Two blocks (j16, j16 + 16): the even lane draws the first, the odd one the second.
__device__ __forceinline__ void dropout_rows32(u32 (&w)[2][2], const DropoutKey& key, u32 bh, int rb, int j16,
                                               int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bool odd = g & 1;
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(rb + g), (u32)(j16 + (odd ? 16 : 0) + 2 * t));
  const u32 mine0 = odd ? r.z : r.x, mine1 = odd ? r.w : r.y;
  const u32 got0 = __shfl_xor_sync(0xffffffffu, odd ? r.x : r.z, 4);
  const u32 got1 = __shfl_xor_sync(0xffffffffu, odd ? r.y : r.w, 4);
  w[0][0] = odd ? got0 : mine0;
  w[0][1] = odd ? got1 : mine1;
  w[1][0] = odd ? mine0 : got0;
  w[1][1] = odd ? mine1 : got1;
}

// One block, drawn by both lanes of the pair.
__device__ __forceinline__ void dropout_rows16(u32 (&w)[2], const DropoutKey& key, u32 bh, int rb, int j16, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(rb + g), (u32)(j16 + 2 * t));
  w[0] = g & 1 ? r.z : r.x;
  w[1] = g & 1 ? r.w : r.y;
}

// NB blocks of 16 columns from j0: w[b] for columns j0 + 16b.
template <int NB>
__device__ __forceinline__ void dropout_rows(u32 (&w)[NB][2], const DropoutKey& key, u32 bh, int rb, int j0, int lane) {
#pragma unroll
  for (int b = 0; b + 1 < NB; b += 2) {
    u32 pair[2][2];
    dropout_rows32(pair, key, bh, rb, j0 + 16 * b, lane);
    w[b][0] = pair[0][0], w[b][1] = pair[0][1], w[b + 1][0] = pair[1][0], w[b + 1][1] = pair[1][1];
  }
  if constexpr (NB % 2 == 1) dropout_rows16(w[NB - 1], key, bh, rb, j0 + 16 * (NB - 1), lane);
}

// Cols layout. w[n] of a block: the numbers of (query q16 + 8n + 2t + ρ, key kb + g + 8m)
// in byte 2ρ + m. The group's words are (ρ, n) = x (0, 0), y (0, 1), z (1, 0), w (1, 1),
// with the key's parity ε = g & 1 and m in byte 2m + ε: one byte permute per n gathers this
// lane's (bytes ε, 2 + ε of words n and 2 + n) and another the neighbour's.
__device__ __forceinline__ void dropout_cols_words(u32 (&mine)[2], u32 (&give)[2], const philox::U32x4& r, bool eps) {
  const u32 sel_mine = eps ? 0x7531u : 0x6420u, sel_give = eps ? 0x6420u : 0x7531u;
  mine[0] = __byte_perm(r.x, r.z, sel_mine), mine[1] = __byte_perm(r.y, r.w, sel_mine);
  give[0] = __byte_perm(r.x, r.z, sel_give), give[1] = __byte_perm(r.y, r.w, sel_give);
}

// Two blocks of 16 queries (q16, q16 + 16): the even-key lane draws the first. kb: a
// multiple of 16; q16: a multiple of 16.
__device__ __forceinline__ void dropout_cols32(u32 (&w)[2][2], const DropoutKey& key, u32 bh, int q16, int kb,
                                               int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bool eps = g & 1;
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(q16 + (eps ? 16 : 0) + 2 * t), (u32)(kb + g));
  u32 mine[2], give[2];
  dropout_cols_words(mine, give, r, eps);
  const u32 got0 = __shfl_xor_sync(0xffffffffu, give[0], 4), got1 = __shfl_xor_sync(0xffffffffu, give[1], 4);
  w[0][0] = eps ? got0 : mine[0];
  w[0][1] = eps ? got1 : mine[1];
  w[1][0] = eps ? mine[0] : got0;
  w[1][1] = eps ? mine[1] : got1;
}

__device__ __forceinline__ void dropout_cols16(u32 (&w)[2], const DropoutKey& key, u32 bh, int q16, int kb, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(q16 + 2 * t), (u32)(kb + g));
  u32 give[2];
  dropout_cols_words(w, give, r, g & 1);
}

// NB blocks of 16 queries from q0: w[b] for queries q0 + 16b.
template <int NB>
__device__ __forceinline__ void dropout_cols(u32 (&w)[NB][2], const DropoutKey& key, u32 bh, int q0, int kb, int lane) {
#pragma unroll
  for (int b = 0; b + 1 < NB; b += 2) {
    u32 pair[2][2];
    dropout_cols32(pair, key, bh, q0 + 16 * b, kb, lane);
    w[b][0] = pair[0][0], w[b][1] = pair[0][1], w[b + 1][0] = pair[1][0], w[b + 1][1] = pair[1][1];
  }
  if constexpr (NB % 2 == 1) dropout_cols16(w[NB - 1], key, bh, q0 + 16 * (NB - 1), kb, lane);
}

// The forward's dropout on P (the score tile after the softmax, which summed it whole into
// l): elements whose number is below kThreshold become 0. The kept ones are scaled by
// 1 / (1 - p) in the finalize, once per output element instead of once per score.
template <class T, u32 kThreshold>
__device__ __forceinline__ void apply_dropout(ScoreTile<T>& S, const DropoutKey& key, u32 bh, int q0, int kv_tile,
                                              int warp, int lane) {
  static_assert(T::BN % 16 == 0, "dropout groups are 16 keys wide");
  constexpr int NB = T::BN / 16;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt) {
    u32 w[NB][2];
    dropout_rows<NB>(w, key, bh, q0 + warp * T::ROWS_PER_WARP + mt * 16, kv_tile * T::BN, lane);
#pragma unroll
    for (int b = 0; b < NB; ++b)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = S.s[mt][2 * b + m][2 * h + e];
            x = dropped<kThreshold>(w[b][h], 2 * m + e) ? 0.f : x;
          }
  }
}

}  // namespace flashjit
