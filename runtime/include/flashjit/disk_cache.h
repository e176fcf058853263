// The on-disk kernel cache.
//
// Location: $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit, else ~/.cache/flashjit.
// An entry is keyed by a digest of its *key material*: the cache schema version, the
// flashjit version, the NVRTC version, the arch, the compile options and the full
// generated source with the templates it includes. Entries are written to a temp file,
// fsync'ed, then renamed, so readers never see a partial entry and any number of
// processes may race on one key. Each entry stores its size, a checksum and its full
// key digest; a truncated or corrupted entry reads as a miss and is rebuilt.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"

namespace flashjit {

// 2: keys and checksums are XXH3-128 (1: a home-made digest). A version-1 entry is refused
// by its schema line, so it reads as a miss and is rebuilt, never as a checksum mismatch.
inline constexpr int kCacheSchemaVersion = 2;

// XXH3-128 (xxHash, seed 0) of arbitrary bytes, as 32 lowercase hex chars: the text
// `xxh128sum` prints. Stable across platforms and runs (runtime/src/digest.cpp).
std::string digest_hex(const std::string& bytes);

struct CacheEntry {
  std::string kernel_name;
  std::string image;          // cubin
  std::string log;            // compile log
  ResourceUsage resources;
  int threads = 0;
  int dynamic_smem_bytes = 0;
  double compile_ms = 0.0;    // how long the original compile took
  std::string spec_json;      // for `flashjit cache list`
  std::string arch;
};

// The entry compile() stores for a kernel it built: `spec_json` is the resolved spec's
// canonical JSON (tile included), `k.arch` the target.
CacheEntry cache_entry_for(const CompiledKernel& k, const std::string& spec_json);

struct CacheStats {
  std::size_t entries = 0;
  std::size_t bytes = 0;
  std::size_t corrupt = 0;    // entries that fail verification
};

struct CacheListing {
  std::string key;
  std::string path;
  std::string kernel_name;
  std::string arch;
  std::string spec_json;
  std::size_t bytes = 0;
  bool valid = false;
};

class DiskCache {
 public:
  explicit DiskCache(std::filesystem::path dir);
  // The directory from the environment rules above (not created until a store).
  static std::filesystem::path default_dir();

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path entry_path(const std::string& key) const;

  // Null when absent, truncated, corrupted or written for other key material.
  std::optional<CacheEntry> load(const std::string& key) const;
  // Atomically (temp file + fsync + rename) writes the entry; returns its path.
  std::filesystem::path store(const std::string& key, const CacheEntry& entry) const;

  std::vector<CacheListing> list() const;
  CacheStats stats() const;
  std::size_t clear() const;  // removes kernel entries; returns how many

 private:
  std::filesystem::path dir_;
};

namespace detail {
// Parses and verifies a whole entry file (header, size, checksum, payload) written for
// `key`; null on any mismatch. Exposed for the fuzzer (tests/fuzz) and cache tools.
std::optional<CacheEntry> parse_cache_entry(const std::string& file, const std::string& key);
}  // namespace detail

// Builds the key (digest of the key material) for a generated source.
std::string kernel_cache_key(const std::string& source, const std::string& arch,
                             const std::vector<std::string>& options);

}  // namespace flashjit
