// Compile-time shape of one forward kernel on the wgmma path (sm_90a).
//
// Each warpgroup (4 warps) owns 64 query rows, the M of one wgmma; inside it warp w owns
// rows 16w..16w+15, so the per-warp register tiles (fragments.cuh, MT = 1) and everything
// built on them (mask, online softmax, epilogue) are shared with the mma.sync path.
#pragma once

namespace flashjit {

template <class Elem_, int D_, int DV_, int BM_, int BN_, int WARPS_, int STAGES_>
struct FwdTraitsSm90 {
  using Elem = Elem_;
  static constexpr int D = D_;
  static constexpr int DV = DV_;
  static constexpr int BM = BM_;
  static constexpr int BN = BN_;
  static constexpr int WARPS = WARPS_;
  static constexpr int STAGES = STAGES_;
  static constexpr int THREADS = 32 * WARPS;
  static constexpr int WARPGROUPS = WARPS / 4;
  static constexpr int ROWS_PER_WARP = 16;
  static constexpr int MT = 1;
  static_assert(WARPS % 4 == 0 && BM == 64 * WARPGROUPS, "block_m must be 64 rows per warpgroup");
  static_assert(D % 64 == 0 && DV % 64 == 0, "128-byte swizzle slabs are 64 columns");
  static_assert(BN % 16 == 0, "block_n is the k of the P·V wgmma (k16 steps)");

  // Unpadded: the swizzle, not padding, keeps the banks apart (smem_tile_sw128.cuh).
  static constexpr int Q_BYTES = BM * D * 2;
  static constexpr int K_STAGE_BYTES = BN * D * 2;
  static constexpr int V_STAGE_BYTES = BN * DV * 2;
  // After the tiles: a "full" and an "empty" mbarrier per pipeline slot (8 bytes each).
  static constexpr int BARRIER_BYTES = 64;
  static_assert(2 * STAGES * 8 <= BARRIER_BYTES, "room for the pipeline mbarriers");
  // + 1 KiB so that the tiles can start on a 1024-byte boundary.
  static constexpr int SMEM_BYTES = Q_BYTES + STAGES * (K_STAGE_BYTES + V_STAGE_BYTES) + BARRIER_BYTES + 1024;
};

}  // namespace flashjit
