// flashjit cache list | stats | clear | export DIR | import [--verify] DIR: look into, empty
// or move the on-disk kernel cache and the tuning database beside it.
#include <fmt/format.h>

#include "cli.h"
#include "flashjit/disk_cache.h"
#include "flashjit/tuning.h"

namespace flashjit::cli {

namespace {
const char* entries_word(std::size_t n) { return n == 1 ? "entry" : "entries"; }
const char* records_word(std::size_t n) { return n == 1 ? "record" : "records"; }

void print_tuning(const std::vector<TuningListing>& records, const TuningDb& db) {
  fmt::print("{:<32}  {:<8}  {:<28}  {:<30}  {:<14}  {}\n", "TUNING RECORD", "ARCH", "GPU", "BUCKET", "TILE", "MS");
  for (const TuningListing& l : records) {
    if (!l.record) {
      fmt::print("{:<32}  [corrupt]  {}\n", l.digest, l.path);
      continue;
    }
    const TuningRecord& r = *l.record;
    fmt::print("{:<32}  {:<8}  {:<28}  {:<30}  {:<14}  {:.4f}\n", l.digest, r.key.arch, r.key.gpu_name,
               to_string(r.key.bucket), to_string(r.tile), r.median_ms);
    fmt::print("  spec: {}\n", r.key.spec_json);
  }
  fmt::print("{} tuning {} in {}\n", records.size(), records_word(records.size()), db.dir().string());
}
}  // namespace

int run_cache(const Args& args) {
  if (args.positional.empty())
    throw UsageError("cache needs an action: list, stats, clear, export DIR or import [--verify] DIR");
  const std::string& action = args.positional[0];
  const std::string dir = args.get("--cache-dir").value_or(DiskCache::default_dir().string());  // --dir: its alias
  if (action == "export" || action == "import") {
    if (args.positional.size() != 2) throw UsageError(fmt::format("cache {} needs exactly one directory", action));
    return run_cache_transfer(action, args.positional[1], dir, args.flag("--verify"));
  }
  if (args.flag("--verify"))
    throw UsageError(fmt::format("--verify applies to 'cache import' only, not 'cache {}'", action));
  if (args.positional.size() != 1)
    throw UsageError(fmt::format("unexpected argument '{}' for 'cache {}'", args.positional[1], action));
  const DiskCache cache(dir);
  const TuningDb db(dir);

  if (action == "list") {
    const auto entries = cache.list();
    const auto records = db.list();
    if (entries.empty() && records.empty()) {
      fmt::print("no entries in {}\n", cache.dir().string());
      return 0;
    }
    if (!entries.empty()) {
      fmt::print("{:<32}  {:<8}  {:>10}  {}\n", "KEY", "ARCH", "BYTES", "KERNEL");
      for (const CacheListing& e : entries) {
        fmt::print("{:<32}  {:<8}  {:>10}  {}{}\n", e.key, e.arch, e.bytes, e.kernel_name,
                   e.valid ? "" : "  [corrupt]");
        if (!e.spec_json.empty()) fmt::print("  spec: {}\n", e.spec_json);
      }
    }
    fmt::print("{} {} in {}\n", entries.size(), entries_word(entries.size()), cache.dir().string());
    if (!records.empty()) print_tuning(records, db);
    return 0;
  }
  if (action == "stats") {
    const CacheStats s = cache.stats();
    std::size_t corrupt_records = 0;
    const auto records = db.list();
    for (const TuningListing& l : records) corrupt_records += !l.record;
    fmt::print("directory: {}\n", cache.dir().string());
    fmt::print("entries:   {}\n", s.entries);
    fmt::print("bytes:     {} ({:.1f} MiB)\n", s.bytes, s.bytes / (1024.0 * 1024.0));
    fmt::print("corrupt:   {}\n", s.corrupt);
    fmt::print("tuning:    {} {} ({} corrupt) in {}\n", records.size(), records_word(records.size()), corrupt_records,
               db.dir().string());
    return 0;
  }
  if (action == "clear") {
    const std::size_t removed = cache.clear();
    const std::size_t removed_records = db.clear();
    fmt::print("removed {} {} from {}\n", removed, entries_word(removed), cache.dir().string());
    fmt::print("removed {} tuning {} from {}\n", removed_records, records_word(removed_records), db.dir().string());
    return 0;
  }
  throw UsageError(
      fmt::format("unknown cache action '{}'; allowed: list, stats, clear, export DIR, import [--verify] DIR", action));
}

}  // namespace flashjit::cli
