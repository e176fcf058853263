// Internal: the counters behind runtime_stats() and the FLASHJIT_LOG=1 trace, so that a
// user (or the offline-cache acceptance test) can see whether a process compiled or tuned.
#pragma once

#include <atomic>
#include <string>

namespace flashjit::detail {

struct Counters {
  std::atomic<int> compiles{0};        // NVRTC runs
  std::atomic<int> disk_hits{0};       // compile() served from the disk cache
  std::atomic<int> memory_hits{0};     // compile() served from the in-process cache
  std::atomic<int> tunings{0};         // autotune() runs
  std::atomic<int> tuning_db_hits{0};  // forward() took its tile from the tuning database
};
Counters& counters();

// FLASHJIT_LOG=1 (read at each call: rare events only, never on the steady-state path).
bool log_enabled();
// Writes "flashjit: <line>\n" to stderr in one call, so lines of threads do not interleave.
void log_line(const std::string& line);

}  // namespace flashjit::detail
