// Compile a causal bf16 attention kernel with flashjit and, when a GPU is present, run it
// and check a few rows against a float64 computation on the host.
//
//   build/examples/causal_bf16
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
// bf16 <-> float, round to nearest even (the inputs are finite).
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
  // 1. The variant: bf16, head_dim 128, causal, 8 query heads sharing 2 KV heads (GQA).
  //    The same as spec_from_json(R"({"dtype":"bf16","head_dim":128,"num_heads_q":8,
  //    "num_heads_kv":2,"mask":{"kind":"causal"}})"). No tile: the heuristic picks one.
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::bf16;
  spec.head_dim = 128;
  spec.num_heads_q = 8;
  spec.num_heads_kv = 2;
  spec.mask.kind = flashjit::MaskKind::causal;

  // 2. Compile (NVRTC, then the disk cache). Without a GPU, name an arch to compile for.
  const bool gpu = flashjit::gpu_available();
  flashjit::CompileOptions options;
  if (!gpu) options.arch = "sm_90a";
  const flashjit::CompiledKernel kernel = flashjit::compile(spec, options);
  std::printf("kernel:    %s (%s)\n", kernel.kernel_name.c_str(), kernel.arch.c_str());
  std::printf("cache hit: %s, compile time %.1f ms, %d registers\n", kernel.cache_hit ? "yes" : "no",
              kernel.compile_ms, kernel.resources.registers);
  if (!gpu) {
    std::printf("no GPU: %s; compiled only\n", flashjit::gpu_unavailable_reason().c_str());
    return 0;
  }

  // 3. Random q/k/v in (batch, heads, seqlen, head_dim) layout; o poisoned with NaN.
  const int64_t B = 2, HQ = 8, HKV = 2, S = 1000, D = 128;  // S is not a multiple of the tile
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto random_bf16 = [&](int64_t n) {
    std::vector<uint16_t> h(n);
    for (auto& x : h) x = to_bf16(normal(rng));
    return h;
  };
  const std::vector<uint16_t> q = random_bf16(B * HQ * S * D), k = random_bf16(B * HKV * S * D),
                              v = random_bf16(B * HKV * S * D);
  std::vector<uint16_t> o(q.size());

  flashjit::CudaDriver& drv = flashjit::CudaDriver::get();
  drv.current_device();  // makes the primary context current
  auto upload = [&](const std::vector<uint16_t>& h) {
    CUdeviceptr p = 0;
    drv.check(drv.cuMemAlloc(&p, h.size() * 2), "cuMemAlloc");
    drv.check(drv.cuMemcpyHtoD(p, h.data(), h.size() * 2), "cuMemcpyHtoD");
    return p;
  };
  const CUdeviceptr dq = upload(q), dk = upload(k), dv = upload(v), d_o = upload(o);
  drv.check(drv.cuMemsetD8(d_o, 0xFF, o.size() * 2), "cuMemsetD8");  // 0xFFFF is a bf16 NaN

  // 4. Run the forward pass on the default stream and copy the output back. forward() picks
  //    the tile: the tuning database's, else the autotuner's (first call), else the heuristic.
  using flashjit::TensorView;
  const auto bf16 = flashjit::ElemType::bf16;
  auto view = [&](CUdeviceptr p, int64_t h) { return TensorView::bhsd(reinterpret_cast<void*>(p), bf16, B, h, S, D); };
  flashjit::forward(spec, view(dq, HQ), view(dk, HKV), view(dv, HKV), view(d_o, HQ), /*lse=*/nullptr,
                    /*stream=*/nullptr);
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
  drv.check(drv.cuMemcpyDtoH(o.data(), d_o, o.size() * 2), "cuMemcpyDtoH");
  for (CUdeviceptr p : {dq, dk, dv, d_o}) drv.cuMemFree(p);

  // 5. Check some rows against float64 softmax(q kᵀ / sqrt(D)) v with the causal mask.
  double max_err = 0;
  for (int64_t b : {0, 1})
    for (int64_t h : {0, 3, 7})
      for (int64_t i : {0, 1, 63, 64, 500, 999}) {
        const int64_t hk = h / (HQ / HKV);  // the KV head this query head reads
        auto at = [&](const std::vector<uint16_t>& t, int64_t heads, int64_t hh, int64_t row, int64_t c) {
          return from_bf16(t[((b * heads + hh) * S + row) * D + c]);
        };
        std::vector<double> s(i + 1), out(D, 0.0);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= i; ++j) {  // causal: key j <= query i
          double dot = 0;
          for (int64_t c = 0; c < D; ++c) dot += at(q, HQ, h, i, c) * at(k, HKV, hk, j, c);
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double p = std::exp(s[j] - mx);
          sum += p;
          for (int64_t c = 0; c < D; ++c) out[c] += p * at(v, HKV, hk, j, c);
        }
        for (int64_t c = 0; c < D; ++c) {
          const double err = std::fabs(at(o, HQ, h, i, c) - out[c] / sum);
          max_err = std::isnan(err) ? INFINITY : std::max(max_err, err);
        }
      }
  const bool ok = max_err < 5e-2;
  std::printf("max abs error vs float64 on 36 rows: %.3g (%s)\n", max_err, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
