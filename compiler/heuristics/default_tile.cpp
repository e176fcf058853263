// Heuristic tile configs, used when tuning is off or impossible. On sm_90a the wgmma path
// with two warpgroups (FlashAttention-3's 128-row blocks); elsewhere, and for head dims the
// wgmma path does not take, FlashAttention-2's choices for the same head dims. Each list is
// shrunk until a config passes validation and the legality budget of the target arch.
#include "flashjit/heuristics.h"

#include <vector>

#include "flashjit/error.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/passes.h"

namespace flashjit {

namespace {
bool fits(const AttentionSpec& spec, const TileConfig& t, const std::string& arch) {
  AttentionSpec s = spec;
  s.tile = t;
  try {
    validate(t, s);
    ir::Kernel k = ir::lower(s);
    passes::run_pipeline(k, arch);
    return true;
  } catch (const LegalityError&) {
    return false;
  } catch (const SpecError&) {  // e.g. a wgmma config for a head dim it does not take
    return false;
  }
}
}  // namespace

TileConfig default_tile(const AttentionSpec& spec0, const std::string& arch) {
  const AttentionSpec spec = spec0.normalized();
  const int d = std::max(spec.head_dim, spec.head_dim_v);
  std::vector<TileConfig> candidates;
  if (arch == "sm_90a") {
    const MmaKind w = MmaKind::wgmma;
    // A mask expression that reads a captured tensor per element (doc[kv_idx]) holds a
    // loaded value per score column: at block_n 128 that spills (ptxas, document mask:
    // 216 bytes at head dim 128, 48 at 64), at block_n 64 it does not (233 / 174 registers).
    const bool reads_per_element =
        spec.mask.kind == MaskKind::custom &&
        expr::parse_cached(spec.mask.expr, expr::Context{false, spec.captures})->reads_captures();
    if (d <= 128 && !reads_per_element) candidates = {{128, 128, 8, 2, w}, {128, 64, 8, 2, w}};
    else if (d <= 128) candidates = {{128, 64, 8, 2, w}};
    else candidates = {{128, 64, 8, 2, w}, {64, 64, 4, 2, w}};
  }
  const auto add = [&](std::initializer_list<TileConfig> more) { candidates.insert(candidates.end(), more); };
  if (d <= 64) add({{128, 64, 4, 2}, {64, 64, 4, 2}});
  else if (d <= 128) add({{128, 64, 4, 2}, {128, 32, 4, 2}, {64, 64, 4, 2}});
  else add({{64, 64, 4, 2}, {64, 32, 4, 2}});
  candidates.push_back({64, 32, 4, 2});
  candidates.push_back({16, 16, 1, 2});
  for (const TileConfig& t : candidates)
    if (fits(spec, t, arch)) return t;
  throw LegalityError("flashjit: no tile config fits head_dim=" + std::to_string(spec.head_dim) +
                      " head_dim_v=" + std::to_string(spec.head_dim_v) + " on " + arch);
}

}  // namespace flashjit
