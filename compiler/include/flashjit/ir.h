// The tile IR: one attention kernel as a grid mapping plus a loop over KV tiles.
//
//   kernel @flashjit_fwd_... {
//     grid q_tile x head_q x batch ...
//     %q   = load_tile Q[q_tile] ...        <- prologue
//     for %kv in kv_tiles(...) { ... }      <- the KV loop (body ops)
//     %out = finalize %o, %l ...            <- epilogue
//   }
//
// Values are named tiles ("%q", "%s", ...) with a static type (element type, shape,
// where they live). Ops are statements over those names with attributes. The IR is
// deliberately small: enough structure for passes (tile classification, pipelining,
// legality) and for two back ends (CUDA codegen and the CPU evaluator) to agree on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit::ir {

enum class Elem { f16, bf16, f32 };
enum class Space { global, shared, regs };

struct TileType {
  Elem elem = Elem::f32;
  int rows = 0;
  int cols = 0;  // 1 for per-row vectors (softmax max / sum)
  Space space = Space::regs;
  bool operator==(const TileType& o) const {
    return elem == o.elem && rows == o.rows && cols == o.cols && space == o.space;
  }
};

enum class OpKind {
  load_tile,       // %t = load_tile <tensor>[<index>]         operands: {}       attrs: tensor, index
  fill,            // %t = fill <value>                         attrs: value
  gemm,            // %c = gemm %a, %b [transpose_b] [, %acc]    attrs: transpose_b, accumulate
  apply_mask,      // %s = apply_mask %s                         attrs: when ("always" | "partial"), [expr]
  score_mod,       // %s = score_mod %s                          attrs: expr, scale (s = expr(score = s * scale))
  online_softmax,  // %p = online_softmax %s, %m, %l, %o         attrs: scale_log2 (updates m, l, o)
  dropout,         // %p = dropout %p                            attrs: p, threshold (zeroes dropped P;
                   //   l keeps the undropped sum; philox.cuh says which elements)
  finalize,        // %out = finalize %o, %l                     (O / l, 0 where l == 0)
                   //   [dropout_scale: O · scale / l, the 1 / (1 - p) of the kept elements]
  store_tile,      // store_tile <tensor>[<index>], %t
  store_lse,       // store_lse LSE[<index>], %m, %l             (natural log; -inf where l == 0)
  async_copy,      // async_copy <tensor>[<index>] -> stage <k>  (inserted by pipeline_loads)
  wait_copies,     // wait_copies <pending>                      (inserted by pipeline_loads)
};

using Attr = std::variant<int64_t, double, std::string, bool>;

struct Op {
  OpKind kind;
  std::vector<std::string> results;   // names without '%'
  std::vector<std::string> operands;  // names without '%'
  std::map<std::string, Attr> attrs;  // printed in key order
  TileType type;                      // type of results[0] (when it has results)

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t int_attr(const std::string& k) const;
  double float_attr(const std::string& k) const;
  const std::string& str_attr(const std::string& k) const;
  bool bool_attr(const std::string& k) const;
};

// key j is visible to query i iff  0 <= j < seqlen_k  and  lo <= j - i - offset <= hi,
// offset = seqlen_k - seqlen_q for bottom-right alignment, 0 for top-left.
// causal = {lo: none, hi: 0}; sliding_window(left, right) = {lo: -left, hi: right}.
struct BandMask {
  std::optional<int64_t> lo;
  std::optional<int64_t> hi;
  bool bottom_right = true;
  bool is_trivial() const { return !lo && !hi; }  // only the seqlen_k bound
};

// How the KV loop treats tiles; filled in by the classify_tiles pass.
struct TileClassification {
  bool analysed = false;
  bool by_interval = false;     // per tile, by interval analysis of the loop's mask expression
  bool skip_empty = false;      // iterate only over tiles with at least one visible key
  bool unmasked_full = false;   // tiles where every key is visible run with no mask arithmetic
};

struct KvLoop {
  std::string induction = "kv";
  BandMask mask;
  // A mask expression that is not a band (canonical text; empty: the band alone). Visible
  // keys are those inside the band for which it is true; the band is trivial then.
  std::string mask_expr;
  TileClassification classes;
  int stages = 1;               // set by pipeline_loads: K/V ring depth (1 = synchronous)
  std::vector<Op> body;
};

struct Grid {
  int block_m = 0;              // query rows per block (q_tile size)
  int block_n = 0;              // key rows per KV tile
  int warps = 0;                // warps that compute (own query rows)
  int producer_warps = 0;       // warps that only copy (tile.pipeline = tma_ws: one warpgroup)
  int gqa_group = 1;            // head_kv = head_q / gqa_group
  bool reverse_q_tiles = false; // launch the longest rows first (causal load balance)
};

// Results of the legality pass (resource estimate for the target arch).
struct Resources {
  std::string arch;
  int smem_bytes = 0;
  int smem_limit = 0;
  int est_registers = 0;        // per thread, fragments only (lower bound)
  int threads = 0;
};

struct Kernel {
  std::string name;
  AttentionSpec spec;           // normalized, tile set
  Grid grid;
  std::vector<Op> prologue;
  KvLoop loop;
  std::vector<Op> epilogue;
  std::optional<Resources> resources;
  std::vector<std::string> passes_run;
};

// --- construction / inspection ---------------------------------------------------
// Lowers a validated spec (tile must be set) to the tile IR before any pass.
Kernel lower(const AttentionSpec& spec);
// The mask as the kernels' loops see it (every kind): a band in closed form (built-ins, and
// expressions recognised as bands), else `expr`, the expression classified per tile.
struct LoopMask {
  BandMask band;
  std::string expr;  // empty: the band is the whole mask
};
LoopMask loop_mask(const AttentionSpec& spec);

// Shared memory of the tile list a classified loop builds (templates/flashjit/kv_tiles.cuh:
// kTileListCap + 32 ints), after the kernel's plan; generated kernels static_assert that the
// host and device agree.
inline constexpr int kTileListBytes = (256 + 32) * 4;

// The textual form (stable; golden tests match it with FileCheck).
std::string print(const Kernel& k);
std::string print(const Op& op);  // one op, as in print(Kernel), without indent or newline
std::string to_string(OpKind);
std::string to_string(Elem);
std::string to_string(const TileType&);

// Checks structural invariants (defined-before-use, types of gemm operands, one
// online_softmax per loop, ...). Throws std::logic_error listing every problem.
void verify(const Kernel& k);

// Finds the first op of a kind in prologue, loop body, epilogue (null if none).
const Op* find_op(const Kernel& k, OpKind kind);

}  // namespace flashjit::ir
