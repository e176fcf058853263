// A user-written variant from C++: packed sequences (a document mask + causal) with the
// document ids as a captured tensor, run two ways:
//   1. forward() with the mask expression (tiles classified by interval analysis);
//   2. build_block_mask() once, then forward() over the block mask (with_block_mask).
// Both are checked on a few rows against a float64 computation on the host. Without a GPU
// it compiles the three kernels (two forwards, the builder) with NVRTC and stops.
//
//   build/examples/document_mask
#include <flashjit/block_mask.h>
#include <flashjit/cuda_driver.h>
#include <flashjit/runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
double from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

int main() {
  namespace expr = flashjit::expr;
  // 1. The variant: key j visible to query i iff both lie in the same document and j <= i.
  const std::string mask = "doc[q_idx] == doc[kv_idx] & kv_idx <= q_idx";
  const std::vector<expr::CaptureDecl> caps = {{"doc", expr::CaptureDType::i32, 1}};
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::bf16;
  spec.head_dim = 64;
  spec.num_heads_q = 4;
  spec.num_heads_kv = 4;
  spec.mask.kind = flashjit::MaskKind::custom;
  spec.mask.expr = mask;
  spec.captures = caps;
  const int block = 128;
  const flashjit::AttentionSpec over_cells = flashjit::with_block_mask(spec, block, block, false, false);
  std::printf("mask:            %s\nwith block mask: %s\n", spec.mask.expr.c_str(), over_cells.mask.expr.c_str());

  const bool gpu = flashjit::gpu_available();
  flashjit::CompileOptions options;
  if (!gpu) options.arch = "sm_90a";
  for (const flashjit::AttentionSpec* s : {static_cast<const flashjit::AttentionSpec*>(&spec), &over_cells}) {
    const flashjit::CompiledKernel k = flashjit::compile(*s, options);
    std::printf("kernel %s: %d registers\n", k.kernel_name.c_str(), k.resources.registers);
  }
  const flashjit::CompiledKernel builder = flashjit::compile_block_mask(mask, caps, options);
  std::printf("kernel %s: %d registers\n", builder.kernel_name.c_str(), builder.resources.registers);
  if (!gpu) {
    std::printf("no GPU: %s; compiled only\n", flashjit::gpu_unavailable_reason().c_str());
    return 0;
  }

  // 2. Three documents packed into one sequence of 1000 tokens.
  const int64_t B = 1, H = 4, S = 1000, D = 64;
  std::vector<int32_t> doc(S);
  for (int64_t i = 0; i < S; ++i) doc[i] = i < 300 ? 0 : i < 777 ? 1 : 2;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::vector<uint16_t> q(B * H * S * D), k(q.size()), v(q.size()), o(q.size());
  for (auto* t : {&q, &k, &v})
    for (auto& x : *t) x = to_bf16(normal(rng));

  flashjit::CudaDriver& drv = flashjit::CudaDriver::get();
  drv.current_device();  // makes the primary context current
  auto upload = [&](const void* h, size_t bytes) {
    CUdeviceptr p = 0;
    drv.check(drv.cuMemAlloc(&p, bytes), "cuMemAlloc");
    drv.check(drv.cuMemcpyHtoD(p, h, bytes), "cuMemcpyHtoD");
    return p;
  };
  const CUdeviceptr dq = upload(q.data(), q.size() * 2), dk = upload(k.data(), k.size() * 2),
                    dv = upload(v.data(), v.size() * 2), d_o = upload(o.data(), o.size() * 2),
                    ddoc = upload(doc.data(), doc.size() * 4);
  flashjit::TensorView doc_view;
  doc_view.data = reinterpret_cast<void*>(ddoc);
  doc_view.dtype = flashjit::ElemType::i32;
  doc_view.rank = 1;
  doc_view.sizes[0] = S, doc_view.strides[0] = 1;

  // 3. The block mask: cells [1, 1, ceil(S / 128), ceil(S / 128)] of int32.
  const flashjit::BlockMaskShape shape{1, 1, S, S, block, block};
  const int64_t n_cells = shape.q_blocks() * shape.kv_blocks();
  CUdeviceptr dcells = 0;
  drv.check(drv.cuMemAlloc(&dcells, n_cells * 4), "cuMemAlloc");
  flashjit::TensorView cells;
  cells.data = reinterpret_cast<void*>(dcells);
  cells.dtype = flashjit::ElemType::i32;
  cells.rank = 4;
  const int64_t dims[4] = {1, 1, shape.q_blocks(), shape.kv_blocks()};
  for (int d = 3, stride = 1; d >= 0; --d) cells.sizes[d] = dims[d], cells.strides[d] = stride, stride *= dims[d];
  flashjit::build_block_mask(mask, caps, shape, cells, nullptr, {doc_view});

  using flashjit::TensorView;
  const auto bf16 = flashjit::ElemType::bf16;
  auto view = [&](CUdeviceptr p) { return TensorView::bhsd(reinterpret_cast<void*>(p), bf16, B, H, S, D); };
  double worst = 0;
  for (int run = 0; run < 2; ++run) {
    drv.check(drv.cuMemsetD8(d_o, 0xFF, o.size() * 2), "cuMemsetD8");  // poison: bf16 NaN
    if (run == 0)
      flashjit::forward(spec, view(dq), view(dk), view(dv), view(d_o), nullptr, nullptr, {doc_view});
    else
      flashjit::forward(over_cells, view(dq), view(dk), view(dv), view(d_o), nullptr, nullptr, {doc_view, cells});
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
    drv.check(drv.cuMemcpyDtoH(o.data(), d_o, o.size() * 2), "cuMemcpyDtoH");
    // 4. Rows at document starts and ends against float64.
    double max_err = 0;
    for (int64_t h : {0, 3})
      for (int64_t i : {0, 1, 299, 300, 301, 776, 777, 999}) {
        auto at = [&](const std::vector<uint16_t>& t, int64_t row, int64_t c) {
          return from_bf16(t[((0 * H + h) * S + row) * D + c]);
        };
        std::vector<double> out(D, 0.0);
        double mx = -INFINITY, sum = 0;
        std::vector<double> s(S, -INFINITY);
        for (int64_t j = 0; j <= i; ++j) {
          if (doc[j] != doc[i]) continue;
          double dot = 0;
          for (int64_t c = 0; c < D; ++c) dot += at(q, i, c) * at(k, j, c);
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j <= i; ++j) {
          if (s[j] == -INFINITY) continue;
          const double p = std::exp(s[j] - mx);
          sum += p;
          for (int64_t c = 0; c < D; ++c) out[c] += p * at(v, j, c);
        }
        for (int64_t c = 0; c < D; ++c) {
          const double err = std::fabs(at(o, i, c) - out[c] / sum);
          max_err = std::isnan(err) ? INFINITY : std::max(max_err, err);
        }
      }
    std::printf("%s: max abs error vs float64 on 16 rows: %.3g\n", run == 0 ? "mask expression" : "block mask     ",
                max_err);
    worst = std::max(worst, max_err);
  }
  for (CUdeviceptr p : {dq, dk, dv, d_o, ddoc, dcells}) drv.cuMemFree(p);
  const bool ok = worst < 5e-2;
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
