// The backward's first kernel: for ROWS query rows of one (batch, head), D[i] = Σ_d dO[i,d]·O[i,d]
// in fp32 (the softmax's share of dS = P ∘ (dP − D)), and the rows' fp32 dQ accumulator set
// to zero for the dK/dV kernel to reduce-add into. Memory-bound: 16-byte loads of O and dO,
// several rows per warp when a row is shorter than 32 chunks.
//
// Each row's sum has a fixed order (lanes' partial sums, then a butterfly over the lanes of
// the row), so D is bit-identical run to run.
#pragma once

#include "flashjit/bwd_params.cuh"
#include "flashjit/expr_ops.cuh"

namespace flashjit {

struct alignas(16) Bits16x8 {
  unsigned short v[8];
};

template <bool BF16>
__device__ __forceinline__ float bwd_to_float(unsigned short bits) {
  return BF16 ? fj_bf16_bits_to_float(bits) : fj_f16_bits_to_float(bits);
}

// ROWS rows per thread block of THREADS threads; grid (ceil(seqlen_q / ROWS), heads_q, batch).
template <bool BF16, int D, int DV, int ROWS, int THREADS>
__device__ __forceinline__ void bwd_preprocess(const BwdPreprocessParams& p) {
  static_assert(DV % 8 == 0 && D % 4 == 0, "rows are read as 16-byte chunks, dQ zeroed as float4");
  constexpr int kChunks = DV / 8;  // 16-byte chunks of a row
  // Lanes per row: the power of two at or above kChunks (at most 32); 32 / kLanes rows a step.
  constexpr int kLanes = kChunks <= 4 ? 4 : kChunks <= 8 ? 8 : kChunks <= 16 ? 16 : 32;
  constexpr int kRowsPerWarpStep = 32 / kLanes;
  constexpr int kWarps = THREADS / 32;
  // Every lane of a warp runs the same number of row steps, so the butterfly converges.
  static_assert(ROWS % (kWarps * kRowsPerWarpStep) == 0, "ROWS must be a multiple of the rows one step covers");
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int row0 = blockIdx.x * ROWS;
  const int rows = min(ROWS, p.seqlen_q - row0);
  const long long bh = (long long)batch * p.num_heads_q + head;

  const unsigned char* o = static_cast<const unsigned char*>(p.o) +
                           2 * (batch * p.o_batch_stride + head * p.o_head_stride);
  const unsigned char* dout = static_cast<const unsigned char*>(p.dout) +
                              2 * (batch * p.dout_batch_stride + head * p.dout_head_stride);
  const int sub = lane / kLanes, chunk = lane % kLanes;
  for (int r = warp * kRowsPerWarpStep + sub; r < ROWS; r += kWarps * kRowsPerWarpStep) {
    float acc = 0.f;
    for (int c = chunk; c < kChunks; c += kLanes) {
      if (r >= rows) break;
      const long long i = row0 + r;
      const Bits16x8 a = *reinterpret_cast<const Bits16x8*>(o + 2 * (i * p.o_row_stride + 8 * c));
      const Bits16x8 b = *reinterpret_cast<const Bits16x8*>(dout + 2 * (i * p.dout_row_stride + 8 * c));
#pragma unroll
      for (int e = 0; e < 8; ++e) acc = fmaf(bwd_to_float<BF16>(a.v[e]), bwd_to_float<BF16>(b.v[e]), acc);
    }
    // Every lane of the warp runs the butterfly (rows past the end add zeros).
#pragma unroll
    for (int m = kLanes / 2; m >= 1; m /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, m);
    if (chunk == 0 && r < rows) p.d[bh * p.seqlen_q + row0 + r] = acc;
  }

  // dQ accumulator rows [row0, row0 + rows): contiguous, so one flat float4 loop. None in the
  // deterministic mode (bwd_dq writes dQ itself).
  if (p.dq_accum == nullptr) return;
  float4* dq = reinterpret_cast<float4*>(p.dq_accum + (bh * p.seqlen_q + row0) * D);
  const int n4 = rows * (D / 4);
  for (int k = tid; k < n4; k += THREADS) dq[k] = make_float4(0.f, 0.f, 0.f, 0.f);
}

}  // namespace flashjit
