// libFuzzer harness: reading kernel-cache entry files (flashjit::detail::parse_cache_entry,
// runtime/src/disk_cache.cpp).
//
// Input: the first line is the key the entry is looked up under, the rest is the entry file
// (with no newline at all, the whole input is the file and the key is a fixed one). The file
// is untrusted (a disk cache can be corrupted, truncated or edited), so it checks that
//   1. parse_cache_entry(file, key) returns an entry or std::nullopt and never throws (an
//      exception is not caught here: it aborts and libFuzzer reports it, as it does for
//      ASan/UBSan findings, hangs past -timeout and memory past -rss_limit_mb);
//   2. an entry it accepts is exactly what the writer would have stored: re-encoding it
//      (tests/fuzz/cache_entry_format.h) gives the file's payload byte for byte.
// A mutated payload almost never matches its checksum, so to reach the payload decoder the
// harness also wraps the whole input, as a payload, in a header that is correct for it
// (size and checksum) and checks 1 and 2 on that file too.
// Failed checks print what was wrong and __builtin_trap(), which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "cache_entry_format.h"
#include "flashjit/disk_cache.h"

namespace {

const char kFixedKey[] = "0123456789abcdef0123456789abcdef";

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_cache_entry: %s\n", what);
  std::fflush(stderr);
  __builtin_trap();
}

void check(const std::string& file, const std::string& key) {
  const std::optional<flashjit::CacheEntry> e = flashjit::detail::parse_cache_entry(file, key);
  if (!e) return;
  // Accepted: the header has no empty line before the blank one, so the payload starts after
  // the first "\n\n".
  const std::size_t blank = file.find("\n\n");
  if (blank == std::string::npos) fail("an entry without a blank line after its header was accepted");
  if (file.compare(0, 16, "FLASHJIT-KERNEL\n") != 0) fail("an entry without the magic line was accepted");
  if (file.find("\nkey=" + key + "\n") == std::string::npos) fail("an entry for another key was accepted");
  if (fjfuzz::cache_payload(*e) != file.substr(blank + 2))
    fail("an accepted entry does not re-encode to its payload (decoder lost or invented bytes)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  if (nl == std::string::npos) check(input, kFixedKey);
  else check(input.substr(nl + 1), input.substr(0, nl));
  // The whole input as a payload with a valid header: exercises the payload decoder.
  check(fjfuzz::cache_header(kFixedKey, input) + input, kFixedKey);
  return 0;
}
