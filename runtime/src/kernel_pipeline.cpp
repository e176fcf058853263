// spec -> generated source -> cubin, through the memory and disk caches.
// (The launch side lives in forward.cpp; tensor checks in validate_args.cpp.)
#include "kernel_pipeline.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/passes.h"
#include "flashjit/runtime.h"
#include "runtime_stats.h"

namespace flashjit {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::string resolve_arch(const std::string& arch) {
  if (!arch.empty()) {
    check_arch(arch);
    return arch;
  }
  CudaDriver& drv = CudaDriver::get();
  if (!drv.available())
    throw ArgumentError("arch", "no GPU to take it from (" + drv.unavailable_reason() +
                                    "); pass an arch such as sm_80 or sm_90a to compile without a GPU");
  return drv.device_arch(drv.current_device());
}

// emit_*'s arch: a study tool must work without a GPU, yet on a GPU machine it should show
// what compile() would build there (the GPU's arch), not sm_80's kernel.
std::string emit_arch(const std::string& arch) {
  if (!arch.empty()) {
    check_arch(arch);
    return arch;
  }
  CudaDriver& drv = CudaDriver::get();
  return drv.available() ? drv.device_arch(drv.current_device()) : std::string("sm_80");
}

AttentionSpec resolve_tile(const AttentionSpec& spec, const std::string& arch) {
  validate(spec);
  AttentionSpec s = spec.normalized();
  if (!s.tile) s.tile = default_tile(s, emit_arch(arch));
  return s;
}

GeneratedKernel generate(const AttentionSpec& spec, const std::string& arch) {
  const AttentionSpec resolved = resolve_tile(spec, arch);
  ir::Kernel k = passes::run_pipeline(ir::lower(resolved), arch);
  GeneratedKernel g{resolved, k, codegen::generate_cuda(k)};
  return g;
}

std::string emit_cuda(const AttentionSpec& spec, const std::string& arch) {
  return generate(spec, emit_arch(arch)).source;
}

std::string emit_ir(const AttentionSpec& spec, const std::string& arch, const std::string& after_pass) {
  const std::string a = emit_arch(arch);
  return ir::print(passes::run_pipeline(ir::lower(resolve_tile(spec, a)), a, after_pass));
}

CompiledKernel compile_source(const std::string& name, const std::string& source, const std::string& arch,
                              const std::string& meta_json, int threads, int dynamic_smem_bytes,
                              const TileConfig& tile, bool use_cache, bool quick) {
  const auto t0 = std::chrono::steady_clock::now();
  // In-process memory cache: a second compile of the same source is free.
  static std::mutex mu;
  static std::map<std::string, CompiledKernel> memory;
  if (quick) {
    // The fully optimised kernel, where a cache has it, costs less than any compile.
    const std::string full_key = kernel_cache_key(source, arch, nvrtc_options(arch));
    bool cached = false;
    if (use_cache) {
      std::lock_guard<std::mutex> lock(mu);
      cached = memory.count(full_key) > 0;
    }
    if (use_cache && !cached) cached = DiskCache(DiskCache::default_dir()).load(full_key).has_value();
    if (cached)
      quick = false;
    else
      use_cache = false;  // a quick kernel serves this process only
  }
  const std::vector<std::string> nvrtc_opts = nvrtc_options(arch, quick);
  const std::string key = kernel_cache_key(source, arch, nvrtc_opts);

  CompiledKernel out;
  out.kernel_name = name;
  out.arch = arch;
  out.cache_key = key;
  out.threads = threads;
  out.dynamic_smem_bytes = dynamic_smem_bytes;
  out.tile = tile;

  if (use_cache) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = memory.find(key);
    if (it != memory.end()) {
      CompiledKernel hit = it->second;
      hit.cache_hit = true;
      hit.compile_ms = 0.0;
      hit.load_ms = ms_since(t0);
      ++detail::counters().memory_hits;
      if (detail::log_enabled())
        detail::log_line(fmt::format("compile {} {} (cache hit, memory)", hit.kernel_name, arch));
      return hit;
    }
  }

  const DiskCache disk(DiskCache::default_dir());
  std::optional<CacheEntry> entry;
  if (use_cache) entry = disk.load(key);
  if (entry) {
    out.cache_hit = true;
    out.image = std::move(entry->image);
    out.log = std::move(entry->log);
    out.resources = entry->resources;
    out.cache_path = disk.entry_path(key).string();
    ++detail::counters().disk_hits;
    if (detail::log_enabled())
      detail::log_line(fmt::format("compile {} {} (cache hit, disk {})", out.kernel_name, arch, out.cache_path));
  } else {
    NvrtcOutput compiled = nvrtc_compile(source, name + ".cu", arch, quick);
    out.image = std::move(compiled.cubin);
    out.log = std::move(compiled.log);
    out.resources = compiled.resources;
    out.compile_ms = compiled.compile_ms;
    ++detail::counters().compiles;
    if (detail::log_enabled())
      detail::log_line(
          fmt::format("compile {} {} ({}, NVRTC {:.1f} ms)", out.kernel_name, arch,
                      quick ? "quick, not cached" : "cache miss", out.compile_ms));
    if (use_cache) {
      const CacheEntry e = cache_entry_for(out, meta_json);
      try {
        out.cache_path = disk.store(key, e).string();
      } catch (const std::exception& err) {
        // NVRTC succeeded: a cache that cannot be written (read-only, full, a directory or
        // a link in the way) costs the next process a compile, not this one its kernel.
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true) || detail::log_enabled())
          detail::log_line(fmt::format("warning: kernel cache not written, the kernel is used from memory and "
                                       "the next process compiles it again: {}",
                                       err.what()));
      }
    }
  }
  out.load_ms = ms_since(t0);
  if (use_cache) {
    std::lock_guard<std::mutex> lock(mu);
    memory.emplace(key, out);
  }
  return out;
}

CompiledKernel compile(const AttentionSpec& spec, const CompileOptions& options) {
  const std::string arch = resolve_arch(options.arch);
  const GeneratedKernel g = generate(spec, arch);
  return compile_source(g.kernel.name, g.source, arch, spec_to_json(g.spec), 32 * g.spec.tile->warps,
                        passes::smem_bytes(g.spec, *g.spec.tile), *g.spec.tile, options.use_cache, options.quick);
}

}  // namespace flashjit
