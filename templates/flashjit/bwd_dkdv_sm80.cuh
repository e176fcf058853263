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

#include "flashjit/bwd_block.cuh"
#include "flashjit/bwd_traits.cuh"
#include "flashjit/warp_mma_sm80.cuh"

namespace flashjit {

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

// Starts the copies of q tile t of head hq into buffer `slot` (bwd_block.cuh).
template <class T>
__device__ __forceinline__ void bwd_load_q_tile(const BwdParams& bp, const BwdSmem<T>& sm, const BwdBlock& blk, int hq,
                                                int t, int slot) {
  bwd_load_q_tile<T::BM, T::D, T::DV, T::THREADS, PaddedRows<T::D>, PaddedRows<T::DV>>(
      bp, sm.q + slot * T::Q_STAGE_BYTES, sm.dout + slot * T::DO_STAGE_BYTES, sm.rowstat + slot * T::ROWSTAT_STAGE_BYTES,
      blk, hq, t);
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
template <class T, class V, bool kDq>
__device__ __forceinline__ void bwd_q_tile(const BwdParams& bp, const BwdSmem<T>& sm, const BwdBlock& blk,
                                           const BandI32& band, int hq, int t, bool full, int slot,
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
  bwd_p_ds<V, NQ>(s[0], dp[0], bp, band, blk.batch, hq, q0, q_w, blk.k0 + blk.key_w, full, lse_s, delta_s, blk.lane);

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

  // dQ (BM × D) = dS·K, this warp's DQ_MT·16 rows × DQ_COLS columns, reduce-added. Not in the
  // deterministic mode's kernel (kDq false), where bwd_dq computes it without atomics.
  if constexpr (!kDq) return;
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
          reduce_add2(dst, dq[mt][nt][2 * h], dq[mt][nt][2 * h + 1]);
        }
      }
    }
}

// Grid (ceil(seqlen_k / BN), heads_kv, batch), T::THREADS threads, T::SMEM_BYTES of dynamic
// shared memory (+ kTileListBytes when V::kListed).
// kDq false: no dQ partials (the deterministic mode's bwd_dkdv; bp.dq_accum is not read).
template <class T, class V, bool kDq = true>
__device__ __forceinline__ void bwd_dkdv(const BwdParams& bp, unsigned char* smem) {
  const FwdParams& p = bp.fwd;
  const BwdBlock blk = bwd_block(p, T::BN, T::WQ);
  const BwdSmem<T> sm(smem);

  bwd_load_kv<T::BN, T::D, T::DV, T::THREADS, PaddedRows<T::D>, PaddedRows<T::DV>>(p, blk, sm.k, sm.v);

  float dk[1][T::DK_COLS / 8][4], dv[1][T::DV_COLS / 8][4];
  zero_acc(dk);
  zero_acc(dv);
  const Band band = V::band(p);
  const BandI32 band32 = band_i32(band);  // for the per-element tests
  bwd_for_each_q_sequence<V, T::BM, T::BN, T::THREADS>(p, blk, band, sm.ints(sm.list), [&](int hq, const auto& tiles) {
    bwd_pipelined_tile_loop<T::STAGES, /*kAsyncProxy=*/false>(
        tiles, [&](int t, int slot) { bwd_load_q_tile<T>(bp, sm, blk, hq, t, slot); },
        [&](int t, bool full, int slot) { bwd_q_tile<T, V, kDq>(bp, sm, blk, band32, hq, t, full, slot, dk, dv); });
  });
  cp_async_wait<0>();  // a block whose keys no query sees still waits for its K, V copies

  bwd_store_dk_dv<typename T::Elem, V, T::DK_COLS, T::DV_COLS>(bp, blk, blk.wq * T::DK_COLS, blk.wq * T::DV_COLS, dk, dv);
}

}  // namespace flashjit
