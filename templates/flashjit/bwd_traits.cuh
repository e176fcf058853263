// Compile-time shape of the bwd_dkdv kernel (bwd_dkdv_sm80.cuh) and its shared-memory plan.
//
// A block owns BN keys of one (batch, kv head) and loops over q tiles of BM rows. Warps form
// a WK × WQ grid: WK = BN / 16 warp rows of 16 keys each, WQ warps per row.
//   S, dP phase:  warp (wk, wq) computes Sᵀ and dPᵀ for its 16 keys × BM / WQ queries;
//   dK, dV phase: warp (wk, wq) accumulates dK and dV for its 16 keys × D / WQ (DV / WQ)
//                 columns, in fp32 registers across the whole loop;
//   dQ phase:     warps split the BM × D tile of dQ = dS·K as WM_Q × WN_Q.
// With WQ == 1 a warp's Pᵀ and dSᵀ are already the A operands of its dV and dK GEMMs, in
// registers; with WQ > 1 they go through shared memory (PT and DS below), which is what lets
// head dims up to 256 fit: the accumulators per thread are 16 · (D + DV) / (32 · WQ).
#pragma once

namespace flashjit {

template <class Elem_, int D_, int DV_, int BM_, int BN_, int WARPS_, int STAGES_>
struct BwdTraits {
  using Elem = Elem_;
  static constexpr int D = D_, DV = DV_;
  static constexpr int BM = BM_;  // query rows per q tile
  static constexpr int BN = BN_;  // keys per block
  static constexpr int WARPS = WARPS_, THREADS = 32 * WARPS_;
  static constexpr int STAGES = STAGES_;  // Q / dO buffers: 2 prefetches the next q tile

  static constexpr int WK = BN / 16;
  static constexpr int WQ = WARPS / WK;
  static_assert(BN % 16 == 0 && WARPS % WK == 0 && WQ >= 1, "warps must be a multiple of block_n / 16");
  static constexpr int SQ = BM / WQ;  // queries of a warp's Sᵀ
  static_assert(SQ % 16 == 0, "block_m / (warps per key row) must be a multiple of 16");
  static constexpr int DK_COLS = D / WQ, DV_COLS = DV / WQ;
  static_assert(DK_COLS % 16 == 0 && DV_COLS % 16 == 0, "head dims / (warps per key row) must be multiples of 16");
  static_assert(STAGES == 1 || STAGES == 2, "stages must be 1 or 2");

  static constexpr int WM_Q = WARPS < BM / 16 ? WARPS : BM / 16;
  static constexpr int WN_Q = WARPS / WM_Q;
  static_assert((BM / 16) % WM_Q == 0 && WARPS % WM_Q == 0, "dQ: warps and block_m / 16 must divide");
  static constexpr int DQ_MT = BM / 16 / WM_Q;  // 16-row tiles of a warp's dQ slice
  static constexpr int DQ_COLS = D / WN_Q;
  static_assert(DQ_COLS % 16 == 0, "dQ: head_dim / warps per q row must be a multiple of 16");

  // Rows padded by 8 elements (16 bytes), as in FwdTraits: conflict-free ldmatrix.
  static constexpr int PITCH_QK = D + 8, PITCH_V = DV + 8, PITCH_S = BM + 8;
  static constexpr int K_BYTES = BN * PITCH_QK * 2;
  static constexpr int V_BYTES = BN * PITCH_V * 2;
  static constexpr int Q_STAGE_BYTES = BM * PITCH_QK * 2;
  static constexpr int DO_STAGE_BYTES = BM * PITCH_V * 2;
  static constexpr int ROWSTAT_STAGE_BYTES = 2 * BM * 4;  // the q tile's LSE, then its D
  static constexpr int DS_BYTES = BN * PITCH_S * 2;       // dSᵀ (keys × queries), 16-bit
  static constexpr int PT_BYTES = WQ > 1 ? BN * PITCH_S * 2 : 0;  // Pᵀ, when warps share key rows
  static constexpr int SMEM_BYTES =
      K_BYTES + V_BYTES + STAGES * (Q_STAGE_BYTES + DO_STAGE_BYTES + ROWSTAT_STAGE_BYTES) + DS_BYTES + PT_BYTES;
};

}  // namespace flashjit
