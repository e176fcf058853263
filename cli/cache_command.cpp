// flashjit cache list | stats | clear: look into (or empty) the on-disk kernel cache.
#include <fmt/format.h>

#include "cli.h"
#include "flashjit/disk_cache.h"

namespace flashjit::cli {

namespace {
const char* entries_word(std::size_t n) { return n == 1 ? "entry" : "entries"; }
}  // namespace

int run_cache(const Args& args) {
  if (args.positional.size() != 1)
    throw UsageError("cache needs exactly one action: list, stats or clear");
  const std::string& action = args.positional[0];
  const DiskCache cache(args.get("--dir") ? std::filesystem::path(*args.get("--dir")) : DiskCache::default_dir());

  if (action == "list") {
    const auto entries = cache.list();
    if (entries.empty()) {
      fmt::print("no entries in {}\n", cache.dir().string());
      return 0;
    }
    fmt::print("{:<32}  {:<8}  {:>10}  {}\n", "KEY", "ARCH", "BYTES", "KERNEL");
    for (const CacheListing& e : entries) {
      fmt::print("{:<32}  {:<8}  {:>10}  {}{}\n", e.key, e.arch, e.bytes, e.kernel_name,
                 e.valid ? "" : "  [corrupt]");
      if (!e.spec_json.empty()) fmt::print("  spec: {}\n", e.spec_json);
    }
    fmt::print("{} {} in {}\n", entries.size(), entries_word(entries.size()), cache.dir().string());
    return 0;
  }
  if (action == "stats") {
    const CacheStats s = cache.stats();
    fmt::print("directory: {}\n", cache.dir().string());
    fmt::print("entries:   {}\n", s.entries);
    fmt::print("bytes:     {} ({:.1f} MiB)\n", s.bytes, s.bytes / (1024.0 * 1024.0));
    fmt::print("corrupt:   {}\n", s.corrupt);
    return 0;
  }
  if (action == "clear") {
    const std::size_t removed = cache.clear();
    fmt::print("removed {} {} from {}\n", removed, entries_word(removed), cache.dir().string());
    return 0;
  }
  throw UsageError(fmt::format("unknown cache action '{}'; allowed: list, stats, clear", action));
}

}  // namespace flashjit::cli
