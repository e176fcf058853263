// Lowering: a validated AttentionSpec (tile set) -> the tile IR of the forward kernel.
//
// The IR is FlashAttention-2's algorithm spelled out as tile ops: one block per q tile
// keeps its output accumulator and softmax state in registers and streams K/V tiles.
// No optimisation happens here; passes decide which tiles to skip or mask and how
// loads are pipelined.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "flashjit/codegen.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/philox.cuh"

namespace flashjit::ir {
namespace {

Elem elem_of(DType d) { return d == DType::bf16 ? Elem::bf16 : Elem::f16; }

Op make(OpKind kind, std::vector<std::string> results, std::vector<std::string> operands, TileType type,
        std::map<std::string, Attr> attrs = {}) {
  return Op{kind, std::move(results), std::move(operands), std::move(attrs), type};
}

BandMask band_of(const MaskSpec& m, const std::vector<expr::CaptureDecl>& caps) {
  BandMask b;
  b.bottom_right = m.align == MaskAlign::bottom_right;
  switch (m.kind) {
    case MaskKind::custom:
      // A band written as an expression gets the band's kernel; lower() handles the rest.
      if (const auto band = expr::as_band(*expr::parse_cached(m.expr, expr::Context{false, caps}))) {
        b.bottom_right = band->bottom_right;
        if (band->empty) b.lo = 1, b.hi = 0;  // no key visible
        else b.lo = band->lo, b.hi = band->hi;
      }
      break;
    case MaskKind::none: break;
    case MaskKind::causal: b.hi = 0; break;
    case MaskKind::sliding_window:
      if (m.left >= 0) b.lo = -static_cast<int64_t>(m.left);
      if (m.right >= 0) b.hi = m.right;
      break;
  }
  return b;
}

}  // namespace

LoopMask loop_mask(const AttentionSpec& input) {
  const AttentionSpec spec = input.normalized();
  LoopMask m;
  m.band = band_of(spec.mask, spec.captures);
  if (spec.mask.kind == MaskKind::custom &&
      !expr::as_band(*expr::parse_cached(spec.mask.expr, expr::Context{false, spec.captures})))
    m.expr = spec.mask.expr;
  return m;
}

Kernel lower(const AttentionSpec& input) {
  const AttentionSpec spec = input.normalized();
  if (!spec.tile) throw std::logic_error("ir::lower: the spec has no tile config (fill it with default_tile first)");
  const TileConfig& t = *spec.tile;
  const Elem in = elem_of(spec.dtype);
  const int d = spec.head_dim, dv = spec.head_dim_v;

  Kernel k;
  k.name = codegen::kernel_name(spec);
  k.spec = spec;
  const int producers = t.pipeline == PipelineKind::tma_ws ? 4 : 0;
  k.grid = Grid{t.block_m, t.block_n, t.warps - producers, producers, spec.gqa_group(), spec.mask.kind != MaskKind::none};

  const TileType q_t{in, t.block_m, d, Space::shared};
  const TileType acc_t{Elem::f32, t.block_m, dv, Space::regs};
  const TileType row_t{Elem::f32, t.block_m, 1, Space::regs};
  k.prologue = {
      make(OpKind::load_tile, {"q"}, {}, q_t, {{"tensor", std::string("Q")}, {"index", std::string("q_tile")}}),
      make(OpKind::fill, {"o"}, {}, acc_t, {{"value", 0.0}}),
      make(OpKind::fill, {"m"}, {}, row_t, {{"value", -INFINITY}}),
      make(OpKind::fill, {"l"}, {}, row_t, {{"value", 0.0}}),
  };

  // With a score_mod the scores are scaled before it, so the softmax only converts to log2.
  const bool score_mod = !spec.score_mod.empty();
  const double scale_log2 = score_mod ? M_LOG2E : spec.effective_scale() * M_LOG2E;
  const std::string mma = to_string(t.mma);  // which tensor-core instructions the GEMMs use
  const LoopMask lm = loop_mask(spec);
  k.loop.mask = lm.band;
  k.loop.mask_expr = lm.expr;
  std::map<std::string, Attr> mask_attrs = {{"when", std::string("always")}};
  if (!k.loop.mask_expr.empty()) mask_attrs["expr"] = k.loop.mask_expr;
  k.loop.body = {
      make(OpKind::load_tile, {"k"}, {}, TileType{in, t.block_n, d, Space::shared},
           {{"tensor", std::string("K")}, {"index", std::string("kv")}}),
      make(OpKind::gemm, {"s"}, {"q", "k"}, TileType{Elem::f32, t.block_m, t.block_n, Space::regs},
           {{"transpose_b", true}, {"mma", mma}}),
      make(OpKind::apply_mask, {"s"}, {"s"}, TileType{Elem::f32, t.block_m, t.block_n, Space::regs}, mask_attrs),
      make(OpKind::online_softmax, {"p", "m", "l", "o"}, {"s", "m", "l", "o"},
           TileType{in, t.block_m, t.block_n, Space::regs}, {{"scale_log2", scale_log2}}),
      make(OpKind::load_tile, {"v"}, {}, TileType{in, t.block_n, dv, Space::shared},
           {{"tensor", std::string("V")}, {"index", std::string("kv")}}),
      make(OpKind::gemm, {"o"}, {"p", "v", "o"}, acc_t, {{"accumulate", true}, {"mma", mma}}),
  };

  if (score_mod) {  // right after S = Q·Kᵀ: FlexAttention's order (score_mod, then the mask)
    const Op op = make(OpKind::score_mod, {"s"}, {"s"}, TileType{Elem::f32, t.block_m, t.block_n, Space::regs},
                       {{"expr", spec.score_mod}, {"scale", spec.effective_scale()}});
    k.loop.body.insert(k.loop.body.begin() + 2, op);
  }

  // Dropout on P after the softmax statistics took it whole (l sums undropped P), before P·V;
  // the finalize scales the kept elements by 1 / (1 - p) with p as the threshold rounds it.
  std::map<std::string, Attr> finalize_attrs;
  if (spec.dropout_p > 0) {
    const uint32_t threshold = dropout_threshold(spec.dropout_p);
    auto at = std::find_if(k.loop.body.begin(), k.loop.body.end(),
                           [](const Op& op) { return op.kind == OpKind::online_softmax; });
    k.loop.body.insert(at + 1, make(OpKind::dropout, {"p"}, {"p"}, TileType{in, t.block_m, t.block_n, Space::regs},
                                    {{"p", spec.dropout_p}, {"threshold", int64_t(threshold)}}));
    finalize_attrs["dropout_scale"] = dropout_keep_scale(threshold);
  }

  k.epilogue = {make(OpKind::finalize, {"out"}, {"o", "l"}, TileType{in, t.block_m, dv, Space::regs}, finalize_attrs),
                make(OpKind::store_tile, {}, {"out"}, TileType{in, t.block_m, dv, Space::global},
                     {{"tensor", std::string("O")}, {"index", std::string("q_tile")}})};
  if (spec.return_lse)
    k.epilogue.push_back(make(OpKind::store_lse, {}, {"m", "l"}, TileType{Elem::f32, t.block_m, 1, Space::global},
                              {{"tensor", std::string("LSE")}, {"index", std::string("q_tile")}}));
  return k;
}

}  // namespace flashjit::ir
