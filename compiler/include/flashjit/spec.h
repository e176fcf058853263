// AttentionSpec: the user's description of one attention variant.
//
// A plain value: hashable, printable, JSON round-trip, validated with errors that
// name the bad field. Field names follow the public JSON format in docs/spec.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit {

enum class DType { f16, bf16 };
// custom: a mask expression (docs/expressions.md) in MaskSpec::expr.
enum class MaskKind { none, causal, sliding_window, custom };
// Where the diagonal of a causal / windowed mask sits when seqlen_q != seqlen_k.
//   top_left:     query i sees key j iff j <= i                      (PyTorch SDPA is_causal)
//   bottom_right: query i sees key j iff j <= i + seqlen_k - seqlen_q (FlashAttention >= 2.1)
enum class MaskAlign { top_left, bottom_right };
// Which tensor-core instructions the kernel's GEMMs use.
//   mma_sync: warp-level mma.sync m16n8k16 (sm_80 and later), each warp owns its Q rows
//   wgmma:    warpgroup-level wgmma.mma_async (sm_90a only), each warpgroup of 4 warps
//             owns 64 Q rows; operands in 128-byte-swizzled shared memory
enum class MmaKind { mma_sync, wgmma };
// How K and V reach shared memory (and who waits for them).
//   cp_async: every thread copies its share with cp.async, every warp computes (sm_80+)
//   tma_ws:   warp-specialised (sm_90a, wgmma only): a producer warpgroup issues TMA bulk
//             copies into mbarrier rings, the other warpgroups only compute; warps counts
//             the producer's 4 too (templates/flashjit/fwd_ws_sm90.cuh)
enum class PipelineKind { cp_async, tma_ws };

struct MaskSpec {
  MaskKind kind = MaskKind::none;
  MaskAlign align = MaskAlign::bottom_right;
  // sliding_window only: query i (aligned index a = i + offset) sees keys in
  // [a - left, a + right]; -1 means unbounded on that side (FlashAttention's window_size).
  int left = -1;
  int right = -1;
  // custom only: the mask expression; normalized() holds its canonical text. align does not
  // apply (an expression says its alignment with seqlen_q / seqlen_k).
  std::string expr;

  bool operator==(const MaskSpec& o) const {
    return kind == o.kind && align == o.align && left == o.left && right == o.right && expr == o.expr;
  }
};

// The tunable part. Absent in a spec means "autotune or heuristic".
struct TileConfig {
  int block_m = 128;  // query rows per thread block
  int block_n = 64;   // key rows per KV tile
  int warps = 4;      // warps per block; each warp owns block_m / warps query rows
  int stages = 2;     // K/V shared-memory pipeline depth (cp.async ring)
  MmaKind mma = MmaKind::mma_sync;
  PipelineKind pipeline = PipelineKind::cp_async;
  // tma_ws with 2 consumer warpgroups only: they take turns on the tensor cores (named
  // barriers), so that one's softmax runs while the other's GEMMs do (FlashAttention-3).
  bool pingpong = false;
  // tma_ws only: one block per SM walks the (q tile, head, batch) items, longest rows first
  // for causal and banded masks; the producer loads the next item while the consumers finish.
  bool persistent = false;

  bool operator==(const TileConfig& o) const {
    return block_m == o.block_m && block_n == o.block_n && warps == o.warps && stages == o.stages && mma == o.mma &&
           pipeline == o.pipeline && pingpong == o.pingpong && persistent == o.persistent;
  }
};

struct AttentionSpec {
  DType dtype = DType::bf16;
  int head_dim = 0;      // required
  int head_dim_v = 0;    // 0 in a freshly built spec means "same as head_dim" (see normalized())
  int num_heads_q = 1;
  int num_heads_kv = 0;  // 0 means "same as num_heads_q"
  MaskSpec mask;
  std::optional<double> softmax_scale;  // default 1/sqrt(head_dim)
  bool return_lse = false;
  double dropout_p = 0.0;
  // A score modification (docs/expressions.md): empty = none.
  std::string score_mod;
  // Tensors the mask and score expressions read, by name, dtype and rank (not their sizes).
  std::vector<expr::CaptureDecl> captures;
  std::optional<TileConfig> tile;

  // Defaults filled in (head_dim_v, num_heads_kv), expressions in canonical text (those that
  // parse). Does not validate.
  AttentionSpec normalized() const;
  double effective_scale() const;
  bool has_expressions() const { return mask.kind == MaskKind::custom || !score_mod.empty(); }
  int gqa_group() const;  // num_heads_q / num_heads_kv of the normalized spec

  bool operator==(const AttentionSpec& o) const;
};

// --- JSON (nlohmann is kept out of this header) ---------------------------------
// Parses the public JSON format; throws SpecError naming the field on bad input.
AttentionSpec spec_from_json(const std::string& json_text);
// Canonical JSON: normalized, every field present, stable key order, no whitespace.
std::string spec_to_json(const AttentionSpec& spec, bool pretty = false);

// Throws SpecError naming the first bad field and listing what is allowed.
void validate(const AttentionSpec& spec);
void validate(const TileConfig& tile, const AttentionSpec& spec);

// Stable 64-bit hash of the canonical JSON (same on every platform and run).
uint64_t spec_hash(const AttentionSpec& spec);
// The same spec with the tile removed: the key under which tuning results are stored.
AttentionSpec without_tile(const AttentionSpec& spec);

// Short names used in JSON, kernel names and messages.
const char* to_string(DType);
const char* to_string(MaskKind);
const char* to_string(MaskAlign);
const char* to_string(MmaKind);
const char* to_string(PipelineKind);
int dtype_size(DType);

// The head dims the templates support.
inline constexpr int kSupportedHeadDims[] = {32, 64, 96, 128, 192, 256};

}  // namespace flashjit
