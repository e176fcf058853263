// The Tensor Memory Accelerator (sm_90): bulk tensor copies global -> shared memory that
// one thread issues and an mbarrier counts in bytes.
//
//   TensorMap                 the 128-byte descriptor cuTensorMapEncodeTiled writes on the host
//                             (cuda.h's CUtensorMap; NVRTC cannot include cuda.h). It must
//                             live in the kernel's parameter space (__grid_constant__).
//   mbarrier_expect_tx(b, n)  arrives on b and tells it n more bytes are coming
//   tma_load_5d(dst, map, b, c0..c4)
//                             copies the map's box at coordinates c (innermost first) to dst;
//                             b's phase completes when the box's bytes have landed. Parts of the
//                             box outside the tensor read as zeros and still count.
// The smem destination is laid out as the map's swizzle says (128 B here, the layout of
// smem_tile_sw128.cuh), so wgmma reads it with the same descriptors as a cp.async tile.
#pragma once

#include "flashjit/tensor_map.cuh"
#include "flashjit/types.cuh"

namespace flashjit {

__device__ __forceinline__ void mbarrier_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

// Makes initialised mbarriers visible to the async proxy (TMA's completions), before the
// block barrier that publishes them.
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void tma_prefetch_map(const TensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<unsigned long long>(map)) : "memory");
}

__device__ __forceinline__ void tma_load_5d(u32 dst, const TensorMap* map, u32 bar, int c0, int c1, int c2, int c3,
                                            int c4) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5, %6, %7}], [%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4)
      : "memory");
}

// Register reallocation between the warpgroups of a warp-specialised block: every warp of
// a warpgroup executes the same one. N: 24..256, a multiple of 8.
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

}  // namespace flashjit
