// The backward pass (docs/architecture.md, "Backward"): three kernels for one spec.
//
//   flashjit::forward(spec_with_lse, q, k, v, o, &lse, stream);
//   flashjit::backward(spec, q, k, v, o, lse, dout, dq, dk, dv, stream);
//
//   bwd_preprocess  D = rowsum(dO ∘ O) in fp32; the fp32 dQ accumulator zeroed
//   bwd_dkdv        per block of keys: dK, dV in registers over every q tile that sees the
//                   keys (the group's query heads summed: GQA), P recomputed from the LSE;
//                   dQ partials reduce-added (fp32 atomics) into the accumulator
//   bwd_dq_convert  dQ = accumulator · softmax_scale in the dtype
// The order of the atomic additions varies run to run, so dQ may differ in its last bits
// between runs; dK and dV are bit-identical (each is summed by one block, in order).
// BackwardOptions::deterministic: bwd_dkdv leaves dQ alone and bwd_dq (q-stationary: per
// block of queries, S and dP recomputed over the key tiles) writes it without atomics, so
// dQ is bit-identical too; no accumulator, no convert.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"
#include "flashjit/runtime.h"

namespace flashjit {

struct BackwardOptions {
  // The bwd_dkdv tile (block_m: q rows per q tile, block_n: keys per block, warps, stages 1 or
  // 2); empty: default_bwd_tile() for the spec and the device (heuristics.h).
  std::optional<TileConfig> tile;
  // At least backward_workspace_bytes(), 16-byte aligned, used on `stream` only; null: the
  // call allocates it stream-ordered (cuMemAllocAsync) and frees it after the last kernel.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // Bit-identical dQ, dK, dV run to run: dQ by the bwd_dq kernel instead of atomics (costs a
  // second computation of S and dP; docs/performance.md has the measured cost).
  bool deterministic = false;
  // Gradients of captured tensors (a learnable bias table, ALiBi slopes): one view per capture,
  // in the spec's order (empty: none); a view with null data skips its capture. Each is
  // float32 with its capture's rank and sizes, contiguous. The call zeroes them and adds
  // dL/d(capture) with fp32 atomics (not bit-identical run to run, deterministic or not).
  // Only captures the score_mod reads on a differentiable path may have one
  // (codegen::score_grad_captures; an ArgumentError names any other).
  std::vector<TensorView> capture_grads;
  // Dropout (spec.dropout_p > 0): the RNG state the forward ran with. The kernels regenerate
  // its mask from it (philox.cuh), so the forward's and the backward's tiles need not agree.
  DropoutRng dropout;
};

// The fp32 scratch of one call: D (batch · heads_q · seqlen_q) and the dQ accumulator
// (batch · heads_q · seqlen_q · head_dim), each rounded up to 256 bytes.
size_t backward_workspace_bytes(const AttentionSpec& spec, int64_t batch, int64_t seqlen_q);

// dq, dk, dv of attention for the upstream gradient dout: q, k, v and o, lse as the forward
// took and gave them (lse: float32 (batch, heads_q, seqlen_q), natural log, −inf for a row
// with no visible key; run the forward with return_lse). dout like o, dq like q, dk like k, dv
// like v; any batch/head/row strides (multiples of 8 elements), last dim contiguous. Rows
// with no visible key get zero gradients. Everything is checked before any launch
// (ArgumentError naming the tensor and what is allowed).
void backward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
              const TensorView& o, const TensorView& lse, const TensorView& dout, const TensorView& dq,
              const TensorView& dk, const TensorView& dv, CUstream_st* stream,
              const std::vector<TensorView>& captures = {}, const BackwardOptions& options = {});

// The kernels one by one (no GPU needed when options.arch is given), for the CLI and tests.
std::string emit_bwd_preprocess_cuda(const AttentionSpec& spec);
CompiledKernel compile_bwd_preprocess(const AttentionSpec& spec, const CompileOptions& options = {});
// bwd_dkdv with `tile`, or default_bwd_tile() for arch (empty arch: sm_80 to emit, the device's to compile).
std::string emit_bwd_dkdv_cuda(const AttentionSpec& spec, const std::string& arch = "",
                               const std::optional<TileConfig>& tile = std::nullopt);
// dq_partials false: the deterministic mode's bwd_dkdv (no dQ; its own kernel name).
CompiledKernel compile_bwd_dkdv(const AttentionSpec& spec, const CompileOptions& options = {},
                                const std::optional<TileConfig>& tile = std::nullopt, bool dq_partials = true,
                                bool capture_grads = false);
std::string emit_bwd_dq_convert_cuda(const AttentionSpec& spec);
CompiledKernel compile_bwd_dq_convert(const AttentionSpec& spec, const CompileOptions& options = {});
// The deterministic mode's dQ kernel, with default_bwd_dq_tile() for arch (spec.tile not read).
std::string emit_bwd_dq_cuda(const AttentionSpec& spec, const std::string& arch = "");
CompiledKernel compile_bwd_dq(const AttentionSpec& spec, const CompileOptions& options = {});

// Fills d and zeroes dq_accum on `stream` (the first kernel alone). o and dout: (batch,
// heads_q, seqlen_q, head_dim_v) of the spec's dtype, laid out as above; d and dq_accum
// contiguous float32.
void backward_preprocess(const AttentionSpec& spec, const TensorView& o, const TensorView& dout, const TensorView& d,
                         const TensorView& dq_accum, CUstream_st* stream);

}  // namespace flashjit
