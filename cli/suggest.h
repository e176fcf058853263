// "Did you mean ...?" for mistyped subcommands and options (cli/suggest.cpp). Standard
// library only, so the unit tests compile it in directly.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace flashjit::cli {

// Optimal-string-alignment Damerau–Levenshtein distance: insertions, deletions,
// substitutions and transpositions of two adjacent characters each cost 1 ("arhc" -> "arch": 1).
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate `word` was most likely meant to be, if any: the only candidate that `word` is
// a prefix of ("--comp" -> "--compile-only"), else the nearest within distance 2, and nearer
// than the word is long (leading dashes not counted), so that a short word is not "corrected"
// to anything at all. Ties go to the earlier candidate.
std::optional<std::string> suggest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace flashjit::cli
