// Shared-memory mbarriers (sm_80+; used by the wgmma path): a barrier per pipeline slot
// that completes a phase when `count` arrivals have happened, waited on by phase parity.
// Unlike __syncthreads they let warpgroups run apart: a thread waits only for the data or
// the free slot it needs, not for every other thread to reach the same line.
#pragma once

#include "flashjit/types.cuh"

namespace flashjit {

__device__ __forceinline__ void mbarrier_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Before a barrier is initialised again (the next chunk of a tile list).
__device__ __forceinline__ void mbarrier_inval(u32 bar) {
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Arrives on `bar` once every cp.async this thread has issued so far has landed. `noinc`:
// this arrival is one of the `count` the barrier was initialised with.
__device__ __forceinline__ void cp_async_arrive(u32 bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// Blocks until the phase with the given parity (0 for the 1st, 3rd, ... completion;
// 1 for the 2nd, 4th, ...) has completed.
__device__ __forceinline__ void mbarrier_wait(u32 bar, u32 parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

}  // namespace flashjit
