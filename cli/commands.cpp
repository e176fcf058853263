// flashjit compile | emit | ir: the spec -> IR -> CUDA -> cubin pipeline, one stage at a time.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "cli.h"
#include "flashjit/codegen.h"
#include "flashjit/kernel_kinds.h"
#include "flashjit/kernel_kind.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/passes.h"
#include "flashjit/runtime.h"

namespace flashjit::cli {

namespace {
// emit and ir need no GPU; they show what compile would generate for this arch.
constexpr const char* kDefaultArch = "sm_80";

std::string arch_or_default(const Args& args) {
  std::string arch = args.get("--arch").value_or(kDefaultArch);
  check_arch(arch);  // a typo gets the list of known archs, not a confusing legality error
  return arch;
}

std::string known_or_unknown(int v, const char* unit) {
  return v < 0 ? std::string("unknown") : fmt::format("{}{}", v, unit);
}

std::string tile_string(const TileConfig& t) {
  return fmt::format("block_m={} block_n={} warps={} stages={} mma={}{}{}{}", t.block_m, t.block_n, t.warps, t.stages,
                     to_string(t.mma), t.pipeline == PipelineKind::tma_ws ? " pipeline=tma_ws" : "",
                     t.pingpong ? " pingpong" : "", t.persistent ? " persistent" : "");
}
}  // namespace

// --kind (kernel_kind.h), fwd by default; `all`: every kernel of the spec.
std::vector<KernelKind> kinds_of(const Args& args, const AttentionSpec& spec) {
  const std::string name = args.get("--kind").value_or("fwd");
  if (name == "all") return spec_kernel_kinds(spec);
  const std::optional<KernelKind> kind = kernel_kind_from_string(name);
  if (!kind)
    throw UsageError(fmt::format("unknown kernel kind '{}' for --kind; allowed: {}, all", name, kernel_kind_names()));
  return {*kind};
}

namespace {

// The spec a kind's kernel is made from. With --kind all the spec's tile is the forward's, so
// the backward's tiled kinds (which would read it as theirs) take their heuristic tile.
AttentionSpec spec_for(const Args& args, const AttentionSpec& spec, KernelKind kind) {
  const bool all = args.get("--kind").value_or("fwd") == "all";
  return all && (kind == KernelKind::bwd_dkdv || kind == KernelKind::bwd_dq) ? without_tile(spec) : spec;
}

void print_compiled(KernelKind kind, const CompiledKernel& k) {
  const ResourceUsage& r = k.resources;
  fmt::print("kernel:        {}\n", k.kernel_name);
  fmt::print("arch:          {}\n", k.arch);
  fmt::print("cache key:     {}\n", k.cache_key);
  fmt::print("entry:         {}\n", k.cache_path.empty() ? "(not cached)" : k.cache_path);
  fmt::print("cache hit:     {}\n", k.cache_hit ? "yes" : "no");
  fmt::print("compile time:  {:.1f} ms\n", k.compile_ms);
  fmt::print("load time:     {:.1f} ms\n", k.load_ms);
  fmt::print("registers:     {}\n", known_or_unknown(r.registers, ""));
  fmt::print("spills:        {} stored, {} loaded\n", known_or_unknown(r.spill_store_bytes, " bytes"),
             known_or_unknown(r.spill_load_bytes, " bytes"));
  fmt::print("shared memory: {} dynamic, {} static\n", k.dynamic_smem_bytes,
             known_or_unknown(r.shared_static_bytes, ""));
  fmt::print("threads:       {}\n", k.threads);
  const std::string untiled = kind == KernelKind::block_mask ? "none (one thread per block-mask cell)"
                              : kind == KernelKind::bwd_preprocess
                                  ? fmt::format("none ({} query rows per thread block)", codegen::kBwdPreprocessRows)
                                  : fmt::format("none ({} query rows per thread block)", codegen::kBwdDqConvertRows);
  const KernelKindInfo& info = kind_info(kind);
  fmt::print("tile:          {}\n", info.tiled ? tile_string(k.tile) : untiled);
  fmt::print("kind:          {}: {}; grid {}; templates/flashjit/{}\n", info.name, info.tensors, info.grid, info.skeleton);
}

}  // namespace

int run_compile(const Args& args) {
  const AttentionSpec spec = load_spec(args);
  // As in tune: every cache user in this process reads the variable.
  if (const auto dir = args.get("--cache-dir")) ::setenv("FLASHJIT_CACHE_DIR", dir->c_str(), 1);
  const std::vector<KernelKind> kinds = kinds_of(args, spec);
  CompileOptions options;
  if (auto arch = args.get("--arch")) {
    options.arch = *arch;
  } else if (!gpu_available()) {
    throw ArgumentError("arch", fmt::format("no GPU to compile for ({}); pass --arch, e.g. --arch sm_80, "
                                            "to compile without one",
                                            gpu_unavailable_reason()));
  }
  options.use_cache = !args.flag("--no-cache");
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) fmt::print("\n");
    print_compiled(kinds[i], compile_kind(kinds[i], spec_for(args, spec, kinds[i]), options));
  }
  return 0;
}

int run_emit(const Args& args) {
  const AttentionSpec spec = load_spec(args);
  const std::string arch = arch_or_default(args);
  const std::vector<KernelKind> kinds = kinds_of(args, spec);
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (kinds.size() > 1) fmt::print("{}// ===== --kind {} =====\n", i > 0 ? "\n" : "", to_string(kinds[i]));
    fmt::print("{}", emit_kind_cuda(kinds[i], spec_for(args, spec, kinds[i]), arch));
  }
  return 0;
}

int run_ir(const Args& args) {
  const AttentionSpec spec = load_spec(args);
  const std::string arch = arch_or_default(args);
  // The tile IR is the forward's; the other kinds are device skeletons with a generated variant.
  const std::string kind = args.get("--kind").value_or("fwd");
  if (kind != "fwd" && kind != "all") {
    kinds_of(args, spec);  // an unknown name gets the list
    throw UsageError(fmt::format("--kind {}: only the forward kernel (fwd) has a tile IR; the other kinds are device "
                                 "skeletons instantiated with the spec's variant (see `flashjit emit --kind {}`)",
                                 kind, kind));
  }
  // "lower" = as lowered, before any pass; a pass name = stop after it; absent = all passes.
  const std::string after = args.get("--after").value_or("");
  if (!after.empty() && after != "lower") {
    bool known = false;
    std::string allowed = "lower";
    for (const auto& name : passes::pass_names()) {
      known = known || name == after;
      allowed += ", " + name;
    }
    if (!known) throw UsageError(fmt::format("unknown pass '{}' for --after; allowed: {}", after, allowed));
  }
  fmt::print("{}", emit_ir(spec, arch, after));
  return 0;
}

}  // namespace flashjit::cli
