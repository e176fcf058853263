#include "runtime_stats.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "flashjit/runtime.h"

namespace flashjit {
namespace detail {

Counters& counters() {
  static Counters c;
  return c;
}

bool log_enabled() {
  const char* v = std::getenv("FLASHJIT_LOG");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void log_line(const std::string& line) {
  const std::string text = "flashjit: " + line + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace detail

RuntimeStats runtime_stats() {
  const detail::Counters& c = detail::counters();
  return RuntimeStats{c.compiles.load(), c.disk_hits.load(), c.memory_hits.load(), c.tunings.load(),
                      c.tuning_db_hits.load()};
}

}  // namespace flashjit
