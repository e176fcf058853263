// A CPU evaluator of the tile IR, and the naive float64 attention it is checked against.
//
// evaluate() executes the kernel's IR exactly as structured - grid of q tiles, the KV loop
// with its tile classification (empty tiles skipped, full tiles unmasked), the online
// softmax and the epilogue - with inputs and P rounded to the spec's dtype as the GPU
// does. Agreement with reference_attention() proves tiling, masking and online-softmax
// logic in CI, where no GPU exists.
#pragma once

#include <cstdint>
#include <vector>

#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/philox.cuh"

namespace flashjit::eval {

// Dense (batch, heads, seqlen, dim) tensor in float64, contiguous.
struct HostTensor {
  int64_t b = 0, h = 0, s = 0, d = 0;
  std::vector<double> data;
  HostTensor() = default;
  HostTensor(int64_t b_, int64_t h_, int64_t s_, int64_t d_)
      : b(b_), h(h_), s(s_), d(d_), data(static_cast<size_t>(b_ * h_ * s_ * d_)) {}
  double& at(int64_t ib, int64_t ih, int64_t is, int64_t id) { return data[((ib * h + ih) * s + is) * d + id]; }
  double at(int64_t ib, int64_t ih, int64_t is, int64_t id) const { return data[((ib * h + ih) * s + is) * d + id]; }
};

struct Result {
  HostTensor o;            // (b, heads_q, seqlen_q, head_dim_v)
  std::vector<double> lse; // (b, heads_q, seqlen_q); -inf for fully masked rows
  // Tile counts seen by evaluate() (zero for the reference).
  int64_t tiles_skipped = 0, tiles_full = 0, tiles_partial = 0;
};

// Rounds x to the nearest value representable in `dt` (round to nearest even).
double round_to(DType dt, double x);

// `captures`: the tensors the spec's expressions read, in declaration order.
// `dropout`: the call's RNG state, required when the spec has dropout_p > 0 (each kept P
// element is scaled by 1 / (1 - p); philox.cuh says which are dropped).
Result evaluate(const ir::Kernel& k, const HostTensor& q, const HostTensor& kk, const HostTensor& v,
                const std::vector<expr::HostCapture>& captures = {}, const DropoutKey* dropout = nullptr);
Result reference_attention(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k,
                           const HostTensor& v, const std::vector<expr::HostCapture>& captures = {},
                           const DropoutKey* dropout = nullptr);

// The keep-mask of a call with dropout (the debug entry, as FlashAttention-2's
// return_attn_probs shows what was dropped): (batch, heads_q, seqlen_q, seqlen_k) bytes, 1 =
// kept, 0 = dropped, whatever the attention mask (which applies on top). Host-computed from the
// same definition as the kernels' (philox.cuh). SpecError when spec.dropout_p is 0.
std::vector<uint8_t> dropout_keep_mask(const AttentionSpec& spec, int64_t batch, int64_t seqlen_q, int64_t seqlen_k,
                                       const DropoutKey& key);

// The float64 backward of reference_attention for the upstream gradient `dout` (b, heads_q,
// seqlen_q, head_dim_v): dq like q, dk like k, dv like v (GQA: summed over each kv head's
// query heads). A score_mod enters through its symbolic derivative (expr::score_derivative).
// Rows with no visible key get zero gradients; rows a score_mod makes NaN get a NaN dq row
// and give nothing to dk and dv.
// dcaptures[c]: for a float capture c the score_mod reads, d loss / d each of its elements
// (dense, row-major by its sizes); empty for the others.
// o_for_delta: D_i = rowsum(dO ∘ O) from this output (b, heads_q, seqlen_q, head_dim_v)
// rather than the exact one: the backward of the forward a kernel actually ran, whose O is
// rounded to the dtype. A capture gradient is a sum whose terms cancel (each row of dS sums
// to 0), so O's rounding alone moves it far more than the kernel's own fp32 arithmetic does;
// against this reference the kernel's capture gradients are checked tightly.
struct Grads {
  HostTensor dq, dk, dv;
  std::vector<std::vector<double>> dcaptures;
};
Grads reference_attention_backward(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k,
                                   const HostTensor& v, const HostTensor& dout,
                                   const std::vector<expr::HostCapture>& captures = {},
                                   const HostTensor* o_for_delta = nullptr, const DropoutKey* dropout = nullptr);

// The backward as its kernels will tile it (compiler/eval/tiled_backward.cpp): D =
// rowsum(dO ∘ O), then per (batch, kv head, kv tile of spec.tile->block_n keys) dK and dV
// accumulated over the group's q heads and the q tiles (block_m rows) that see the tile, with
// P recomputed from `lse` (natural log, -inf for rows with no key) and P, dS rounded to the
// dtype; dQ reduce-added per q tile. `classify`: skip empty q tiles and leave full ones
// unmasked (band_q_tiles, or interval analysis of a mask expression); false visits and masks
// every tile. The two must agree bit for bit.
struct TiledGrads {
  Grads grads;
  int64_t tiles_skipped = 0, tiles_full = 0, tiles_partial = 0;
};
TiledGrads tiled_backward(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k, const HostTensor& v,
                          const HostTensor& o, const std::vector<double>& lse, const HostTensor& dout,
                          const std::vector<expr::HostCapture>& captures = {}, bool classify = true,
                          const DropoutKey* dropout = nullptr);

}  // namespace flashjit::eval
