// The bwd_dkdv kernel's skeleton on mma.sync (FlashAttention-2's backward, KV-stationary).
// A block owns BN keys of one (batch, kv head); K and V stay in shared memory, dK and dV in
// fp32 registers, while the block loops over the group's query heads and, per head, over the
// q tiles that see its keys. Per q tile (bwd_traits.cuh for the warp grid):
//   Sᵀ  = K·Qᵀ                    (mma_ABt)   P = exp(score_mod(S·scale) − LSE), masked to 0
//   dPᵀ = V·dOᵀ                   (mma_ABt)   dS = P ∘ (dP − D) ∘ score_mod′   (D: bwd_preprocess)
//   dV += Pᵀ·dO                   (A in registers, or Pᵀ from shared memory when WQ > 1)
//   dK += dSᵀ·Q
//   dQ  = dS·K                    (mma_AtB on dSᵀ in shared memory), reduce-added into the fp32
//                                 dq_accum; bwd_dq_convert scales and converts it
// dS is with respect to S·scale: the softmax scale multiplies dK here and dQ in the convert.
// The generated kernel supplies the variant V (the mask, score_mod and its derivative):
//   kListed, kScoreMod, kScale, kScaleLog2;  band(params) -> Band;
//   visible(params, band, b, h, q_idx, kv_idx);  classify(params, b, h, q0, q_rows, k0, k_rows);
//   score(params, x, b, h, q_idx, kv_idx);  dscore(params, x, b, h, q_idx, kv_idx)  (d score / d x)
#pragma once

#include "flashjit/band_mask.cuh"
#include "flashjit/bwd_params.cuh"
#include "flashjit/bwd_traits.cuh"
#include "flashjit/cp_async.cuh"
#include "flashjit/kv_tiles.cuh"
#include "flashjit/smem_tile.cuh"
#include "flashjit/warp_mma_sm80.cuh"

namespace flashjit {

// The block's keys, kv head and batch; the warp's place in the WK × WQ grid.
struct BwdBlock {
  int k0, k_rows, head_kv, batch;
  int tid, warp, lane;
  int key_w;  // the warp's first key, relative to k0 (its 16 keys for Sᵀ, dK, dV)
  int wq;     // its column in the warp grid
};

// Shared-memory addresses of bwd_traits.cuh's plan, and a generic pointer for plain loads.
template <class T>
struct BwdSmem {
  unsigned char* raw;
  u32 k, v, q, dout, rowstat, ds, pt, list;
  __device__ explicit BwdSmem(unsigned char* base) : raw(base) {
    k = smem_addr(base);
    v = k + T::K_BYTES;
    q = v + T::V_BYTES;
    dout = q + T::STAGES * T::Q_STAGE_BYTES;
    rowstat = dout + T::STAGES * T::DO_STAGE_BYTES;
    ds = rowstat + T::STAGES * T::ROWSTAT_STAGE_BYTES;
    pt = ds + T::DS_BYTES;
    list = pt + T::PT_BYTES;  // tile list (kv_tiles.cuh) of a classified mask, after the plan
  }
  __device__ const float* floats(u32 addr) const { return reinterpret_cast<const float*>(raw + (addr - k)); }
  __device__ int* ints(u32 addr) const { return reinterpret_cast<int*>(raw + (addr - k)); }
};

// Starts the copies of q tile t of head hq: Q and dO rows (rows past seqlen_q zeroed), the
// rows' LSE and D (zero past seqlen_q).
template <class T>
__device__ __forceinline__ void bwd_load_q_tile(const BwdParams& bp, const BwdSmem<T>& sm, const BwdBlock& blk, int hq,
                                                int t, int slot) {
  const FwdParams& p = bp.fwd;
  const int q0 = t * T::BM;
  const int rows = p.seqlen_q - q0 < T::BM ? p.seqlen_q - q0 : T::BM;
  const u16* q = static_cast<const u16*>(p.q) + blk.batch * p.q_batch_stride + hq * p.q_head_stride +
                 (long long)q0 * p.q_row_stride;
  load_tile_async<T::BM, T::D, T::THREADS>(sm.q + slot * T::Q_STAGE_BYTES, q, p.q_row_stride, rows, blk.tid);
  const u16* dout = static_cast<const u16*>(bp.dout) + blk.batch * bp.dout_batch_stride + hq * bp.dout_head_stride +
                    (long long)q0 * bp.dout_row_stride;
  load_tile_async<T::BM, T::DV, T::THREADS>(sm.dout + slot * T::DO_STAGE_BYTES, dout, bp.dout_row_stride, rows, blk.tid);
  const float* lse = p.lse + blk.batch * p.lse_batch_stride + hq * p.lse_head_stride + q0;
  const float* delta = bp.delta + ((long long)blk.batch * p.num_heads_q + hq) * p.seqlen_q + q0;
  for (int i = blk.tid; i < 2 * T::BM; i += T::THREADS) {
    const int row = i % T::BM;
    const bool valid = row < rows;
    cp_async_4(sm.rowstat + slot * T::ROWSTAT_STAGE_BYTES + 4 * i, (i < T::BM ? lse : delta) + (valid ? row : 0), valid);
  }
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

// Writes a warp's 16 × SQ accumulator into a (keys × queries) 16-bit smem tile at its place.
template <class T>
__device__ __forceinline__ void store_keys_by_queries(u32 dst, const float (&c)[1][T::SQ / 8][4], const BwdBlock& blk) {
  const int g = blk.lane / 4, t = blk.lane % 4;
#pragma unroll
  for (int nt = 0; nt < T::SQ / 8; ++nt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = blk.key_w + g + 8 * h, col = blk.wq * T::SQ + nt * 8 + 2 * t;
      const u32 v = pack2<typename T::Elem>(c[0][nt][2 * h], c[0][nt][2 * h + 1]);
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(dst + (row * T::PITCH_S + col) * 2), "r"(v));
    }
}

// One q tile (t) of query head hq, with its Q, dO, LSE and D in `slot`.
template <class T, class V>
__device__ __forceinline__ void bwd_q_tile(const BwdParams& bp, const BwdSmem<T>& sm, const BwdBlock& blk,
                                           const Band& band, int hq, int t, bool full, int slot,
                                           float (&dk)[1][T::DK_COLS / 8][4], float (&dv)[1][T::DV_COLS / 8][4]) {
  using E = typename T::Elem;
  constexpr int NQ = T::SQ / 8;
  const FwdParams& p = bp.fwd;
  const int q0 = t * T::BM;
  const int g = blk.lane / 4, tq = blk.lane % 4;
  const u32 q_s = sm.q + slot * T::Q_STAGE_BYTES, do_s = sm.dout + slot * T::DO_STAGE_BYTES;
  const float* lse_s = sm.floats(sm.rowstat + slot * T::ROWSTAT_STAGE_BYTES);
  const float* delta_s = lse_s + T::BM;
  const int q_w = blk.wq * T::SQ;  // the warp's first query of the tile (Sᵀ, dPᵀ)

  float s[1][NQ][4], dp[1][NQ][4];
  zero_acc(s);
  zero_acc(dp);
  mma_ABt<E, 1, NQ, T::D, T::PITCH_QK, T::PITCH_QK>(s, sm.k + blk.key_w * T::PITCH_QK * 2, q_s + q_w * T::PITCH_QK * 2,
                                                     blk.lane);
  mma_ABt<E, 1, NQ, T::DV, T::PITCH_V, T::PITCH_V>(dp, sm.v + blk.key_w * T::PITCH_V * 2, do_s + q_w * T::PITCH_V * 2,
                                                    blk.lane);
  // P and dS in place of Sᵀ and dPᵀ. A row with no visible key has LSE −inf: +inf stands in,
  // so its P is exactly 0 (no −inf − −inf).
#pragma unroll
  for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = q_w + nt * 8 + 2 * tq + (e & 1);
      const int i = q0 + col, j = blk.k0 + blk.key_w + g + 8 * (e >> 1);
      const int ic = i < p.seqlen_q ? i : p.seqlen_q - 1, jc = j < p.seqlen_k ? j : p.seqlen_k - 1;
      const bool vis = full || ((i < p.seqlen_q) & (j < p.seqlen_k) && V::visible(p, band, blk.batch, hq, ic, jc));
      const float l = lse_s[col];
      const float lse2 = l == neg_inf() ? __int_as_float(0x7f800000) : l * 1.44269504088896341f;
      float pe = 0.f, ds = 0.f;
      if (vis) {
        if constexpr (V::kScoreMod) {
          const float x = s[0][nt][e] * V::kScale;
          pe = fast_exp2(fmaf(V::score(p, x, blk.batch, hq, ic, jc), 1.44269504088896341f, -lse2));
          ds = pe * (dp[0][nt][e] - delta_s[col]) * V::dscore(p, x, blk.batch, hq, ic, jc);
        } else {
          pe = fast_exp2(fmaf(s[0][nt][e], V::kScaleLog2, -lse2));
          ds = pe * (dp[0][nt][e] - delta_s[col]);
        }
      }
      s[0][nt][e] = pe;
      dp[0][nt][e] = ds;
    }

  if constexpr (T::WQ == 1) {
    // A warp holds all BM queries of its keys: Pᵀ and dSᵀ are the A operands as they are.
    u32 a[NQ / 2][1][4];
    pack_acc_a<E, 1, NQ>(a, s);
    mma_AB_rs<E, 1, T::DV_COLS / 8, T::BM, T::PITCH_V>(dv, a, do_s, blk.lane);
    pack_acc_a<E, 1, NQ>(a, dp);
    mma_AB_rs<E, 1, T::DK_COLS / 8, T::BM, T::PITCH_QK>(dk, a, q_s, blk.lane);
    store_keys_by_queries<T>(sm.ds, dp, blk);
    __syncthreads();  // dSᵀ complete for dQ
  } else {
    store_keys_by_queries<T>(sm.pt, s, blk);
    store_keys_by_queries<T>(sm.ds, dp, blk);
    __syncthreads();  // Pᵀ and dSᵀ complete: every warp reads its key rows across all queries
    mma_AB<E, 1, T::DV_COLS / 8, T::BM, T::PITCH_S, T::PITCH_V>(dv, sm.pt + blk.key_w * T::PITCH_S * 2,
                                                               do_s + blk.wq * T::DV_COLS * 2, blk.lane);
    mma_AB<E, 1, T::DK_COLS / 8, T::BM, T::PITCH_S, T::PITCH_QK>(dk, sm.ds + blk.key_w * T::PITCH_S * 2,
                                                                q_s + blk.wq * T::DK_COLS * 2, blk.lane);
  }

  // dQ (BM × D) = dS·K, this warp's DQ_MT·16 rows × DQ_COLS columns, reduce-added.
  const int wm = blk.warp % T::WM_Q, wn = blk.warp / T::WM_Q;
  float dq[T::DQ_MT][T::DQ_COLS / 8][4];
  zero_acc(dq);
  mma_AtB<E, T::DQ_MT, T::DQ_COLS / 8, T::BN, T::PITCH_S, T::PITCH_QK>(dq, sm.ds + wm * T::DQ_MT * 16 * 2,
                                                                      sm.k + wn * T::DQ_COLS * 2, blk.lane);
  float* dqa = bp.dq_accum + (((long long)blk.batch * p.num_heads_q + hq) * p.seqlen_q + q0) * T::D;
#pragma unroll
  for (int mt = 0; mt < T::DQ_MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = wm * T::DQ_MT * 16 + mt * 16 + g + 8 * h;
      if (q0 + row < p.seqlen_q) {
#pragma unroll
        for (int nt = 0; nt < T::DQ_COLS / 8; ++nt) {
          float* dst = dqa + row * T::D + wn * T::DQ_COLS + nt * 8 + 2 * tq;
          atomicAdd(dst, dq[mt][nt][2 * h]);
          atomicAdd(dst + 1, dq[mt][nt][2 * h + 1]);
        }
      }
    }
}

// The q tiles of one query head, in order, with Q / dO of the next one prefetched (STAGES 2).
template <class T, class V, class Tiles>
__device__ __forceinline__ void bwd_q_loop(const BwdParams& bp, const BwdSmem<T>& sm, const BwdBlock& blk,
                                           const Band& band, int hq, const Tiles& tiles,
                                           float (&dk)[1][T::DK_COLS / 8][4], float (&dv)[1][T::DV_COLS / 8][4]) {
  const int n = tiles.count();
  __syncthreads();  // every warp is done with the previous sequence's buffers
  if (T::STAGES == 2) {
    if (n > 0) bwd_load_q_tile<T>(bp, sm, blk, hq, tiles.at(0), 0);
    cp_async_commit();
  }
  for (int r = 0; r < n; ++r) {
    if (T::STAGES == 1) {
      if (r > 0) __syncthreads();  // the last tile's Q and dS are no longer read
      bwd_load_q_tile<T>(bp, sm, blk, hq, tiles.at(r), 0);
      cp_async_commit();
    }
    cp_async_wait<0>();
    __syncthreads();  // tile r landed for every thread; tile r - 1's buffers are free
    if (T::STAGES == 2) {
      if (r + 1 < n) bwd_load_q_tile<T>(bp, sm, blk, hq, tiles.at(r + 1), (r + 1) % 2);
      cp_async_commit();
    }
    bwd_q_tile<T, V>(bp, sm, blk, band, hq, tiles.at(r), tiles.is_full_at(r), T::STAGES == 2 ? r % 2 : 0, dk, dv);
  }
}

// Grid (ceil(seqlen_k / BN), heads_kv, batch), T::THREADS threads, T::SMEM_BYTES of dynamic
// shared memory (+ kTileListBytes when V::kListed).
template <class T, class V>
__device__ __forceinline__ void bwd_dkdv(const BwdParams& bp, unsigned char* smem) {
  const FwdParams& p = bp.fwd;
  BwdBlock blk;
  blk.k0 = blockIdx.x * T::BN;
  blk.k_rows = p.seqlen_k - blk.k0 < T::BN ? p.seqlen_k - blk.k0 : T::BN;
  blk.head_kv = blockIdx.y;
  blk.batch = blockIdx.z;
  blk.tid = threadIdx.x;
  blk.warp = blk.tid / 32;
  blk.lane = blk.tid % 32;
  blk.key_w = 16 * (blk.warp / T::WQ);
  blk.wq = blk.warp % T::WQ;
  const BwdSmem<T> sm(smem);

  const u16* k = static_cast<const u16*>(p.k) + blk.batch * p.k_batch_stride + blk.head_kv * p.k_head_stride +
                 (long long)blk.k0 * p.k_row_stride;
  const u16* v = static_cast<const u16*>(p.v) + blk.batch * p.v_batch_stride + blk.head_kv * p.v_head_stride +
                 (long long)blk.k0 * p.v_row_stride;
  load_tile_async<T::BN, T::D, T::THREADS>(sm.k, k, p.k_row_stride, blk.k_rows, blk.tid);
  load_tile_async<T::BN, T::DV, T::THREADS>(sm.v, v, p.v_row_stride, blk.k_rows, blk.tid);
  cp_async_commit();  // waited for with the first q tile

  float dk[1][T::DK_COLS / 8][4], dv[1][T::DV_COLS / 8][4];
  zero_acc(dk);
  zero_acc(dv);
  const Band band = V::band(p);
  const int n_q_tiles = (p.seqlen_q + T::BM - 1) / T::BM;
  for (int hq = blk.head_kv * p.gqa_group; hq < (blk.head_kv + 1) * p.gqa_group; ++hq) {
    if constexpr (V::kListed) {
      for (int chunk = 0; chunk < n_q_tiles; chunk += kTileListCap) {
        const int last = chunk + kTileListCap < n_q_tiles ? chunk + kTileListCap : n_q_tiles;
        const auto classify = [&](int t) {
          const int q0 = t * T::BM;
          return V::classify(p, blk.batch, hq, q0, p.seqlen_q - q0 < T::BM ? p.seqlen_q - q0 : T::BM, blk.k0, blk.k_rows);
        };
        const ListTiles tiles = build_tile_list<T::THREADS>(sm.ints(sm.list), chunk, last, classify, blk.tid);
        bwd_q_loop<T, V>(bp, sm, blk, band, hq, tiles, dk, dv);
      }
    } else {
      const BandTiles tiles{band_q_tiles(band, blk.k0, T::BN, p.seqlen_q, p.seqlen_k, T::BM)};
      bwd_q_loop<T, V>(bp, sm, blk, band, hq, tiles, dk, dv);
    }
  }
  cp_async_wait<0>();  // a block whose keys no query sees still waits for its K, V copies

  const int rows = blk.k_rows - blk.key_w;  // the warp's keys that exist
  u16* dk_out = static_cast<u16*>(bp.dk) + blk.batch * bp.dk_batch_stride + blk.head_kv * bp.dk_head_stride +
                (long long)(blk.k0 + blk.key_w) * bp.dk_row_stride + blk.wq * T::DK_COLS;
  u16* dv_out = static_cast<u16*>(bp.dv) + blk.batch * bp.dv_batch_stride + blk.head_kv * bp.dv_head_stride +
                (long long)(blk.k0 + blk.key_w) * bp.dv_row_stride + blk.wq * T::DV_COLS;
  store_acc_rows<typename T::Elem, T::DK_COLS / 8>(dk, dk_out, bp.dk_row_stride, rows, V::kScale, blk.lane);
  store_acc_rows<typename T::Elem, T::DV_COLS / 8>(dv, dv_out, bp.dv_row_stride, rows, 1.f, blk.lane);
}

}  // namespace flashjit
