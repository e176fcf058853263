// The two GEMMs of the forward pass on mma.sync, per warp (sm_80 path).
//   gemm_qk: S  = Q·Kᵀ   Q rows of this warp from smem, K tile from smem (both K-major)
//   gemm_pv: O += P·V    P from the score registers (accumulator layout == A layout),
//                        V tile from smem, read transposed by ldmatrix.trans
//   gemm_pv_frags: the same from P already packed (PFrags), which dropout masks first
#pragma once

#include "flashjit/fragments.cuh"
#include "flashjit/ldmatrix.cuh"
#include "flashjit/mma_sm80.cuh"

namespace flashjit {

template <class T>
__device__ __forceinline__ void gemm_qk(ScoreTile<T>& S, u32 q_smem, u32 k_smem, int warp, int lane) {
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < T::BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) S.s[mt][nt][e] = 0.f;

  // Lane l addresses row (l % 8) of 8x8 matrix l / 8.
  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_col = 8 * (lane / 16);
  const int b_row = (lane % 8) + 8 * (lane / 16), b_col = 8 * ((lane / 8) % 2);
#pragma unroll
  for (int kk = 0; kk < T::D / 16; ++kk) {
    u32 a[T::MT][4];
#pragma unroll
    for (int mt = 0; mt < T::MT; ++mt) {
      const int row = warp * T::ROWS_PER_WARP + mt * 16 + a_row;
      ldmatrix_x4(a[mt], q_smem + (row * T::PITCH_QK + kk * 16 + a_col) * 2);
    }
#pragma unroll
    for (int np = 0; np < T::BN / 16; ++np) {
      u32 b[4];  // b[0], b[1]: n tile 2np; b[2], b[3]: n tile 2np + 1
      ldmatrix_x4(b, k_smem + ((np * 16 + b_row) * T::PITCH_QK + kk * 16 + b_col) * 2);
#pragma unroll
      for (int mt = 0; mt < T::MT; ++mt) {
        mma_16816<typename T::Elem>(S.s[mt][2 * np], a[mt], b[0], b[1]);
        mma_16816<typename T::Elem>(S.s[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

// P packed to 16 bits in the A-operand layout, per 16-row slice mt: keys 16kk..16kk+15 are
// n tiles 2kk, 2kk+1 of S.
template <class T>
struct PFrags {
  u32 a[T::MT][T::BN / 16][4];
};

// Packing all of P to 16 bits first frees the fp32 scores (half the registers) before the V
// loop, where the O accumulator is live too.
template <class T>
__device__ __forceinline__ void pack_p_frags(PFrags<T>& out, const ScoreTile<T>& P) {
#pragma unroll
  for (int mt = 0; mt < T::MT; ++mt)
#pragma unroll
    for (int kk = 0; kk < T::BN / 16; ++kk) {
      out.a[mt][kk][0] = pack2<typename T::Elem>(P.s[mt][2 * kk][0], P.s[mt][2 * kk][1]);
      out.a[mt][kk][1] = pack2<typename T::Elem>(P.s[mt][2 * kk][2], P.s[mt][2 * kk][3]);
      out.a[mt][kk][2] = pack2<typename T::Elem>(P.s[mt][2 * kk + 1][0], P.s[mt][2 * kk + 1][1]);
      out.a[mt][kk][3] = pack2<typename T::Elem>(P.s[mt][2 * kk + 1][2], P.s[mt][2 * kk + 1][3]);
    }
}

template <class T>
__device__ __forceinline__ void gemm_pv_frags(OutTile<T>& O, const PFrags<T>& P, u32 v_smem, int lane) {
  const int v_row = (lane % 8) + 8 * ((lane / 8) % 2), v_col = 8 * (lane / 16);
#pragma unroll
  for (int kk = 0; kk < T::BN / 16; ++kk)
#pragma unroll
    for (int np = 0; np < T::DV / 16; ++np) {
      u32 b[4];  // b[0], b[1]: output n tile 2np; b[2], b[3]: 2np + 1
      ldmatrix_x4_trans(b, v_smem + ((kk * 16 + v_row) * T::PITCH_V + np * 16 + v_col) * 2);
#pragma unroll
      for (int mt = 0; mt < T::MT; ++mt) {
        mma_16816<typename T::Elem>(O.o[mt][2 * np], P.a[mt][kk], b[0], b[1]);
        mma_16816<typename T::Elem>(O.o[mt][2 * np + 1], P.a[mt][kk], b[2], b[3]);
      }
    }
}

template <class T>
__device__ __forceinline__ void gemm_pv(OutTile<T>& O, const ScoreTile<T>& P, u32 v_smem, int lane) {
  PFrags<T> a;
  pack_p_frags<T>(a, P);
  gemm_pv_frags<T>(O, a, v_smem, lane);
}

}  // namespace flashjit
