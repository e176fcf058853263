// The bwd_dkdv skeleton on wgmma (sm_90a): the same algorithm as bwd_dkdv_sm80.cuh
// (KV-stationary; K and V in shared memory, dK and dV in fp32 registers; dQ partials
// reduce-added into the fp32 dq_accum), with the five GEMMs of a q tile on warpgroup MMAs
// (bwd_traits_sm90.cuh for who computes what):
//   Sᵀ  = K·Qᵀ,  dPᵀ = V·dOᵀ      ss: both operands K-major in shared memory
//   P, dS                          bwd_p_ds (bwd_block.cuh), per warp, in registers
//   dV += Pᵀ·dO                    rs: Pᵀ from registers, dO read MN-major
//   dK += dSᵀ·Q                    ss_b_mn_major: dSᵀ stored in shared memory (keys ×
//                                  queries, K-major), Q read MN-major
//   dQ  = dS·K                     ss_mn_major: dSᵀ (stored keys × queries) and K both
//                                  read MN-major; the transposes happen in the tensor core
// Every thread issues the copies (cp.async, two Q/dO buffers); every warpgroup computes.
// The variant V is generated, as for the mma.sync skeleton.
#pragma once

#include "flashjit/bwd_block.cuh"
#include "flashjit/bwd_traits_sm90.cuh"
#include "flashjit/smem_tile_sw128.cuh"
#include "flashjit/warp_mma_sm80.cuh"
#include "flashjit/wgmma.cuh"

namespace flashjit {

// bwd_traits_sm90.cuh's plan from a 1024-byte aligned base.
template <class T>
struct BwdSmemSm90 {
  unsigned char* raw;  // generic pointer to `base`
  u32 base, k, v, q, dout, ds, rowstat, list;
  __device__ explicit BwdSmemSm90(unsigned char* smem) {
    const u32 a = smem_addr(smem);
    base = (a + 1023u) & ~1023u;
    raw = smem + (base - a);
    k = base;
    v = k + T::K_BYTES;
    q = v + T::V_BYTES;
    dout = q + T::STAGES * T::Q_STAGE_BYTES;
    ds = dout + T::STAGES * T::DO_STAGE_BYTES;
    rowstat = ds + T::DS_BYTES;
    list = rowstat + T::STAGES * T::ROWSTAT_STAGE_BYTES;  // tile list (kv_tiles.cuh) of a classified mask
  }
  __device__ const float* floats(u32 addr) const { return reinterpret_cast<const float*>(raw + (addr - base)); }
  __device__ int* ints(u32 addr) const { return reinterpret_cast<int*>(raw + (addr - base)); }
};

// Keeps registers a wgmma reads asynchronously (an rs A operand) alive and in place until
// after the warpgroup_wait that covers it.
template <int A, int B>
__device__ __forceinline__ void pin_operand(u32 (&a)[A][1][B]) {
#pragma unroll
  for (int i = 0; i < A; ++i)
#pragma unroll
    for (int j = 0; j < B; ++j) asm volatile("" : "+r"(a[i][0][j])::"memory");
}

// A descriptor `bytes` further into the same tile: the start address is the low 14-bit
// field (address >> 4), and every tile lies below 256 KiB, so the sum cannot carry out of
// it. One base descriptor per operand plus constants, instead of one from scratch per k step
// (which ptxas tends to compute early and keep live).
__device__ __forceinline__ u64 desc_at(u64 base, u32 bytes) { return base + (bytes >> 4); }

// Sᵀ (or dPᵀ) of this warpgroup's 64 keys × SQ queries: A = the keys' rows of K (V), B =
// SQ rows of the q tile's Q (dO) from row `row0`, both K-major; K = COLS (the head dim).
// Issued, not waited for.
template <class T, int COLS>
__device__ __forceinline__ void issue_keys_by_queries(float (&c)[T::SQ / 8][4], u32 keys_smem, u32 rows_smem, int row0) {
  const u64 a0 = smem_desc_sw128(keys_smem, 16, 1024), b0 = smem_desc_sw128(rows_smem + row0 * 128, 16, 1024);
#pragma unroll
  for (int kk = 0; kk < COLS / 16; ++kk) {
    const int slab = kk / 4, k_bytes = (kk % 4) * 32;
    Wgmma<typename T::Elem, T::SQ>::ss(c, desc_at(a0, slab * T::BN * 128 + k_bytes), desc_at(b0, slab * T::BM * 128 + k_bytes),
                                       kk > 0);
  }
}

// acc += Aᵀ-from-registers · B over SQ queries from row `row0`, B (rows × N) read MN-major:
// dV += Pᵀ·dO for one pass.
template <class T, int N>
__device__ __forceinline__ void issue_rs_over_queries(float (&acc)[N / 8][4], const u32 (&a)[T::SQ / 16][1][4],
                                                      u32 b_smem, int row0) {
  const u64 b0 = smem_desc_sw128(b_smem + row0 * 128, T::BM * 128, 1024);
#pragma unroll
  for (int kk = 0; kk < T::SQ / 16; ++kk)
    Wgmma<typename T::Elem, N>::rs_b_mn_major(acc, a[kk][0], desc_at(b0, kk * 16 * 128), 1);
}

// dSᵀ of this warp's 16 keys × SQ queries (from query col0) into the swizzled keys × queries
// tile (rows = keys).
template <class T>
__device__ __forceinline__ void store_ds_t(u32 ds_smem, const float (&ds)[T::SQ / 8][4], int key_w, int col0, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int nt = 0; nt < T::SQ / 8; ++nt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = key_w + g + 8 * h, col = col0 + nt * 8 + 2 * t;
      const u32 v = pack2<typename T::Elem>(ds[nt][2 * h], ds[nt][2 * h + 1]);
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(ds_smem + Swizzle128::offset(T::BN, row, col) + (col % 8) * 2),
                   "r"(v));
    }
}

// One q tile (t) of query head hq, with its Q, dO, LSE and D in `slot`.
template <class T, class V, bool kDq>
__device__ __forceinline__ void bwd_q_tile_sm90(const BwdParams& bp, const BwdSmemSm90<T>& sm, const BwdBlock& blk,
                                                const BandI32& band, int hq, int t, bool full, int slot,
                                                float (&dk)[1][T::D / 8][4], float (&dv)[1][T::DV / 8][4]) {
  using E = typename T::Elem;
  constexpr int NQ = T::SQ / 8;
  const FwdParams& p = bp.fwd;
  const int q0 = t * T::BM;
  const int wg = blk.warp / 4;
  // opaque (smem_tile.cuh): the wgmma descriptors are loop-invariant; hoisted out of the q
  // loop they would hold ~2 registers per k step for the whole loop. Rebuilt per tile instead.
  const u32 k_s = opaque(sm.k), v_s = opaque(sm.v), ds_s = opaque(sm.ds);
  const u32 q_s = opaque(sm.q + slot * T::Q_STAGE_BYTES), do_s = opaque(sm.dout + slot * T::DO_STAGE_BYTES);
  const float* lse_s = sm.floats(sm.rowstat + slot * T::ROWSTAT_STAGE_BYTES);
  const float* delta_s = lse_s + T::BM;

  // Passes of SQ queries: Sᵀ and dPᵀ of part of a tile beside dK and dV is what fits in
  // registers. Pᵀ stays in registers for dV; dSᵀ goes to shared memory, where dK
  // (this warpgroup's key rows, K-major) and dQ (every row, MN-major) read it.
  u32 pa[T::PASSES][NQ / 2][1][4];
#pragma unroll
  for (int pass = 0; pass < T::PASSES; ++pass) {
    const int row0 = pass * T::SQ;
    float s[1][NQ][4], dp[1][NQ][4];
    warpgroup_fence();
    issue_keys_by_queries<T, T::D>(s[0], k_s + wg * 64 * 128, q_s, row0);
    issue_keys_by_queries<T, T::DV>(dp[0], v_s + wg * 64 * 128, do_s, row0);
    warpgroup_commit();
    warpgroup_wait<0>();  // (also the previous pass's dV)
    pin(s[0]);
    pin(dp[0]);
    if (pass > 0) pin_operand(pa[pass - 1]);  // its dV has run: the registers are free from here
    bwd_p_ds<V, NQ>(s[0], dp[0], bp, band, blk.batch, hq, q0, row0, blk.k0 + blk.key_w, full, lse_s, delta_s, blk.lane);
    pack_acc_a<E, 1, NQ>(pa[pass], s);
    store_ds_t<T>(ds_s, dp[0], blk.key_w, row0, blk.lane);
    warpgroup_fence();
    issue_rs_over_queries<T, T::DV>(dv[0], pa[pass], do_s, row0);
    warpgroup_commit();
  }
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();  // dSᵀ of every warpgroup stored and visible to wgmma (dV still running)

  // dK += dSᵀ·Q: A = this warpgroup's 64 key rows of dSᵀ (K-major, K = the BM queries),
  // B = Q read MN-major.
  warpgroup_fence();
  {
    const u64 a0 = smem_desc_sw128(ds_s + wg * 64 * 128, 16, 1024), b0 = smem_desc_sw128(q_s, T::BM * 128, 1024);
#pragma unroll
    for (int kk = 0; kk < T::BM / 16; ++kk)
      Wgmma<E, T::D>::ss_b_mn_major(dk[0], desc_at(a0, (kk / 4) * T::BN * 128 + (kk % 4) * 32), desc_at(b0, kk * 16 * 128),
                                    1);
  }
  // dQ: this warpgroup's 64 queries (slab m) × DQ_N columns (slab n) over all BN keys. Not
  // in the deterministic mode's kernel (kDq false), where bwd_dq computes it without atomics.
  const int m_slab = wg % T::DQ_WG_M, n_slab = wg / T::DQ_WG_M;
  float dq[1][T::DQ_N / 8][4];
  if constexpr (kDq) {
    const u64 a0 = smem_desc_sw128(ds_s + m_slab * T::BN * 128, T::BN * 128, 1024);
    const u64 b0 = smem_desc_sw128(k_s + n_slab * (T::DQ_N / 64) * T::BN * 128, T::BN * 128, 1024);
#pragma unroll
    for (int kk = 0; kk < T::BN / 16; ++kk)
      Wgmma<E, T::DQ_N>::ss_mn_major(dq[0], desc_at(a0, kk * 16 * 128), desc_at(b0, kk * 16 * 128), kk > 0);
  }
  warpgroup_commit();
  warpgroup_wait<0>();
  pin(dk[0]);
  pin(dv[0]);
  if constexpr (kDq) pin(dq[0]);
  pin_operand(pa[T::PASSES - 1]);

  const int g = blk.lane / 4, tq = blk.lane % 4;
  float* dqa = bp.dq_accum + (((long long)blk.batch * p.num_heads_q + hq) * p.seqlen_q + q0) * T::D;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = m_slab * 64 + 16 * (blk.warp % 4) + g + 8 * h;
    if (kDq && q0 + row < p.seqlen_q) {
#pragma unroll
      for (int nt = 0; nt < T::DQ_N / 8; ++nt)
        reduce_add2(dqa + row * T::D + n_slab * T::DQ_N + nt * 8 + 2 * tq, dq[0][nt][2 * h], dq[0][nt][2 * h + 1]);
    }
  }
}

// Grid (ceil(seqlen_k / BN), heads_kv, batch), T::THREADS threads, T::SMEM_BYTES of dynamic
// shared memory (+ kTileListBytes when V::kListed).
// kDq false: no dQ partials (the deterministic mode's bwd_dkdv; bp.dq_accum is not read).
template <class T, class V, bool kDq = true>
__device__ __forceinline__ void bwd_dkdv_sm90(const BwdParams& bp, unsigned char* smem) {
  const FwdParams& p = bp.fwd;
  // Warp w: keys 16w.. of the block (warpgroup w / 4, warp w % 4 inside it).
  const BwdBlock blk = bwd_block(p, T::BN, 1);
  const BwdSmemSm90<T> sm(smem);

  bwd_load_kv<T::BN, T::D, T::DV, T::THREADS, Swizzle128, Swizzle128>(p, blk, sm.k, sm.v);

  float dk[1][T::D / 8][4], dv[1][T::DV / 8][4];
  zero_acc(dk);
  zero_acc(dv);
  const Band band = V::band(p);
  const BandI32 band32 = band_i32(band);  // for the per-element tests
  bwd_for_each_q_sequence<V, T::BM, T::BN, T::THREADS>(p, blk, band, sm.ints(sm.list), [&](int hq, const auto& tiles) {
    bwd_pipelined_tile_loop<T::STAGES, /*kAsyncProxy=*/true>(
        tiles,
        [&](int t, int slot) {
          // opaque(tid): each chunk's offsets are recomputed per tile rather than kept live
          // (or spilled) across the whole loop.
          BwdBlock b = blk;
          b.tid = static_cast<int>(opaque(static_cast<u32>(blk.tid)));
          bwd_load_q_tile<T::BM, T::D, T::DV, T::THREADS, Swizzle128, Swizzle128>(
              bp, sm.q + slot * T::Q_STAGE_BYTES, sm.dout + slot * T::DO_STAGE_BYTES,
              sm.rowstat + slot * T::ROWSTAT_STAGE_BYTES, b, hq, t);
        },
        [&](int t, bool full, int slot) { bwd_q_tile_sm90<T, V, kDq>(bp, sm, blk, band32, hq, t, full, slot, dk, dv); });
  });
  cp_async_wait<0>();  // a block whose keys no query sees still waits for its K, V copies

  bwd_store_dk_dv<typename T::Elem, V, T::D, T::DV>(bp, blk, 0, 0, dk, dv);
}

}  // namespace flashjit
