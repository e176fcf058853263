// Suggestions for mistyped names: edit distance and the choice of the nearest candidate.
#include "suggest.h"

#include <algorithm>

namespace flashjit::cli {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  // d[i][j]: distance between the first i chars of a and the first j of b. Names are short
  // (a command line's words), so the full table is cheap and keeps transpositions simple.
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::optional<std::string> suggest(const std::string& word, const std::vector<std::string>& candidates) {
  const std::size_t dashes = std::min(word.find_first_not_of('-'), word.size());
  const std::size_t bare = word.size() - dashes;  // "--arhc" counts as 4 characters
  if (bare == 0) return std::nullopt;             // "-" or "--": nothing to go by

  std::optional<std::string> prefix_of;
  int prefix_matches = 0;
  for (const std::string& c : candidates)
    if (c.size() > word.size() && c.compare(0, word.size(), word) == 0) {
      prefix_of = c;
      ++prefix_matches;
    }
  if (prefix_matches == 1) return prefix_of;  // an abbreviation that names one candidate

  std::optional<std::string> best;
  std::size_t best_distance = 3;  // only distances 1 and 2 suggest (0 would be no typo)
  for (const std::string& c : candidates) {
    const std::size_t dist = edit_distance(word, c);
    if (dist > 0 && dist < best_distance && dist < bare) {
      best = c;
      best_distance = dist;
    }
  }
  return best;
}

}  // namespace flashjit::cli
