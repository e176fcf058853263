// Race helper for tests/unit/test_tuning.cpp: several copies of this program store and
// look up one tuning record at the same time.
//
//   flashjit_tuning_race_helper <cache_dir> <iterations>
//
// Every copy writes the same record (fjtest::sample_tuning_record), so any record a
// lookup returns must equal it, and a lookup right after a store must find one.
// Exit status: 0 when every lookup returned exactly that record, 1 otherwise, 2 on bad arguments.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "tuning_samples.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <cache_dir> <iterations>\n", argv[0]);
    return 2;
  }
  char* end = nullptr;
  const long iterations = std::strtol(argv[2], &end, 10);
  if (*end != '\0' || iterations <= 0) return std::fprintf(stderr, "bad iterations '%s'\n", argv[2]), 2;
  try {
    const flashjit::TuningDb db(argv[1]);
    const flashjit::TuningKey key = fjtest::sample_tuning_key();
    const flashjit::TuningRecord want = fjtest::sample_tuning_record(key);
    for (long i = 0; i < iterations; ++i) {
      db.store(key, want);
      // Another process may have renamed its own (identical) record over ours meanwhile:
      // whatever is there must be complete and correct, never missing.
      const auto got = db.lookup(key);
      if (!got) {
        std::fprintf(stderr, "iteration %ld: lookup found no record right after a store\n", i);
        return 1;
      }
      if (!fjtest::same_record(*got, want)) {
        std::fprintf(stderr, "iteration %ld: lookup returned a record with the wrong content\n", i);
        return 1;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
