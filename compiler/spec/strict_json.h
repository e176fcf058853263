// Internal: the one JSON reader behind every JSON text flashjit reads (specs, tuning
// records, the CLI's specs files). On top of nlohmann's parser it enforces what
// docs/spec.md promises and docs/security.md bounds: a size limit checked before parsing,
// no NUL bytes, no byte-order mark, a nesting depth and member counts checked while
// parsing (so a hostile text never builds a deep or huge tree), no duplicate keys, and
// finite numbers. Errors carry the JSON path where the text went wrong.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "flashjit/limits.h"

namespace flashjit::json {

// ordered_json keeps insertion order, which gives the canonical key order on output.
using Json = nlohmann::ordered_json;

struct Limits {
  std::size_t max_bytes = limits::kMaxSpecJsonBytes;
  int max_depth = limits::kMaxJsonDepth;
  std::size_t max_object_members = limits::kMaxJsonObjectMembers;
  std::size_t max_array_elements = limits::kMaxJsonArrayElements;
};

// What went wrong and where: path() is the JSON path ("mask.left", "[3].tile", "" for the
// document itself); reason() is printable UTF-8 without the path.
class ParseError : public std::runtime_error {
 public:
  ParseError(std::string path, std::string reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason), path_(std::move(path)),
        reason_(std::move(reason)) {}
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_, reason_;
};

// Parses `text` under `limits`; throws ParseError.
Json parse(std::string_view text, const Limits& limits = {});

// A short, printable rendering of a value for error messages (never throws, never emits
// invalid UTF-8, at most `max_chars` characters plus "...").
std::string show(const Json& v, std::size_t max_chars = 40);

}  // namespace flashjit::json
