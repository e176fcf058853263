// Dropout in the kernels: the 8-bit numbers of philox.cuh for the elements a lane holds in
// an mma fragment, one Philox call per 16 elements. A dropout group (one 16 × 16 block) is
// held by a lane and its neighbour lane ^ 4 (fragment row g ^ 1) in both layouts: of two
// neighbouring blocks each lane draws one and hands the other the half it needs (two
// shuffles); a block without a neighbour is drawn by both. The forward masks P after packing
// it for P·V, four elements per SWAR compare (dropout_keep_tile, drop_packed_tile); the
// backward tests each element (dropped).
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

// The words ρ' = 0 (x, y) or 1 (z, w) of a group: ρ' is the row parity flipped in odd 16-key
// blocks (philox.cuh's dropout_slot), so `odd_words` = (row ^ key block) & 1.
__device__ __forceinline__ void dropout_row_words(u32 (&w)[2], const philox::U32x4& r, bool odd_words) {
  w[0] = odd_words ? r.z : r.x;
  w[1] = odd_words ? r.w : r.y;
}

// Rows layout. w[h] of a block: the numbers of (row rb + g + 8h, column j16 + 8m + 2t + e)
// in byte 2m + e. rb, j16: multiples of 16.
// Two blocks (j16, j16 + 16): the even lane draws the first, the odd one the second. Both
// keep the words of ρ' = the first block's parity (even rows in an even block, odd rows in
// the odd block after it) and hand over the others: with j16 a multiple of 32 (known at
// compile time) no lane selects.
__device__ __forceinline__ void dropout_rows32_words(u32 (&mine)[2], u32 (&got)[2], const DropoutKey& key, u32 bh,
                                                     int rb, int j16, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bool odd = g & 1, first_odd = (j16 >> 4) & 1;
  const philox::U32x4 r = dropout_group_bits(key, bh, (u32)(rb + g), (u32)(j16 + (odd ? 16 : 0) + 2 * t));
  u32 give[2];
  dropout_row_words(mine, r, first_odd);
  dropout_row_words(give, r, !first_odd);
  got[0] = __shfl_xor_sync(0xffffffffu, give[0], 4);
  got[1] = __shfl_xor_sync(0xffffffffu, give[1], 4);
}

// One block, drawn by both lanes of the pair.
__device__ __forceinline__ void dropout_rows16(u32 (&w)[2], const DropoutKey& key, u32 bh, int rb, int j16, int lane) {
  const int g = lane >> 2, t = lane & 3;
  dropout_row_words(w, dropout_group_bits(key, bh, (u32)(rb + g), (u32)(j16 + 2 * t)), ((g ^ (j16 >> 4)) & 1) != 0);
}

// NB blocks of 16 columns from j0: w[b] for columns j0 + 16b.
template <int NB>
__device__ __forceinline__ void dropout_rows(u32 (&w)[NB][2], const DropoutKey& key, u32 bh, int rb, int j0, int lane) {
  const bool odd = (lane >> 2) & 1;
#pragma unroll
  for (int b = 0; b + 1 < NB; b += 2) {
    u32 mine[2], got[2];
    dropout_rows32_words(mine, got, key, bh, rb, j0 + 16 * b, lane);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      w[b][h] = odd ? got[h] : mine[h];
      w[b + 1][h] = odd ? mine[h] : got[h];
    }
  }
  if constexpr (NB % 2 == 1) dropout_rows16(w[NB - 1], key, bh, rb, j0 + 16 * (NB - 1), lane);
}

// Cols layout. w[n] of a block: the numbers of (query q16 + 8n + 2t + ρ, key kb + g + 8m)
// in byte 2ρ + m. The group's words are (ρ', n) = x (0, 0), y (0, 1), z (1, 0), w (1, 1)
// with ρ' = ρ ^ (the key block's parity), and m in byte 2m + ε (ε = g & 1, the key's
// parity): one byte permute per n gathers this lane's bytes ε, 2 + ε of words n and 2 + n
// (in ρ order) and another the neighbour's.
__device__ __forceinline__ void dropout_cols_words(u32 (&mine)[2], u32 (&give)[2], const philox::U32x4& r, bool eps,
                                                   bool odd_block) {
  // Bytes (x.ε, x.2+ε, z.ε, z.2+ε) for an even key block; z's before x's for an odd one.
  const u32 even_sel = eps ? 0x7531u : 0x6420u, odd_sel = eps ? 0x6420u : 0x7531u;
  const u32 sel_mine = odd_block ? ((even_sel >> 8) | (even_sel << 8)) & 0xFFFFu : even_sel;
  const u32 sel_give = odd_block ? ((odd_sel >> 8) | (odd_sel << 8)) & 0xFFFFu : odd_sel;
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
  dropout_cols_words(mine, give, r, eps, (kb >> 4) & 1);
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
  dropout_cols_words(w, give, r, g & 1, (kb >> 4) & 1);
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

// ---- The forward: keep flags, then P packed for P·V masked with them ----------------------
// Keep flags of a tile (dropout_kept_bytes: bit 7 of each byte), per 16-row slice mt and
// 16-column block b from the tile's first key (a multiple of 32 when BN is):
//   a block pair (b, b + 1): f[b][h] from this lane's draw, f[b + 1][h] from the neighbour's
//   (the words dropout_rows32_words keeps and gets, of rows g + 8h);
//   a last unpaired block: f[b][h] its own words.
// Drawn right after the softmax, so that the wgmma path hides it behind the previous P·V.
template <class T, u32 kThreshold>
__device__ __forceinline__ void dropout_keep_tile(u32 (&f)[T::MT][T::BN / 16][2], const DropoutKey& key, u32 bh,
                                                  int q0, int kv_tile, int warp, int lane) {
  static_assert(T::BN % 16 == 0, "dropout groups are 16 keys wide");
  constexpr int NB = T::BN / 16;
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt) {
    const int rb = q0 + warp * T::ROWS_PER_WARP + mt * 16, j0 = kv_tile * T::BN;
#pragma unroll
    for (int b = 0; b + 1 < NB; b += 2) {
      u32 mine[2], got[2];
      dropout_rows32_words(mine, got, key, bh, rb, j0 + 16 * b, lane);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        f[mt][b][h] = dropout_kept_bytes(mine[h], kThreshold);
        f[mt][b + 1][h] = dropout_kept_bytes(got[h], kThreshold);
      }
    }
    if constexpr (NB % 2 == 1) {
      u32 w[2];
      dropout_rows16(w, key, bh, rb, j0 + 16 * (NB - 1), lane);
      f[mt][NB - 1][0] = dropout_kept_bytes(w[0], kThreshold);
      f[mt][NB - 1][1] = dropout_kept_bytes(w[1], kThreshold);
    }
  }
}

// Byte k's bit 7 replicated over bytes 0-1 and byte k + 1's over bytes 2-3 of the result,
// bytes 0-3 from a, 4-7 from b: prmt's sign-replicate mode (bit 3 of a selector nibble),
// which __byte_perm does not expose.
__device__ __forceinline__ u32 prmt_sign(u32 a, u32 b, u32 sel) {
  u32 d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// P packed in the A-fragment layout, one 16-row slice (a[b][2m + h]: rows g + 8h, keys
// 16b + 8m + 2t + e in half e), with the dropped elements zeroed: per packed pair one permute
// builds the 0x0000 / 0xFFFF mask from the keep flags (bytes 2m, 2m + 1 of the word) and one
// AND applies it. In a pair of blocks this lane's own flags are block b's for the even lane
// and block b + 1's for the odd one: the permute's selector picks bytes 0-3 or 4-7.
template <int NB>
__device__ __forceinline__ void drop_packed(u32 (&a)[NB][4], const u32 (&f)[NB][2], int lane) {
  const u32 other = (lane >> 2) & 1 ? 0x4444u : 0u;  // odd lane: the other four bytes
#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const bool paired = (b | 1) < NB;
        const u32 k = (paired ? 4u * (b & 1) : 0u) + 2u * m;  // byte of half 0 (even lane)
        const u32 sel = (8u + k) * 0x0011u + (9u + k) * 0x1100u;
        a[b][2 * m + h] &= paired ? prmt_sign(f[b & ~1][h], f[b | 1][h], sel ^ other) : prmt_sign(f[b][h], 0u, sel);
      }
}

}  // namespace flashjit
