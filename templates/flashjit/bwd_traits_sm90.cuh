// Compile-time shape of the bwd_dkdv kernel on wgmma (bwd_dkdv_sm90.cuh, sm_90a) and its
// shared-memory plan.
//
// A block owns BN = 64 · WARPGROUPS keys of one (batch, kv head): warpgroup w owns keys
// 64w..64w+63, the M of its wgmmas for Sᵀ, dPᵀ, dV and dK, and inside it warp i owns keys
// 16i..16i+15, so the per-warp accumulator layout is the mma.sync one (fragments.cuh) and
// bwd_block.cuh's P / dS code serves both paths. Per q tile of BM queries:
//   Sᵀ, dPᵀ:  two passes of N = SQ = BM / 2 queries, K = D (DV); K, V and Q, dO K-major in
//             shared memory
//   dV, dK:   N = DV (D), K = BM; Pᵀ from registers, dSᵀ from shared memory; dO, Q read
//             MN-major
//   dQ:       the BM × D tile is split over the warpgroups: DQ_WG_M = BM / 64 query slabs ×
//             DQ_WG_N column slabs of DQ_N columns; A = dS read MN-major from dSᵀ in shared
//             memory, B = K read MN-major, K = BN.
// Accumulators per thread: (D + DV) / 2 for dK, dV (the whole loop), SQ / 2 each for Sᵀ and
// dPᵀ, DQ_N / 2 for dQ.
#pragma once

namespace flashjit {

template <class Elem_, int D_, int DV_, int BM_, int BN_, int WARPS_, int STAGES_>
struct BwdTraitsSm90 {
  using Elem = Elem_;
  static constexpr int D = D_, DV = DV_;
  static constexpr int BM = BM_, BN = BN_;
  static constexpr int WARPS = WARPS_, THREADS = 32 * WARPS_;
  static constexpr int STAGES = STAGES_;
  static constexpr int WARPGROUPS = WARPS / 4;
  static_assert(WARPS % 4 == 0 && BN == 64 * WARPGROUPS, "block_n must be 64 keys per warpgroup");
  static_assert(BM == 64 || BM == 128, "block_m (the N of the Sᵀ wgmma) must be 64 or 128");
  static_assert(D % 64 == 0 && DV % 64 == 0 && D <= 128 && DV <= 128, "head dims 64 or 128 (128-byte swizzle slabs)");
  static_assert(STAGES == 1 || STAGES == 2, "stages must be 1 or 2");

  // Queries per Sᵀ / dPᵀ pass (the N of those wgmmas): two passes per q tile. Measured on the
  // H200 (docs/performance.md, 2026-12-02): at head dim 64 (block_m 128) passes of 32 instead
  // of 64 cost 5-10% (0.90-1.04x FlashAttention-2 against 1.01-1.12x), though they spill
  // nothing where 64 spills up to 24 bytes (a mask expression with a score_mod).
  static constexpr int SQ = BM / 2;
  static constexpr int PASSES = BM / SQ;
  static constexpr int DQ_WG_M = BM / 64;
  static_assert(WARPGROUPS % DQ_WG_M == 0, "dQ: warpgroups must cover block_m / 64 query slabs");
  static constexpr int DQ_WG_N = WARPGROUPS / DQ_WG_M;
  static constexpr int DQ_N = D / DQ_WG_N;
  static_assert(D % DQ_WG_N == 0 && DQ_N % 64 == 0, "dQ: each warpgroup's columns must be whole 64-column slabs");

  // Unpadded, 128-byte swizzled (smem_tile_sw128.cuh); every tile a multiple of 1024 bytes.
  static constexpr int K_BYTES = BN * D * 2;
  static constexpr int V_BYTES = BN * DV * 2;
  static constexpr int Q_STAGE_BYTES = BM * D * 2;
  static constexpr int DO_STAGE_BYTES = BM * DV * 2;
  static constexpr int DS_BYTES = BN * BM * 2;            // dSᵀ (keys × queries), 16-bit
  static constexpr int ROWSTAT_STAGE_BYTES = 2 * BM * 4;  // the q tile's LSE, then its D
  // + 1 KiB so that the tiles can start on a 1024-byte boundary.
  static constexpr int SMEM_BYTES =
      1024 + K_BYTES + V_BYTES + STAGES * (Q_STAGE_BYTES + DO_STAGE_BYTES + ROWSTAT_STAGE_BYTES) + DS_BYTES;
};

}  // namespace flashjit
