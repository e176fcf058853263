// What the two bwd_dkdv skeletons (bwd_dkdv_sm80.cuh on mma.sync, bwd_dkdv_sm90.cuh on
// wgmma) share: the block's place, loading one q tile, P and dS from Sᵀ and dPᵀ, the dK / dV
// epilogue, and the walk over the q tiles that see the block's keys.
// The variant V (generated) supplies kListed, kScoreMod, kScale, kScaleLog2, band, visible,
// classify, score and dscore (bwd_dkdv_sm80.cuh, top).
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/bwd_params.cuh"
#include "flashjit/cp_async.cuh"
#include "flashjit/dropout.cuh"
#include "flashjit/kv_tiles.cuh"
#include "flashjit/smem_tile.cuh"

namespace flashjit {

// The block's keys, kv head and batch; the warp's place.
struct BwdBlock {
  int k0, k_rows, head_kv, batch;
  int tid, warp, lane;
  int key_w;  // the warp's first key, relative to k0 (its 16 keys for Sᵀ, dK, dV)
  int wq;     // its column in the warp grid (mma.sync; 0 on wgmma)
};

// wq: warps per row of 16 keys (warp w owns keys 16·(w / wq).. and is column w % wq).
__device__ __forceinline__ BwdBlock bwd_block(const FwdParams& p, int block_n, int wq) {
  BwdBlock blk;
  blk.k0 = blockIdx.x * block_n;
  blk.k_rows = p.seqlen_k - blk.k0 < block_n ? p.seqlen_k - blk.k0 : block_n;
  blk.head_kv = blockIdx.y;
  blk.batch = blockIdx.z;
  blk.tid = threadIdx.x;
  blk.warp = blk.tid / 32;
  blk.lane = blk.tid % 32;
  blk.key_w = 16 * (blk.warp / wq);
  blk.wq = blk.warp % wq;
  return blk;
}

// Starts the copies of the block's BN keys of K and V (rows past seqlen_k zeroed) into k_dst
// and v_dst, in the layouts the skeleton's GEMMs read, as one cp.async group: it is waited for
// with the first q tile.
template <int BN, int D, int DV, int THREADS, class KLayout, class VLayout>
__device__ __forceinline__ void bwd_load_kv(const FwdParams& p, const BwdBlock& blk, u32 k_dst, u32 v_dst) {
  const u16* k = static_cast<const u16*>(p.k) + blk.batch * p.k_batch_stride + blk.head_kv * p.k_head_stride +
                 (long long)blk.k0 * p.k_row_stride;
  const u16* v = static_cast<const u16*>(p.v) + blk.batch * p.v_batch_stride + blk.head_kv * p.v_head_stride +
                 (long long)blk.k0 * p.v_row_stride;
  load_tile_async_to<BN, D, THREADS, KLayout>(k_dst, k, p.k_row_stride, blk.k_rows, blk.tid);
  load_tile_async_to<BN, DV, THREADS, VLayout>(v_dst, v, p.v_row_stride, blk.k_rows, blk.tid);
  cp_async_commit();
}

// Starts the copies of q tile t of head hq into the given buffers: Q and dO rows (rows past
// seqlen_q zeroed) in shared-memory layout Layout (smem_tile.cuh), the rows' LSE then D
// (zero past seqlen_q) as 2·BM floats at `rowstat`.
template <int BM, int D, int DV, int THREADS, class QLayout, class OLayout>
__device__ __forceinline__ void bwd_load_q_tile(const BwdParams& bp, u32 q_dst, u32 dout_dst, u32 rowstat,
                                                const BwdBlock& blk, int hq, int t) {
  const FwdParams& p = bp.fwd;
  const int q0 = t * BM;
  const int rows = p.seqlen_q - q0 < BM ? p.seqlen_q - q0 : BM;
  const u16* q = static_cast<const u16*>(p.q) + blk.batch * p.q_batch_stride + hq * p.q_head_stride +
                 (long long)q0 * p.q_row_stride;
  load_tile_async_to<BM, D, THREADS, QLayout>(q_dst, q, p.q_row_stride, rows, blk.tid);
  const u16* dout = static_cast<const u16*>(bp.dout) + blk.batch * bp.dout_batch_stride + hq * bp.dout_head_stride +
                    (long long)q0 * bp.dout_row_stride;
  load_tile_async_to<BM, DV, THREADS, OLayout>(dout_dst, dout, bp.dout_row_stride, rows, blk.tid);
  const float* lse = p.lse + blk.batch * p.lse_batch_stride + hq * p.lse_head_stride + q0;
  const float* delta = bp.delta + ((long long)blk.batch * p.num_heads_q + hq) * p.seqlen_q + q0;
  for (int i = blk.tid; i < 2 * BM; i += THREADS) {
    const int row = i % BM;
    const bool valid = row < rows;
    cp_async_4(rowstat + 4 * i, (i < BM ? lse : delta) + (valid ? row : 0), valid);
  }
}

// grad[i...] += v for a capture gradient (CaptureGradArg), from lanes that may disagree on
// the element: the lanes adding to one address (__match_any_sync) sum their values by
// shuffles and the lowest of them adds once, so a read every lane shares (ALiBi's slopes[h])
// costs one atomic per warp rather than 32. Call with the lanes that add (inside `if`s).
template <class... I>
__device__ __forceinline__ void fj_grad_add(const CaptureGradArg& c, float v, I... i) {
  if (c.data == nullptr) return;  // uniform: no gradient wanted for this capture
  long long off = 0, idx[] = {static_cast<long long>(i)...};
#pragma unroll
  for (int k = 0; k < static_cast<int>(sizeof...(I)); ++k) off += idx[k] * c.strides[k];
  float* const addr = c.data + off;
  const unsigned peers = __match_any_sync(__activemask(), reinterpret_cast<unsigned long long>(addr));
  const int lane = threadIdx.x % 32, leader = __ffs(peers) - 1;
  float sum = 0.f;
  for (unsigned rest = peers; rest != 0; rest &= rest - 1) sum += __shfl_sync(peers, v, __ffs(rest) - 1);
  if (lane == leader) atomicAdd(addr, sum);
}

// P and dS of one element, in place of its S and dP (dS with respect to S·scale): query i,
// key j, the row's LSE l and D d. A row with no visible key has LSE −inf: +inf stands in, so
// its P is exactly 0 (no −inf − −inf). Computed for every element and selected after (no
// branch per element): the clamped indices keep score_mod's reads in bounds, and what it
// gives a hidden pair is dropped.
// V::kCaptureGrads (a `_dcap` bwd_dkdv kernel): the element's dL/d(score_mod's value),
// P·(dP − D), is handed to V::capture_grads, which adds its share to the captured tensors'
// gradients (the score_mod's derivative with respect to each float read).
// V::kDropout: `drop` says whether the element was dropped (its number below
// V::kDropThreshold; dropout.cuh). The forward used P·0 for it, else P / (1 − p): s becomes
// that P·Z (dV's operand) and dP (the gradient of P·Z, dO·Vᵀ) becomes Z·dP before
// dS = P·(dP − D).
template <class V>
__device__ __forceinline__ void bwd_p_ds_at(float& s, float& dp, const BwdParams& bp, const BandI32& band, int batch,
                                            int hq, int i, int j, bool full, float l, float d, bool drop = false) {
  const FwdParams& p = bp.fwd;
  const int ic = i < p.seqlen_q ? i : p.seqlen_q - 1, jc = j < p.seqlen_k ? j : p.seqlen_k - 1;
  const bool vis = full || ((i < p.seqlen_q) & (j < p.seqlen_k) && V::visible(p, band, batch, hq, ic, jc));
  const float lse2 = l == neg_inf() ? __int_as_float(0x7f800000) : l * 1.44269504088896341f;
  float pe, ds, z = 1.f;
  if constexpr (V::kDropout) {
    z = drop ? 0.f : V::kDropScale;
    dp *= z;
  }
  if constexpr (V::kScoreMod) {
    const float x = s * V::kScale;
    pe = fast_exp2(fmaf(V::score(p, x, batch, hq, ic, jc), 1.44269504088896341f, -lse2));
    ds = pe * (dp - d) * V::dscore(p, x, batch, hq, ic, jc);
    if constexpr (V::kCaptureGrads) {
      if (vis) V::capture_grads(bp, pe * (dp - d), x, batch, hq, ic, jc);
    }
  } else {
    pe = fast_exp2(fmaf(s, V::kScaleLog2, -lse2));
    ds = pe * (dp - d);
  }
  if constexpr (V::kDropout) s = vis ? pe * z : 0.f;
  else s = vis ? pe : 0.f;
  dp = vis ? ds : 0.f;
}

// P and dS in place of one warp's Sᵀ and dPᵀ accumulators (16 keys × 8·NQ queries, the
// mma.sync / wgmma per-warp layout of fragments.cuh; bwd_dkdv). q0: the q tile's first
// query; q_w: the warp's first query in the tile; j_w: its first key (absolute). lse_s /
// delta_s: the tile's LSE and D (in shared memory).
template <class V, int NQ>
__device__ __forceinline__ void bwd_p_ds(float (&s)[NQ][4], float (&dp)[NQ][4], const BwdParams& p, const BandI32& band,
                                         int batch, int hq, int q0, int q_w, int j_w, bool full, const float* lse_s,
                                         const float* delta_s, int lane) {
  const int g = lane / 4, tq = lane % 4;
  u32 w[V::kDropout ? NQ / 2 : 1][2];  // [16-query block][its n-tile]: byte 2·(query parity) + (key g + 8m)
  if constexpr (V::kDropout) {
    static_assert(NQ % 2 == 0, "dropout numbers come for blocks of 16 queries");
    dropout_cols<NQ / 2>(w, dropout_key(p.fwd), dropout_bh(p.fwd, batch, hq), q0 + q_w, j_w, lane);
  }
#pragma unroll
  for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = q_w + nt * 8 + 2 * tq + (e & 1);
      bool drop = false;
      if constexpr (V::kDropout) drop = dropped<V::kDropThreshold>(w[nt / 2][nt % 2], 2 * (e & 1) + (e >> 1));
      bwd_p_ds_at<V>(s[nt][e], dp[nt][e], p, band, batch, hq, q0 + col, j_w + g + 8 * (e >> 1), full, lse_s[col],
                     delta_s[col], drop);
    }
}

// The same for one warp's S and dP (16 queries × 8·NK keys; bwd_dq): i_w: the warp's first
// query, k0: the key tile's first key, lse / delta: the LSE and D of the thread's two rows.
template <class V, int NK>
__device__ __forceinline__ void bwd_p_ds_rows(float (&s)[NK][4], float (&dp)[NK][4], const BwdParams& p, const BandI32& band,
                                              int batch, int hq, int i_w, int k0, bool full, const float (&lse)[2],
                                              const float (&delta)[2], int lane) {
  const int g = lane / 4, tq = lane % 4;
  u32 w[V::kDropout ? NK / 2 : 1][2];  // [16-key block][row g + 8h]: byte 2·(8-key half) + key parity
  if constexpr (V::kDropout) {
    static_assert(NK % 2 == 0, "dropout numbers come for 16-key blocks");
    dropout_rows<NK / 2>(w, dropout_key(p.fwd), dropout_bh(p.fwd, batch, hq), i_w, k0, lane);
  }
#pragma unroll
  for (int nt = 0; nt < NK; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      bool drop = false;
      if constexpr (V::kDropout) drop = dropped<V::kDropThreshold>(w[nt / 2][e >> 1], 2 * (nt % 2) + (e & 1));
      bwd_p_ds_at<V>(s[nt][e], dp[nt][e], p, band, batch, hq, i_w + g + 8 * (e >> 1), k0 + nt * 8 + 2 * tq + (e & 1),
                     full, lse[e >> 1], delta[e >> 1], drop);
    }
}

// dq_accum[0..1] += (a, b): one vector reduction on sm_90 (red.global.add.v2.f32), two
// scalar atomics before. Not ordered: dQ is not bit-reproducible run to run.
__device__ __forceinline__ void reduce_add2(float* dst, float a, float b) {
#if __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(dst), "f"(a), "f"(b) : "memory");
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

// Stores a warp's 16 accumulator rows (times `scale`) as 16-bit values: rows >= valid_rows
// are not written. `dst`: the warp's row 0, column 0.
template <class E, int NT>
__device__ __forceinline__ void store_acc_rows(const float (&c)[1][NT][4], u16* dst, long long row_stride, int valid_rows,
                                               float scale, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = g + 8 * h;
    if (row < valid_rows) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        *reinterpret_cast<u32*>(dst + row * row_stride + nt * 8 + 2 * t) =
            pack2<E>(c[0][nt][2 * h] * scale, c[0][nt][2 * h + 1] * scale);
    }
  }
}

// The block's dK (times the softmax scale: dS is with respect to S·scale) and dV, from the
// warp's accumulators of 16 keys × DK_COLS (DV_COLS) columns starting at column `col0`.
template <class E, class V, int DK_COLS, int DV_COLS>
__device__ __forceinline__ void bwd_store_dk_dv(const BwdParams& bp, const BwdBlock& blk, int dk_col0, int dv_col0,
                                                const float (&dk)[1][DK_COLS / 8][4], const float (&dv)[1][DV_COLS / 8][4]) {
  const int rows = blk.k_rows - blk.key_w;  // the warp's keys that exist
  u16* dk_out = static_cast<u16*>(bp.dk) + blk.batch * bp.dk_batch_stride + blk.head_kv * bp.dk_head_stride +
                (long long)(blk.k0 + blk.key_w) * bp.dk_row_stride + dk_col0;
  u16* dv_out = static_cast<u16*>(bp.dv) + blk.batch * bp.dv_batch_stride + blk.head_kv * bp.dv_head_stride +
                (long long)(blk.k0 + blk.key_w) * bp.dv_row_stride + dv_col0;
  store_acc_rows<E, DK_COLS / 8>(dk, dk_out, bp.dk_row_stride, rows, V::kScale, blk.lane);
  store_acc_rows<E, DV_COLS / 8>(dv, dv_out, bp.dv_row_stride, rows, 1.f, blk.lane);
}

// A tile sequence in order (the q tiles of one query head for bwd_dkdv, the key tiles of one
// q tile for bwd_dq), with the next tile's copies in flight while one is computed (STAGES
// 2; one buffer with STAGES 1). load(t, slot) starts tile t's copies,
// compute(t, full, slot) runs it. kAsyncProxy: the tiles are read by wgmma, so each thread
// fences its landed copies into the async proxy before the barrier (wgmma.cuh).
template <int STAGES, bool kAsyncProxy, class Tiles, class Load, class Compute>
__device__ __forceinline__ void bwd_pipelined_tile_loop(const Tiles& tiles, Load&& load, Compute&& compute) {
  const int n = tiles.count();
  __syncthreads();  // every warp is done with the previous sequence's buffers
  if (STAGES == 2) {
    if (n > 0) load(tiles.at(0), 0);
    cp_async_commit();
  }
  for (int r = 0; r < n; ++r) {
    if (STAGES == 1) {
      if (r > 0) __syncthreads();  // the last tile's Q and dS are no longer read
      load(tiles.at(r), 0);
      cp_async_commit();
    }
    cp_async_wait<0>();
    if constexpr (kAsyncProxy) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();  // tile r landed for every thread; tile r - 1's buffers are free
    if (STAGES == 2) {
      if (r + 1 < n) load(tiles.at(r + 1), (r + 1) % 2);
      cp_async_commit();
    }
    compute(tiles.at(r), tiles.is_full_at(r), STAGES == 2 ? r % 2 : 0);
  }
}

// For every query head of the block's kv group, the q tiles that see the block's keys, as a
// tile sequence (kv_tiles.cuh): q_loop(hq, tiles). Band masks give a range in closed form;
// a mask expression is classified per q tile into a list at `list` (kTileListCap at a time).
template <class V, int BM, int BN, int THREADS, class QLoop>
__device__ __forceinline__ void bwd_for_each_q_sequence(const FwdParams& p, const BwdBlock& blk, const Band& band, int* list,
                                                        QLoop&& q_loop) {
  const int n_q_tiles = (p.seqlen_q + BM - 1) / BM;
  for (int hq = blk.head_kv * p.gqa_group; hq < (blk.head_kv + 1) * p.gqa_group; ++hq) {
    if constexpr (V::kListed) {
      for (int chunk = 0; chunk < n_q_tiles; chunk += kTileListCap) {
        const int last = chunk + kTileListCap < n_q_tiles ? chunk + kTileListCap : n_q_tiles;
        const auto classify = [&](int t) {
          const int q0 = t * BM;
          return V::classify(p, blk.batch, hq, q0, p.seqlen_q - q0 < BM ? p.seqlen_q - q0 : BM, blk.k0, blk.k_rows);
        };
        const ListTiles tiles = build_tile_list<THREADS>(list, chunk, last, classify, blk.tid);
        q_loop(hq, tiles);
      }
    } else {
      const BandTiles tiles{band_q_tiles(band, blk.k0, BN, p.seqlen_q, p.seqlen_k, BM)};
      q_loop(hq, tiles);
    }
  }
}

}  // namespace flashjit
