// The kernel-kind registry (kernel_kind.h).
#include "flashjit/kernel_kind.h"

namespace flashjit {

const char* to_string(KernelKind k) {
  switch (k) {
    case KernelKind::fwd: return "fwd";
    case KernelKind::block_mask: return "block_mask";
    case KernelKind::bwd_preprocess: return "bwd_preprocess";
    case KernelKind::bwd_dkdv: return "bwd_dkdv";
    case KernelKind::bwd_dq_convert: return "bwd_dq_convert";
    case KernelKind::bwd_dq: return "bwd_dq";
  }
  return "?";
}

const std::vector<KernelKind>& kernel_kinds() {
  static const std::vector<KernelKind> all = {KernelKind::fwd, KernelKind::block_mask, KernelKind::bwd_preprocess,
                                                   KernelKind::bwd_dkdv, KernelKind::bwd_dq_convert,
                                                   KernelKind::bwd_dq};  // after bwd_dq_convert: kernel_kind_of_name
  return all;
}

std::optional<KernelKind> kernel_kind_from_string(const std::string& name) {
  for (KernelKind k : kernel_kinds())
    if (name == to_string(k)) return k;
  return std::nullopt;
}

std::string kernel_kind_names() {
  std::string s;
  for (KernelKind k : kernel_kinds()) s += (s.empty() ? "" : ", ") + std::string(to_string(k));
  return s;
}

std::optional<KernelKind> kernel_kind_of_name(const std::string& kernel_name) {
  for (KernelKind k : kernel_kinds())
    if (kernel_name.rfind("flashjit_" + std::string(to_string(k)) + "_", 0) == 0) return k;
  return std::nullopt;
}

}  // namespace flashjit
