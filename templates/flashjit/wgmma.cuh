// The warpgroup MMA protocol (sm_90a) and shared-memory matrix descriptors.
//
//   warpgroup_fence()      before the first wgmma, and after registers it reads (the A
//                          operand, the accumulator) were written by ordinary code
//   <wgmma ...>            asynchronous: the accumulator is not ready when it returns
//   warpgroup_commit()     closes the group of wgmmas issued so far
//   warpgroup_wait<N>()    waits until at most N groups are still running
//   pin(acc)               after the wait: ties the accumulator registers to this point,
//                          so the compiler cannot read them between the wgmma and the wait
#pragma once

#include "flashjit/types.cuh"
#include "flashjit/wgmma_instr.cuh"

namespace flashjit {

__device__ __forceinline__ void warpgroup_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void warpgroup_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void warpgroup_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

template <int A, int B>
__device__ __forceinline__ void pin(float (&d)[A][B]) {
#pragma unroll
  for (int i = 0; i < A; ++i)
#pragma unroll
    for (int j = 0; j < B; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
}

// Shared memory written by ordinary stores or cp.async is read by wgmma through the
// async proxy: each writing thread fences after its writes land, before the barrier.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Descriptor of a matrix in shared memory in the 128-byte swizzle layout of
// smem_tile_sw128.cuh (bits: 0-13 address >> 4, 16-29 leading byte offset >> 4,
// 32-45 stride byte offset >> 4, 62-63 swizzle mode, 1 = 128 B).
//   K-major operand (Q, K): sbo = 1024 (next 8 rows); lbo unused. The k16 step inside a
//                           64-column slab is +32 bytes.
//   MN-major operand (V):   sbo = 1024 (next 8 k rows), lbo = the slab stride (next 64
//                           columns of N). The k16 step is +2048 bytes (16 rows).
__device__ __forceinline__ u64 smem_desc_sw128(u32 addr, u32 lbo_bytes, u32 sbo_bytes) {
  u64 d = (u64)((addr & 0x3FFFF) >> 4);
  d |= (u64)((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= (u64)((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= 1ull << 62;
  return d;
}

}  // namespace flashjit
