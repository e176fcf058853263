// Host cost of the checks forward() runs before a launch: validate(spec) +
// validate_forward_args(q, k, v, o, lse) for a bf16, D=128, 16/4-head problem with an LSE
// (fake, disjoint device addresses: nothing is launched, no GPU needed). Prints the
// minimum and median ns per call over 51 rounds of 200,000 calls.
// Before/after a change: build this file against another tree's sources of the same
// functions, e.g. for commit 9be9cbc (R = an extracted `git archive 9be9cbc`):
//   g++ -O2 -std=c++17 -DFLASHJIT_VERSION='"x"' -I$R/compiler/include -I$R/runtime/include \
//     -I$R/runtime/src -I/usr/local/cuda/include bench/arg_check_overhead.cpp \
//     $R/runtime/src/validate_args.cpp $R/runtime/src/tensor_view.cpp $R/compiler/spec/spec*.cpp -lfmt
// (trees from this one on also need -I$R/compiler/spec, compiler/support/printable.cpp and
// compiler/spec/strict_json.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include "flashjit/spec.h"
#include "validate_args.h"  // internal (runtime/src)
using namespace flashjit;
int main() {
  AttentionSpec spec; spec.dtype = DType::bf16; spec.head_dim = 128; spec.num_heads_q = 16; spec.num_heads_kv = 4;
  spec.mask.kind = MaskKind::causal; spec.return_lse = true;
  alignas(16) static char buf[5][64];
  const int64_t B = 2, S = 4096, D = 128;
  auto v4 = [&](int i, int64_t h) { TensorView t = TensorView::bhsd(buf[i], ElemType::bf16, B, h, S, D); t.data = reinterpret_cast<void*>(uintptr_t(0x100000000ull) * (i + 1)); return t; };
  TensorView q = v4(0, 16), k = v4(1, 4), v = v4(2, 4), o = v4(3, 16);
  TensorView lse = TensorView::lse(reinterpret_cast<float*>(uintptr_t(0x100000000ull) * 5), B, 16, S);
  std::vector<double> ns;
  for (int rep = 0; rep < 51; ++rep) {
    const int n = 200000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) { validate(spec); ProblemShape s = validate_forward_args(spec, q, k, v, o, &lse); asm volatile("" :: "r"(s.batch)); }
    ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n);
  }
  std::sort(ns.begin(), ns.end());
  std::printf("validate + validate_forward_args: min %.1f ns, median %.1f ns per call\n", ns[0], ns[ns.size() / 2]);
}
