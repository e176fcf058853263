// libFuzzer harness: reading tuning-database records (runtime/src/tuning_db.cpp).
//
// For any input bytes it checks that
//   1. flashjit::tuning_record_from_json(text) returns (a record or std::nullopt) and never
//      throws: a record file is untrusted input and a bad one must read as a miss. An
//      exception is not caught here, so it aborts and libFuzzer reports it (as it does for
//      ASan/UBSan findings, hangs past -timeout and memory past -rss_limit_mb);
//   2. a record it accepts survives writing and reading back: tuning_record_to_json(*r)
//      (which must not throw either) parses again to a record with an equal key and tile, and
//      the same winner time, creation time and candidates.
// Failed checks print what was wrong and __builtin_trap(), which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "flashjit/tuning.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_tuning_record: %s\n%s\n", what, detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

bool same_candidates(const flashjit::TuningRecord& x, const flashjit::TuningRecord& y) {
  if (x.candidates.size() != y.candidates.size()) return false;
  for (std::size_t i = 0; i < x.candidates.size(); ++i) {
    const flashjit::CandidateTiming& a = x.candidates[i];
    const flashjit::CandidateTiming& b = y.candidates[i];
    if (!(a.tile == b.tile) || a.ok != b.ok || a.median_ms != b.median_ms || a.repetitions != b.repetitions ||
        a.error != b.error)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::optional<flashjit::TuningRecord> r = flashjit::tuning_record_from_json(text);
  if (!r) return 0;

  const std::string written = flashjit::tuning_record_to_json(*r);
  const std::optional<flashjit::TuningRecord> back = flashjit::tuning_record_from_json(written);
  if (!back) fail("a record read from JSON, written again, does not read back", written);
  if (!(back->key == r->key)) fail("the key changed in a write/read round trip", written);
  if (!(back->tile == r->tile)) fail("the tile changed in a write/read round trip", written);
  if (back->median_ms != r->median_ms || back->created != r->created || !same_candidates(*r, *back))
    fail("median_ms, created or candidates changed in a write/read round trip", written);
  if (flashjit::tuning_record_to_json(*back) != written) fail("the written record is not a fixed point", written);
  return 0;
}
