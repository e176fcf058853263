// The two GEMMs of the forward pass on wgmma, per warpgroup (sm_90a path).
//   warpgroup_gemm_qk_issue: S  = Q·Kᵀ  this warpgroup's 64 Q rows and the K tile, both
//                            from shared memory, K-major
//   warpgroup_gemm_pv_issue: O += P·V   P from registers (for 16-bit types the accumulator
//                            layout of S is the A-operand layout), V from shared memory
//                            read MN-major (the transpose happens inside the tensor core)
// Each is issued asynchronously (fence, wgmmas, commit); the caller waits with
// warpgroup_wait<> and pins the result (wgmma.cuh). Tile bases are in the layout of
// smem_tile_sw128.cuh.
#pragma once

#include "flashjit/fragments.cuh"
#include "flashjit/wgmma.cuh"

namespace flashjit {

// P packed to 16 bits in the A-operand layout: keys 16kk..16kk+15 are n tiles 2kk, 2kk+1.
template <class T>
struct PackedP {
  u32 a[T::BN / 16][4];
};

template <class T>
__device__ __forceinline__ void pack_p(PackedP<T>& out, const ScoreTile<T>& P) {
#pragma unroll
  for (int kk = 0; kk < T::BN / 16; ++kk) {
    out.a[kk][0] = pack2<typename T::Elem>(P.s[0][2 * kk][0], P.s[0][2 * kk][1]);
    out.a[kk][1] = pack2<typename T::Elem>(P.s[0][2 * kk][2], P.s[0][2 * kk][3]);
    out.a[kk][2] = pack2<typename T::Elem>(P.s[0][2 * kk + 1][0], P.s[0][2 * kk + 1][1]);
    out.a[kk][3] = pack2<typename T::Elem>(P.s[0][2 * kk + 1][2], P.s[0][2 * kk + 1][3]);
  }
}

// fence, the wgmmas, commit. The result is valid only after a
// warpgroup_wait<> that covers the group, followed by pin().
template <class T>
__device__ __forceinline__ void warpgroup_gemm_qk_issue(ScoreTile<T>& S, u32 q_smem, u32 k_smem, int warp) {
  const u32 q_rows = q_smem + (warp / 4) * 64 * 128;  // this warpgroup's first row, in every slab
  warpgroup_fence();
#pragma unroll
  for (int kk = 0; kk < T::D / 16; ++kk) {
    const int slab = kk / 4, k_bytes = (kk % 4) * 32;
    const u64 a = smem_desc_sw128(q_rows + slab * T::BM * 128 + k_bytes, 16, 1024);
    const u64 b = smem_desc_sw128(k_smem + slab * T::BN * 128 + k_bytes, 16, 1024);
    Wgmma<typename T::Elem, T::BN>::ss(S.s[0], a, b, kk > 0);
  }
  warpgroup_commit();
}

template <class T>
__device__ __forceinline__ void warpgroup_gemm_pv_issue(OutTile<T>& O, const PackedP<T>& P, u32 v_smem) {
  pin(O.o[0]);
  warpgroup_fence();
#pragma unroll
  for (int kk = 0; kk < T::BN / 16; ++kk) {
    const u64 b = smem_desc_sw128(v_smem + kk * 16 * 128, T::BN * 128, 1024);
    Wgmma<typename T::Elem, T::DV>::rs_b_mn_major(O.o[0], P.a[kk], b, 1);
  }
  warpgroup_commit();
}

}  // namespace flashjit
