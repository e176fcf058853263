// Race helper for tests/unit/test_disk_cache.cpp: several copies of this program store
// and load one cache key at the same time.
//
//   flashjit_cache_race_helper <cache_dir> <key> <payload_size> <iterations>
//
// Every copy writes the same entry (its content is derived from the key alone), so any
// complete entry a load returns must equal it. Exit status: 0 when every load returned
// exactly the expected entry, 1 on a wrong or missing entry, 2 on bad arguments.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "flashjit/disk_cache.h"

namespace {

// Deterministic per key: a simple xorshift stream seeded from the key's digest.
flashjit::CacheEntry expected_entry(const std::string& key, std::size_t payload_size) {
  const std::string d = flashjit::digest_hex(key);
  uint64_t s = std::strtoull(d.substr(0, 16).c_str(), nullptr, 16) | 1;
  flashjit::CacheEntry e;
  e.kernel_name = "race_" + key;
  e.image.resize(payload_size);
  for (char& c : e.image) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    c = static_cast<char>(s & 0xff);
  }
  e.log = "ptxas info    : Used 42 registers for " + key;
  e.resources.registers = 42;
  e.resources.shared_static_bytes = 0;
  e.resources.stack_frame_bytes = 8;
  e.resources.spill_store_bytes = 0;
  e.resources.spill_load_bytes = 0;
  e.threads = 128;
  e.dynamic_smem_bytes = 49152;
  e.compile_ms = 123.5;
  e.spec_json = "{\"race\":\"" + key + "\"}";
  e.arch = "sm_90a";
  return e;
}

bool same(const flashjit::CacheEntry& a, const flashjit::CacheEntry& b) {
  return a.kernel_name == b.kernel_name && a.image == b.image && a.log == b.log &&
         a.resources.registers == b.resources.registers &&
         a.resources.shared_static_bytes == b.resources.shared_static_bytes &&
         a.resources.stack_frame_bytes == b.resources.stack_frame_bytes &&
         a.resources.spill_store_bytes == b.resources.spill_store_bytes &&
         a.resources.spill_load_bytes == b.resources.spill_load_bytes && a.threads == b.threads &&
         a.dynamic_smem_bytes == b.dynamic_smem_bytes && a.compile_ms == b.compile_ms &&
         a.spec_json == b.spec_json && a.arch == b.arch;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <cache_dir> <key> <payload_size> <iterations>\n", argv[0]);
    return 2;
  }
  char* end = nullptr;
  const unsigned long long payload_size = std::strtoull(argv[3], &end, 10);
  if (*end != '\0') return std::fprintf(stderr, "bad payload_size '%s'\n", argv[3]), 2;
  const long iterations = std::strtol(argv[4], &end, 10);
  if (*end != '\0' || iterations <= 0) return std::fprintf(stderr, "bad iterations '%s'\n", argv[4]), 2;

  try {
    const flashjit::DiskCache cache(argv[1]);
    const std::string key = argv[2];
    const flashjit::CacheEntry want = expected_entry(key, static_cast<std::size_t>(payload_size));
    for (long i = 0; i < iterations; ++i) {
      cache.store(key, want);
      // Another process may have renamed its own (identical) entry over ours meanwhile:
      // whatever is there must still be complete and correct, never missing.
      const auto got = cache.load(key);
      if (!got) {
        std::fprintf(stderr, "iteration %ld: load returned no entry right after a store\n", i);
        return 1;
      }
      if (!same(*got, want)) {
        std::fprintf(stderr, "iteration %ld: load returned an entry with the wrong content\n", i);
        return 1;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
