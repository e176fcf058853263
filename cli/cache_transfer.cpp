// flashjit cache export DIR / import DIR: move compiled kernels and tuning results between
// machines (e.g. tune on one GPU box, ship the cache with the application). Every entry
// is verified on the way (kernels through DiskCache::load, records by parsing them) and
// written with the caches' own atomic store, so a corrupt source entry is skipped, never
// copied, and a reader of the destination never sees a partial file.
#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "cli.h"
#include "flashjit/disk_cache.h"
#include "flashjit/tuning.h"

namespace flashjit::cli {

namespace {

struct Counts {
  std::size_t kernels = 0, records = 0, present = 0, corrupt = 0;
};

// Copies every valid entry of `from` into `to`. A valid entry already in `to` is kept:
// importing never replaces results the destination has measured or compiled itself.
Counts copy_cache(const std::string& from, const std::string& to) {
  Counts n;
  const DiskCache src(from), dst(to);
  for (const CacheListing& l : src.list()) {
    const std::optional<CacheEntry> e = l.valid ? src.load(l.key) : std::nullopt;
    if (!e) {
      ++n.corrupt;
      fmt::print("skipped corrupt kernel entry {}\n", l.path);
    } else if (dst.load(l.key)) {
      ++n.present;
    } else {
      dst.store(l.key, *e);
      ++n.kernels;
    }
  }
  const TuningDb src_db(from), dst_db(to);
  for (const TuningListing& l : src_db.list()) {
    if (!l.record) {
      ++n.corrupt;
      fmt::print("skipped corrupt tuning record {}\n", l.path);
    } else if (dst_db.lookup(l.record->key)) {
      ++n.present;
    } else {
      dst_db.store(l.record->key, *l.record);
      ++n.records;
    }
  }
  return n;
}

}  // namespace

int run_cache_transfer(const std::string& action, const std::string& other_dir, const std::string& cache_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(other_dir, ec) && fs::exists(cache_dir, ec) && fs::equivalent(other_dir, cache_dir, ec))
    throw UsageError(fmt::format("cache {}: {} is the cache directory itself", action, other_dir));
  if (action == "import" && !fs::is_directory(other_dir, ec))
    throw UsageError(fmt::format("cache import: '{}' is not a directory", other_dir));

  const bool exporting = action == "export";
  const std::string& from = exporting ? cache_dir : other_dir;
  const std::string& to = exporting ? other_dir : cache_dir;
  const Counts n = copy_cache(from, to);
  fmt::print("{} {} kernel {} and {} tuning {} from {} to {} ({} already there, {} corrupt skipped)\n",
             exporting ? "exported" : "imported", n.kernels, n.kernels == 1 ? "entry" : "entries", n.records,
             n.records == 1 ? "record" : "records", from, to, n.present, n.corrupt);
  return 0;
}

}  // namespace flashjit::cli
