// cp.async (sm_80+): 16-byte global -> shared copies that bypass registers, grouped and
// waited on as a pipeline. Rows past the tensor end are zero-filled (src-size 0), so
// padding keys contribute exact zeros to P·V and never NaN.
#pragma once

#include "flashjit/types.cuh"

namespace flashjit {

__device__ __forceinline__ void cp_async_16(u32 smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(src_bytes));
}

// 4 bytes (a float of the backward's per-row LSE and D); invalid: the word is zeroed.
__device__ __forceinline__ void cp_async_4(u32 smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem), "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace flashjit
