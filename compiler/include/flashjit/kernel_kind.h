// The kinds of kernel flashjit generates for a spec. Each has a name (the CLI's --kind, the
// prefix of its kernel names) and its own generator; the cache, the CLI and `import --verify`
// dispatch on it (runtime: kernel_kinds.h): the forward, the block-mask builder, the
// backward's three kernels and the deterministic backward's dQ kernel.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace flashjit {

enum class KernelKind { fwd, block_mask, bwd_preprocess, bwd_dkdv, bwd_dq_convert, bwd_dq };

const char* to_string(KernelKind k);

// What a kind is, declared once: the CLI (`compile` prints it), the docs and the tests read it.
struct KernelKindInfo {
  KernelKind kind;
  const char* name;       // to_string(kind)
  const char* skeleton;   // the device template(s) under templates/flashjit/
  const char* grid;       // the launch grid
  const char* tensors;    // what it reads -> what it writes
  bool tiled;             // has a tile config (spec.tile read as its own with --kind)
};
const KernelKindInfo& kind_info(KernelKind k);
// "fwd" / "block_mask" / "bwd_preprocess" / "bwd_dkdv" / "bwd_dq_convert" / "bwd_dq"; nullopt
// otherwise.
std::optional<KernelKind> kernel_kind_from_string(const std::string& name);
// Every kind, in the order the CLI lists them.
const std::vector<KernelKind>& kernel_kinds();
// "fwd, block_mask, bwd_preprocess, ...": for error messages.
std::string kernel_kind_names();
// The kind of a generated kernel, from its name (flashjit_fwd_..., flashjit_block_mask_...).
std::optional<KernelKind> kernel_kind_of_name(const std::string& kernel_name);

}  // namespace flashjit
