// Compile-time shape of one forward kernel: the tile config plus the derived layout.
#pragma once

namespace flashjit {

template <class Elem_, int D_, int DV_, int BM_, int BN_, int WARPS_, int STAGES_>
struct FwdTraits {
  using Elem = Elem_;
  static constexpr int D = D_;    // q/k head dim
  static constexpr int DV = DV_;  // v/o head dim
  static constexpr int BM = BM_;  // query rows per block
  static constexpr int BN = BN_;  // keys per KV tile
  static constexpr int WARPS = WARPS_;
  static constexpr int STAGES = STAGES_;
  static constexpr int THREADS = 32 * WARPS;

  // Q is split across warps (FlashAttention-2): each warp owns ROWS_PER_WARP query rows
  // as MT 16-row mma tiles, and needs no communication with the other warps.
  static constexpr int ROWS_PER_WARP = BM / WARPS;
  static constexpr int MT = ROWS_PER_WARP / 16;
  static_assert(ROWS_PER_WARP % 16 == 0, "block_m must be a multiple of 16 * warps");
  static_assert(BN % 16 == 0 && D % 16 == 0 && DV % 16 == 0, "tile dims must be multiples of 16");

  // Shared-memory rows are padded by 8 elements (16 bytes): ldmatrix's 8 row addresses
  // then hit 8 distinct 16-byte bank groups for every head dim that is a multiple of 32.
  static constexpr int PITCH_QK = D + 8;
  static constexpr int PITCH_V = DV + 8;
  static constexpr int Q_BYTES = BM * PITCH_QK * 2;
  static constexpr int K_STAGE_BYTES = BN * PITCH_QK * 2;
  static constexpr int V_STAGE_BYTES = BN * PITCH_V * 2;
  static constexpr int SMEM_BYTES = Q_BYTES + STAGES * (K_STAGE_BYTES + V_STAGE_BYTES);
};

}  // namespace flashjit
