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

const KernelKindInfo& kind_info(KernelKind k) {
  static const KernelKindInfo table[] = {
      {KernelKind::fwd, "fwd", "fwd_traits.cuh / fwd_traits_sm90.cuh and the emitted loop (the tile IR)",
       "(ceil(seqlen_q / block_m), heads_q, batch)", "q, k, v, captures -> o, lse", true},
      {KernelKind::block_mask, "block_mask", "block_mask_build.cuh", "one thread per (q block, kv block) cell",
       "captures -> block-mask cells", false},
      {KernelKind::bwd_preprocess, "bwd_preprocess", "bwd_preprocess.cuh", "(ceil(seqlen_q / 64), heads_q, batch)",
       "o, dO -> D = rowsum(dO * o), zeroed dQ accumulator", false},
      {KernelKind::bwd_dkdv, "bwd_dkdv", "bwd_dkdv_sm80.cuh (mma.sync) / bwd_dkdv_sm90.cuh (wgmma), bwd_block.cuh",
       "(ceil(seqlen_k / block_n), heads_kv, batch)",
       "q, k, v, lse, dO, D, captures -> dk, dv, dQ partials (+ capture gradients)", true},
      {KernelKind::bwd_dq_convert, "bwd_dq_convert", "bwd_dq_convert.cuh", "(ceil(seqlen_q / 64), heads_q, batch)",
       "dQ accumulator -> dq", false},
      {KernelKind::bwd_dq, "bwd_dq", "bwd_dq_sm80.cuh, bwd_block.cuh", "(ceil(seqlen_q / block_m), heads_q, batch)",
       "q, k, v, lse, dO, D, captures -> dq (deterministic mode)", true},
  };
  for (const KernelKindInfo& i : table)
    if (i.kind == k) return i;
  return table[0];
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
