// Heuristic tile configs: FlashAttention-2's choices for the same head dims, shrunk until
// they pass the legality budget of the target arch. Used when tuning is off or impossible.
#include "flashjit/heuristics.h"

#include <vector>

#include "flashjit/error.h"
#include "flashjit/ir.h"
#include "flashjit/passes.h"

namespace flashjit {

namespace {
bool fits(const AttentionSpec& spec, const TileConfig& t, const std::string& arch) {
  AttentionSpec s = spec;
  s.tile = t;
  try {
    ir::Kernel k = ir::lower(s);
    passes::run_pipeline(k, arch);
    return true;
  } catch (const LegalityError&) {
    return false;
  }
}
}  // namespace

TileConfig default_tile(const AttentionSpec& spec0, const std::string& arch) {
  const AttentionSpec spec = spec0.normalized();
  const int d = std::max(spec.head_dim, spec.head_dim_v);
  std::vector<TileConfig> candidates;
  if (d <= 64) candidates = {{128, 64, 4, 2}, {64, 64, 4, 2}};
  else if (d <= 128) candidates = {{128, 64, 4, 2}, {128, 32, 4, 2}, {64, 64, 4, 2}};
  else candidates = {{64, 64, 4, 2}, {64, 32, 4, 2}};
  candidates.push_back({64, 32, 4, 2});
  candidates.push_back({16, 16, 1, 2});
  for (const TileConfig& t : candidates)
    if (fits(spec, t, arch)) return t;
  throw LegalityError("flashjit: no tile config fits head_dim=" + std::to_string(spec.head_dim) +
                      " head_dim_v=" + std::to_string(spec.head_dim_v) + " on " + arch);
}

}  // namespace flashjit
