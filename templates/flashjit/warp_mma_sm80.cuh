// Warp-level GEMMs on mma.sync m16n8k16, named by operand layout (ThunderKittens' style),
// for kernels whose operands are not the forward's Q/K/V (the backward's five GEMMs):
//   mma_ABt    C += A·Bᵀ   A (M×K) and B (N×K) row-major in shared memory
//   mma_AB     C += A·B    A (M×K) row-major, B (K×N) row-major in shared memory
//   mma_AtB    C += Aᵀ·B   A stored (K×M) row-major, B (K×N) row-major in shared memory
//   mma_AB_rs  C += A·B    A from registers (a previous GEMM's accumulator, packed by
//                          pack_acc_a), B (K×N) row-major in shared memory
// C is the accumulator layout of fragments.cuh: [m tile][n tile of 8][4], M = 16·MT,
// N = 8·NT (NT even), K a multiple of 16. Shared-memory operands are 16-bit, rows of PITCH
// elements (padded: see FwdTraits::PITCH_*), addressed by the byte address of element (0, 0).
//
// ldmatrix hands each lane (g, t) = (lane / 4, lane % 4) row g, columns 2t..2t+1 of each 8×8
// matrix; .trans hands it column g, rows 2t..2t+1. Reading B stored (K×N) transposed gives
// the "column" B operand mma wants; reading Aᵀ stored (K×M) transposed gives A.
#pragma once

#include "flashjit/ldmatrix.cuh"
#include "flashjit/mma_sm80.cuh"

namespace flashjit {

template <int MT, int NT>
__device__ __forceinline__ void zero_acc(float (&c)[MT][NT][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[mt][nt][e] = 0.f;
}

// Lane l gives the address of row l % 8 of matrix l / 8. For an A fragment (16×16) the four
// matrices are (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15).
__device__ __forceinline__ int a_frag_row(int lane) { return (lane % 8) + 8 * ((lane / 8) % 2); }
__device__ __forceinline__ int a_frag_col(int lane) { return 8 * (lane / 16); }
// B stored (N×K): matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15),
// so one x4 load gives the b0, b1 of two n tiles.
__device__ __forceinline__ int bt_frag_row(int lane) { return (lane % 8) + 8 * (lane / 16); }
__device__ __forceinline__ int bt_frag_col(int lane) { return 8 * ((lane / 8) % 2); }

// The B fragments of n tiles 2np, 2np+1 for k rows kk·16.. of B stored (K×N) row-major.
template <int PITCH>
__device__ __forceinline__ void load_b_kn(u32 (&b)[4], u32 b_smem, int kk, int np, int lane) {
  ldmatrix_x4_trans(b, b_smem + ((kk * 16 + a_frag_row(lane)) * PITCH + np * 16 + a_frag_col(lane)) * 2);
}

// One k step (16 columns of A, 16 rows of B) into every n tile pair: load_b(b, np) gives the
// B fragments of n tiles 2np, 2np + 1; A's fragments are already in registers.
template <class E, int MT, int NT, class LoadB>
__device__ __forceinline__ void mma_k_step(float (&c)[MT][NT][4], const u32 (&a)[MT][4], LoadB&& load_b) {
#pragma unroll
  for (int np = 0; np < NT / 2; ++np) {
    u32 b[4];
    load_b(b, np);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      mma_16816<E>(c[mt][2 * np], a[mt], b[0], b[1]);
      mma_16816<E>(c[mt][2 * np + 1], a[mt], b[2], b[3]);
    }
  }
}

// The A fragments (MT m tiles) of k columns kk·16.. of A stored (M×K) row-major.
template <int MT, int PITCH_A>
__device__ __forceinline__ void load_a_mk(u32 (&a)[MT][4], u32 a_smem, int kk, int lane) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    ldmatrix_x4(a[mt], a_smem + ((mt * 16 + a_frag_row(lane)) * PITCH_A + kk * 16 + a_frag_col(lane)) * 2);
}

template <class E, int MT, int NT, int K, int PITCH_A, int PITCH_B>
__device__ __forceinline__ void mma_ABt(float (&c)[MT][NT][4], u32 a_smem, u32 b_smem, int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "mma_ABt: N a multiple of 16, K of 16");
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    u32 a[MT][4];
    load_a_mk<MT, PITCH_A>(a, a_smem, kk, lane);
    mma_k_step<E, MT, NT>(c, a, [&](u32 (&b)[4], int np) {
      ldmatrix_x4(b, b_smem + ((np * 16 + bt_frag_row(lane)) * PITCH_B + kk * 16 + bt_frag_col(lane)) * 2);
    });
  }
}

template <class E, int MT, int NT, int K, int PITCH_A, int PITCH_B>
__device__ __forceinline__ void mma_AB(float (&c)[MT][NT][4], u32 a_smem, u32 b_smem, int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "mma_AB: N a multiple of 16, K of 16");
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    u32 a[MT][4];
    load_a_mk<MT, PITCH_A>(a, a_smem, kk, lane);
    mma_k_step<E, MT, NT>(c, a, [&](u32 (&b)[4], int np) { load_b_kn<PITCH_B>(b, b_smem, kk, np, lane); });
  }
}

// Aᵀ stored (K×M): matrix i of the x4 load is rows (k) 8·(i / 2).., columns (m) 8·(i % 2)..,
// which .trans turns into the A fragment's (m 0-7 | 8-15, k 0-7 | 8-15) matrices in order.
template <class E, int MT, int NT, int K, int PITCH_A, int PITCH_B>
__device__ __forceinline__ void mma_AtB(float (&c)[MT][NT][4], u32 at_smem, u32 b_smem, int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "mma_AtB: N a multiple of 16, K of 16");
  const int k_off = 8 * (lane / 16) + lane % 8, m_off = 8 * ((lane / 8) % 2);
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    u32 a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
      ldmatrix_x4_trans(a[mt], at_smem + ((kk * 16 + k_off) * PITCH_A + mt * 16 + m_off) * 2);
    mma_k_step<E, MT, NT>(c, a, [&](u32 (&b)[4], int np) { load_b_kn<PITCH_B>(b, b_smem, kk, np, lane); });
  }
}

// An accumulator (MT × KT n tiles, KT even) as the 16-bit A operand of a following GEMM:
// the 16×16 A fragment of k columns kk·16.. is n tiles 2kk and 2kk+1 (same lane layout).
template <class E, int MT, int KT>
__device__ __forceinline__ void pack_acc_a(u32 (&a)[KT / 2][MT][4], const float (&c)[MT][KT][4]) {
#pragma unroll
  for (int kk = 0; kk < KT / 2; ++kk)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      a[kk][mt][0] = pack2<E>(c[mt][2 * kk][0], c[mt][2 * kk][1]);
      a[kk][mt][1] = pack2<E>(c[mt][2 * kk][2], c[mt][2 * kk][3]);
      a[kk][mt][2] = pack2<E>(c[mt][2 * kk + 1][0], c[mt][2 * kk + 1][1]);
      a[kk][mt][3] = pack2<E>(c[mt][2 * kk + 1][2], c[mt][2 * kk + 1][3]);
    }
}

template <class E, int MT, int NT, int K, int PITCH_B>
__device__ __forceinline__ void mma_AB_rs(float (&c)[MT][NT][4], const u32 (&a)[K / 16][MT][4], u32 b_smem, int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "mma_AB_rs: N a multiple of 16, K of 16");
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk)
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      u32 b[4];
      load_b_kn<PITCH_B>(b, b_smem, kk, np, lane);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_16816<E>(c[mt][2 * np], a[kk][mt], b[0], b[1]);
        mma_16816<E>(c[mt][2 * np + 1], a[kk][mt], b[2], b[3]);
      }
    }
}

}  // namespace flashjit
