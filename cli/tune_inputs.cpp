// Inputs of `flashjit tune`: the specs file and the --shapes list.
#include <fmt/format.h>

#include <sstream>

#include "cli.h"
#include "flashjit/error.h"
#include "flashjit/file_input.h"
#include "flashjit/limits.h"
#include "strict_json.h"

namespace flashjit::cli {

namespace {
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
  return parts;
}

// A spec of the file, validated, with what to call it in messages.
AttentionSpec parse_one(const std::string& json, const std::string& where) {
  try {
    AttentionSpec spec = spec_from_json(json);
    validate(spec);
    return spec;
  } catch (const SpecError& e) {
    throw ArgumentError("--specs", fmt::format("{}: {}", where, e.what()));
  }
}
}  // namespace

std::vector<AttentionSpec> load_specs_file(const std::string& path) {
  // Bounded and non-blocking: /dev/zero, a FIFO or a directory is an error, not a hang.
  const std::string text = read_input_file(path, limits::kMaxSpecsFileBytes, "--specs");
  std::vector<AttentionSpec> specs;
  const std::string body = trim(text);
  if (!body.empty() && body[0] == '[') {
    json::Json array;
    try {
      // The array's elements are specs: one level deeper than a spec, as many as allowed.
      json::Limits lim;
      lim.max_bytes = limits::kMaxSpecsFileBytes;
      lim.max_depth = limits::kMaxJsonDepth + 1;
      array = json::parse(body, lim);
    } catch (const json::ParseError& e) {
      throw ArgumentError("--specs", fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    if (!array.is_array()) throw ArgumentError("--specs", fmt::format("{}: expected a JSON array of specs", path));
    for (std::size_t i = 0; i < array.size(); ++i)
      specs.push_back(parse_one(array[i].dump(), fmt::format("{}: element {}", path, i)));
  } else {
    // One spec per line (JSON Lines); blank lines and '#' comments are skipped.
    const std::vector<std::string> lines = split(text, '\n');
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string line = trim(lines[i]);
      if (line.empty() || line[0] == '#') continue;
      specs.push_back(parse_one(line, fmt::format("{}:{}", path, i + 1)));
    }
  }
  if (specs.empty()) throw ArgumentError("--specs", fmt::format("{} holds no spec", path));
  for (AttentionSpec& s : specs) s = without_tile(s);  // the tile is what tuning chooses
  return specs;
}

std::vector<TuneShape> parse_shapes(const std::string& text, const std::string& option) {
  std::vector<TuneShape> shapes;
  for (const std::string& item0 : split(text, ';')) {
    const std::string item = trim(item0);
    if (item.empty()) continue;
    TuneShape s;
    bool have_b = false, have_sq = false, have_sk = false;
    for (const std::string& kv0 : split(item, ',')) {
      const std::string kv = trim(kv0);
      const auto eq = kv.find('=');
      const std::string name = trim(kv.substr(0, eq));
      const std::string value = eq == std::string::npos ? "" : trim(kv.substr(eq + 1));
      long long n = 0;
      std::size_t used = 0;
      try {
        n = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || n < 1 || n > (1LL << 31))
        throw UsageError(fmt::format("{}: '{}' in '{}' needs a positive integer value (NAME=N)", option, kv, item));
      if (name == "b") s.batch = n, have_b = true;
      else if (name == "sq") s.seqlen_q = n, have_sq = true;
      else if (name == "sk") s.seqlen_k = n, have_sk = true;
      else throw UsageError(fmt::format("{}: unknown name '{}' in '{}'; allowed: b, sq, sk", option, name, item));
    }
    if (!have_b || !have_sq)
      throw UsageError(
          fmt::format("{}: '{}' needs b and sq (sk defaults to sq), e.g. b=4,sq=4096,sk=4096", option, item));
    if (!have_sk) s.seqlen_k = s.seqlen_q;
    shapes.push_back(s);
  }
  if (shapes.empty()) throw UsageError(fmt::format("{0} is empty; e.g. {0} 'b=4,sq=4096,sk=4096;b=1,sq=16384'", option));
  return shapes;
}

std::string describe(const AttentionSpec& spec0) {
  const AttentionSpec s = spec0.normalized();
  std::string d = fmt::format("{} d{}", to_string(s.dtype), s.head_dim);
  if (s.head_dim_v != s.head_dim) d += fmt::format("/{}", s.head_dim_v);
  d += fmt::format(" {} h{}/{}", to_string(s.mask.kind), s.num_heads_q, s.num_heads_kv);
  if (s.mask.kind == MaskKind::sliding_window) d += fmt::format(" window({},{})", s.mask.left, s.mask.right);
  if (s.dropout_p > 0) d += fmt::format(" dropout={}", s.dropout_p);
  if (s.return_lse) d += " lse";
  return d;
}

std::string describe(const TuneShape& s) { return fmt::format("b={} sq={} sk={}", s.batch, s.seqlen_q, s.seqlen_k); }

}  // namespace flashjit::cli
