// flashjit cache export DIR / import [--verify] DIR: move compiled kernels and tuning results
// between machines (e.g. tune on one GPU box, ship the cache with the application). Every
// entry is verified on the way (kernels through DiskCache::load, records by parsing them) and
// written with the caches' own atomic store, so a corrupt source entry is skipped, never
// copied, and a reader of the destination never sees a partial file. An entry that cannot
// even be looked at (a file name that is no valid key, a load that throws) is skipped and
// reported; the import goes on.
//
// Trust: an entry's checksum is a public, unkeyed digest: it catches damage, not forgery.
// Whoever can write the imported directory chooses the cubins that later run on the GPU, so
// `cache import` says so every time. `--verify` trusts nothing but the entry's spec and arch:
// it regenerates the source with this flashjit, requires the entry's key to be the key of
// that source (same flashjit, NVRTC, options and templates), recompiles it and requires the
// cubin to be the entry's. What is stored then is the local compile, not the imported bytes.
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "cli.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/kernel_kinds.h"
#include "flashjit/runtime.h"
#include "flashjit/spec.h"
#include "flashjit/tuning.h"

namespace flashjit::cli {

namespace {

// ---- verifying one kernel entry -------------------------------------------------------

struct Verdict {
  std::optional<CacheEntry> local;  // what to store, when the entry is genuine
  std::string reason;               // why it is rejected
};

Verdict reject(std::string reason) { return Verdict{std::nullopt, std::move(reason)}; }

// Regenerates the entry's kernel from its spec and arch with this flashjit and compares.
Verdict verify_entry(const std::string& key, const CacheEntry& e) {
  AttentionSpec spec;
  const KernelKind kind = kernel_kind_of_name(e.kernel_name).value_or(KernelKind::fwd);
  try {
    spec = spec_from_json(e.spec_json);
    validate_for_kind(kind, spec);
    check_arch(e.arch);
  } catch (const std::exception& ex) {
    return reject(fmt::format("its spec or arch is not one this flashjit compiles: {}", ex.what()));
  }
  // Every kind is stored with the spec that generates it (a builder with its mask's, the
  // preprocess with its dtype and head dims).
  std::string source;
  try {
    source = emit_kind_cuda(kind, spec, e.arch);
  } catch (const std::exception& ex) {
    return reject(fmt::format("its spec does not generate a kernel here: {}", ex.what()));
  }
  // Cheap, before any compile: the key is a digest of the source, arch, options and versions.
  if (kernel_cache_key(source, e.arch, nvrtc_options(e.arch)) != key)
    return reject("key does not match its spec for this flashjit/NVRTC version");
  CompiledKernel k;
  try {
    CompileOptions options;
    options.arch = e.arch;
    options.use_cache = false;  // compile() generates the same source, then runs NVRTC
    k = compile_kind(kind, spec, options);
  } catch (const std::exception& ex) {
    return reject(fmt::format("recompiling its spec failed: {}", ex.what()));
  }
  if (k.cache_key != key) return reject("key does not match its spec for this flashjit/NVRTC version");
  if (k.kernel_name != e.kernel_name)
    return reject(fmt::format("kernel name '{}' is not '{}', this flashjit's name for its spec", e.kernel_name,
                              k.kernel_name));
  if (e.threads != k.threads || e.dynamic_smem_bytes != k.dynamic_smem_bytes)
    return reject(fmt::format("launch configuration ({} threads, {} bytes of dynamic shared memory) is not this "
                              "flashjit's ({}, {})",
                              e.threads, e.dynamic_smem_bytes, k.threads, k.dynamic_smem_bytes));
  // NVRTC is deterministic: one source, name, arch and options give one cubin, in any
  // process or directory (-lineinfo would add the working directory, which is why it is
  // opt-in: nvrtc_options). So a genuine entry is byte for byte this machine's compile.
  if (e.image != k.image) {
    std::size_t at = 0;
    while (at < e.image.size() && at < k.image.size() && e.image[at] == k.image[at]) ++at;
    return reject(fmt::format("its cubin differs from this flashjit's compile of its spec (first at byte {}; "
                              "{} bytes, here {})",
                              at, e.image.size(), k.image.size()));
  }
  // What compile() itself stores: none of the imported bytes reach the cache.
  return Verdict{cache_entry_for(k, kind != KernelKind::fwd ? e.spec_json : spec_to_json(resolve_tile(spec, e.arch))), ""};
}

// ---- copying ---------------------------------------------------------------------------

struct Counts {
  std::size_t kernels = 0, records = 0, present = 0, corrupt = 0, verified = 0, rejected = 0;
};

// Copies every valid entry of `from` into `to`. A valid entry already in `to` is kept:
// importing never replaces results the destination has measured or compiled itself.
Counts copy_cache(const std::string& from, const std::string& to, bool verify) {
  Counts n;
  const DiskCache src(from), dst(to);
  for (const CacheListing& l : src.list()) {
    // Only the source side is guarded: a destination that cannot be written is an error.
    std::optional<CacheEntry> e;
    try {
      try {
        (void)src.entry_path(l.key);  // throws for a name that is not a valid key
      } catch (const ArgumentError&) {
        ++n.corrupt;
        fmt::print("skipped {}: not a valid cache key\n", l.path);
        continue;
      }
      if (l.valid) e = src.load(l.key);
    } catch (const std::exception& ex) {
      ++n.corrupt;
      fmt::print("skipped {}: {}\n", l.path, ex.what());
      continue;
    }
    if (!e) {
      ++n.corrupt;
      fmt::print("skipped corrupt kernel entry {}\n", l.path);
      continue;
    }
    if (dst.load(l.key)) {
      ++n.present;
      continue;
    }
    if (verify) {
      Verdict v = verify_entry(l.key, *e);
      if (!v.local) {
        ++n.rejected;
        fmt::print("rejected {}: {}\n", l.path, v.reason);
        continue;
      }
      ++n.verified;
      e = std::move(v.local);
    }
    dst.store(l.key, *e);
    ++n.kernels;
  }
  // Tuning records carry no code (a tile, a time, a key); their tiles are validated when used.
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

int run_cache_transfer(const std::string& action, const std::string& other_dir, const std::string& cache_dir,
                       bool verify) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(other_dir, ec) && fs::exists(cache_dir, ec) && fs::equivalent(other_dir, cache_dir, ec))
    throw UsageError(fmt::format("cache {}: {} is the cache directory itself", action, other_dir));
  if (action == "import" && !fs::is_directory(other_dir, ec))
    throw UsageError(fmt::format("cache import: '{}' is not a directory", other_dir));
  if (verify && action != "import") throw UsageError("--verify applies to 'cache import' only");

  const bool exporting = action == "export";
  if (!exporting)
    fmt::print("note: importing a kernel cache means running its kernels on your GPU: import only caches you trust, "
               "or use --verify (recompiles every kernel here and rejects any that differ)\n");
  const std::string& from = exporting ? cache_dir : other_dir;
  const std::string& to = exporting ? other_dir : cache_dir;
  const Counts n = copy_cache(from, to, verify);
  fmt::print("{} {} kernel {} and {} tuning {} from {} to {} ({} already there, {} corrupt skipped{})\n",
             exporting ? "exported" : "imported", n.kernels, n.kernels == 1 ? "entry" : "entries", n.records,
             n.records == 1 ? "record" : "records", from, to, n.present, n.corrupt,
             verify ? fmt::format("; kernels: {} verified, {} rejected", n.verified, n.rejected) : std::string());
  return n.rejected == 0 ? 0 : 1;
}

}  // namespace flashjit::cli
