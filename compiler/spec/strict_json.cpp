// The strict JSON reader (strict_json.h). nlohmann's parser is iterative, so depth itself
// cannot overflow its stack; what must not happen is building (and later recursing over,
// to print or destroy) a tree deeper or wider than any flashjit document. The parser
// callback sees every event as it happens, so the limits stop the parse early, and the
// path it tracks names the field in every error, nlohmann's own ones included.
#include "strict_json.h"

#include <fmt/format.h>

#include <set>
#include <vector>

#include "flashjit/error.h"

namespace flashjit::json {
namespace {

struct Frame {
  bool array = false;
  std::string key;            // object: the member being read
  std::size_t count = 0;      // members or elements read so far
  std::set<std::string> keys;  // object: every key seen, for duplicate detection
};

class Tracker {
 public:
  explicit Tracker(const Limits& limits) : limits_(limits) {}

  bool on_event(Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        // Reported at the top-level field that holds the deep value: its full path is
        // the limit's worth of "[0]"s, which says nothing more.
        if (static_cast<int>(frames_.size()) >= limits_.max_depth)
          throw ParseError(path(1), fmt::format("nesting deeper than {} levels; allowed: at most {}", limits_.max_depth,
                                               limits_.max_depth));
        frames_.push_back(Frame{event == E::array_start, {}, 0, {}});
        break;
      case E::key: {
        Frame& f = frames_.back();
        if (++f.count > limits_.max_object_members)  // reported at the object's path
          throw ParseError(path(), fmt::format("object has more than {} members; allowed: at most {}",
                                               limits_.max_object_members, limits_.max_object_members));
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second)  // reported at the key's path
          throw ParseError(path(), "duplicate key; each key may appear once in an object");
        break;
      }
      case E::object_end:
      case E::array_end:
        frames_.pop_back();
        completed();
        break;
      case E::value:
        completed();
        break;
    }
    return true;
  }

  // The JSON path of the value being read: "mask.left", "[2].tile.block_m"; at most
  // `levels` levels of it.
  std::string path(std::size_t levels = std::string::npos) const {
    std::string p;
    for (std::size_t i = 0; i < frames_.size() && i < levels; ++i) {
      const Frame& f = frames_[i];
      if (f.array) p += fmt::format("[{}]", f.count);
      else if (!f.key.empty()) p += (p.empty() ? "" : ".") + f.key;
    }
    return printable(p, 200);
  }

 private:
  // A value ended: inside an object its key is done (an error after it is not about
  // it); inside an array it is one more element.
  void completed() {
    if (frames_.empty()) return;
    if (!frames_.back().array) return frames_.back().key.clear();
    if (++frames_.back().count > limits_.max_array_elements)
      throw ParseError(path(), fmt::format("array has more than {} elements; allowed: at most {}",
                                           limits_.max_array_elements, limits_.max_array_elements));
  }

  const Limits& limits_;
  std::vector<Frame> frames_;
};

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is useful.
std::string strip_prefix(const std::string& what) {
  const auto pos = what.find("] ");
  return printable(pos == std::string::npos ? what : what.substr(pos + 2), 300);
}

}  // namespace

Json parse(std::string_view text, const Limits& limits) {
  if (text.size() > limits.max_bytes)
    throw ParseError("", fmt::format("the text is {} bytes; allowed: at most {}", text.size(), limits.max_bytes));
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw ParseError("", fmt::format("contains a NUL byte at offset {}; allowed: JSON text without NUL bytes", nul));
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF")
    throw ParseError("", "starts with a UTF-8 byte-order mark; allowed: UTF-8 JSON text without a BOM");
  Tracker tracker(limits);
  try {
    return Json::parse(text.begin(), text.end(),
                       [&](int, Json::parse_event_t event, Json& parsed) { return tracker.on_event(event, parsed); });
  } catch (const Json::exception& e) {
    // Syntax errors, invalid UTF-8, numbers that overflow a double ("1e400").
    throw ParseError(tracker.path(), strip_prefix(e.what()));
  }
}

std::string show(const Json& v, std::size_t max_chars) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return printable(s, max_chars);
}

}  // namespace flashjit::json
