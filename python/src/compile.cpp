// Compile-side entry points: they need no GPU when an arch is given.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "bindings.h"
#include "flashjit/block_mask.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/nvrtc_loader.h"
#include "flashjit/runtime.h"

namespace flashjit::python {

AttentionSpec parsed_spec(const std::string& spec_json) {
  // forward() is called with the same few JSON strings over and over: parse each once.
  static std::mutex mu;
  static std::unordered_map<std::string, AttentionSpec> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(spec_json);
    if (it != cache.end()) return it->second;
  }
  AttentionSpec spec = spec_from_json(spec_json);
  validate(spec);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() > 4096) cache.clear();  // bound the memory of programs that make many specs
  cache.emplace(spec_json, spec);
  return spec;
}

namespace {

nb::dict tile_dict(const TileConfig& t) {
  nb::dict d;
  d["block_m"] = t.block_m;
  d["block_n"] = t.block_n;
  d["warps"] = t.warps;
  d["stages"] = t.stages;
  d["mma"] = to_string(t.mma);
  return d;
}

nb::dict kernel_dict(const CompiledKernel& k) {
  nb::dict d;
  d["kernel_name"] = k.kernel_name;
  d["arch"] = k.arch;
  d["cache_key"] = k.cache_key;
  d["cache_path"] = k.cache_path;
  d["cache_hit"] = k.cache_hit;
  d["compile_ms"] = k.compile_ms;
  d["load_ms"] = k.load_ms;
  d["registers"] = k.resources.registers;
  d["shared_static_bytes"] = k.resources.shared_static_bytes;
  d["stack_frame_bytes"] = k.resources.stack_frame_bytes;
  d["spill_store_bytes"] = k.resources.spill_store_bytes;
  d["spill_load_bytes"] = k.resources.spill_load_bytes;
  d["threads"] = k.threads;
  d["dynamic_smem_bytes"] = k.dynamic_smem_bytes;
  d["tile"] = tile_dict(k.tile);
  d["log"] = k.log;
  d["cubin"] = nb::bytes(k.image.data(), k.image.size());
  return d;
}

}  // namespace

void bind_compile(nb::module_& m) {
  m.def(
      "with_block_mask",
      [](const std::string& spec_json, int block_q, int block_kv, bool per_batch, bool per_head) {
        return spec_to_json(with_block_mask(parsed_spec(spec_json), block_q, block_kv, per_batch, per_head));
      },
      nb::arg("spec_json"), nb::arg("block_q"), nb::arg("block_kv"), nb::arg("per_batch"), nb::arg("per_head"),
      "The spec restricted to a block mask passed as one more capture, 'block_mask' (int32 cells "
      "[batch or 1, heads or 1, q blocks, kv blocks]: 0 empty, 1 partial, 2 full).");
  m.def(
      "emit_block_mask",
      [](const std::string& spec_json) {
        const AttentionSpec spec = parsed_spec(spec_json);
        return emit_block_mask_cuda(mask_expression(spec.normalized().mask), spec.captures);
      },
      nb::arg("spec_json"), "The CUDA source of the block-mask builder for the spec's mask (no GPU needed).");
  m.def(
      "compile_block_mask",
      [](const std::string& spec_json, const std::string& arch) {
        const AttentionSpec spec = parsed_spec(spec_json);
        CompileOptions options;
        options.arch = arch;
        CompiledKernel k;
        {
          nb::gil_scoped_release release;
          k = compile_block_mask(mask_expression(spec.normalized().mask), spec.captures, options);
        }
        return kernel_dict(k);
      },
      nb::arg("spec_json"), nb::arg("arch") = "",
      "Compiles (cached) the block-mask builder for the spec's mask; arch '' = the current GPU's.");
  m.def(
      "validate",
      [](const std::string& spec_json) { return spec_to_json(parsed_spec(spec_json)); },
      nb::arg("spec_json"),
      "Parses and validates a spec; returns its canonical JSON. Raises SpecError naming the field.");

  m.def(
      "validate_bytes",
      [](nb::bytes text) {
        // Spec.from_json's path: the bytes go to the strict parser as they are (BOM, NUL,
        // bad UTF-8 included), not through a Python decode that would differ from C++.
        const std::string s(text.c_str(), text.size());
        AttentionSpec spec = spec_from_json(s);
        validate(spec);
        return spec_to_json(spec);
      },
      nb::arg("text"), "validate() for JSON given as bytes.");

  m.def(
      "compile",
      [](const std::string& spec_json, const std::string& arch, bool use_cache) {
        const AttentionSpec spec = parsed_spec(spec_json);
        CompileOptions options;
        options.arch = arch;
        options.use_cache = use_cache;
        CompiledKernel k;
        {
          nb::gil_scoped_release release;  // NVRTC can take seconds
          k = compile(spec, options);
        }
        return kernel_dict(k);
      },
      nb::arg("spec_json"), nb::arg("arch") = "", nb::arg("use_cache") = true,
      "Generates, compiles (NVRTC) and caches the kernel; arch '' = the current GPU's.");

  m.def(
      "emit_cuda",
      [](const std::string& spec_json, const std::string& arch) {
        const AttentionSpec spec = parsed_spec(spec_json);
        nb::gil_scoped_release release;
        return emit_cuda(spec, arch);
      },
      nb::arg("spec_json"), nb::arg("arch") = "", "The CUDA source NVRTC would compile.");

  m.def(
      "emit_ir",
      [](const std::string& spec_json, const std::string& arch, const std::string& after) {
        const AttentionSpec spec = parsed_spec(spec_json);
        nb::gil_scoped_release release;
        return emit_ir(spec, arch, after);
      },
      nb::arg("spec_json"), nb::arg("arch") = "", nb::arg("after") = "",
      "The printed tile IR after pass `after` ('lower' = before any pass, '' = after all).");

  m.def(
      "resolve_tile",
      [](const std::string& spec_json, const std::string& arch) {
        const AttentionSpec spec = parsed_spec(spec_json);
        AttentionSpec resolved;
        {
          nb::gil_scoped_release release;
          resolved = resolve_tile(spec, arch);
        }
        return spec_to_json(resolved);
      },
      nb::arg("spec_json"), nb::arg("arch") = "",
      "The spec's canonical JSON with its tile filled in as compile()/forward() would.");

  // NVRTC is dlopen'ed on the first compile (flashjit/nvrtc_loader.h); flashjit/_nvrtc.py adds
  // pip's nvidia-cuda-nvrtc folders to the search at import.
  m.def("nvrtc_built_major", [] { return nvrtc_built_major(); },
        "The CUDA major flashjit was built for (the NVRTC major it loads).");
  m.def("nvrtc_soname", [] { return nvrtc_soname(); }, "e.g. 'libnvrtc.so.13'");
  m.def(
      "set_nvrtc_search_dirs",
      [](const std::vector<std::string>& dirs, const std::string& origin) { set_nvrtc_search_dirs(dirs, origin); },
      nb::arg("dirs"), nb::arg("origin"),
      "Folders searched for NVRTC after FLASHJIT_NVRTC and before the toolkit's (until NVRTC is loaded).");
  m.def(
      "nvrtc_candidates",
      [] {
        nb::list out;
        for (const NvrtcCandidate& c : nvrtc_candidates()) out.append(nb::make_tuple(c.path, c.origin));
        return out;
      },
      "The (path, origin) pairs tried for NVRTC, in order.");
  m.def(
      "nvrtc_library",
      [] {
        const NvrtcApi* api = nullptr;
        {
          nb::gil_scoped_release release;  // the first call searches and dlopens
          api = &nvrtc();
        }
        nb::dict d;
        d["path"] = api->path;
        d["origin"] = api->origin;
        d["version"] = nvrtc_version_string();
        return d;
      },
      "Loads NVRTC if needed; {'path', 'origin', 'version'}. CompileError listing what was tried if none loads.");

  m.def("gpu_available", [] { return gpu_available(); });
  m.def("gpu_unavailable_reason", [] { return gpu_unavailable_reason(); });
}

}  // namespace flashjit::python
