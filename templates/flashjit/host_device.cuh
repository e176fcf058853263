// FJ_HOST_DEVICE: functions compiled for the host (passes, CPU evaluator) and the device
// (generated kernels) from one definition, so both compute bit-identical results.
#pragma once

#ifdef __CUDACC__
#define FJ_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FJ_HOST_DEVICE inline
#endif
