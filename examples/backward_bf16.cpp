// The backward pass from C++: compile its kernels with flashjit and, when a GPU is present,
// run forward (with the LSE) and backward() on random bf16 tensors, check dQ, dK and dV
// against a float64 computation on the host, and show that deterministic mode gives the same
// bits twice.
//
//   build/examples/backward_bf16
#include <flashjit/backward.h>
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
uint16_t to_bf16(float f) {  // round to nearest even (finite inputs)
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
double rel_err(const std::vector<uint16_t>& got, const std::vector<double>& want) {
  double e2 = 0, r2 = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = from_bf16(got[i]) - want[i];
    e2 += std::isfinite(d) ? d * d : INFINITY;
    r2 += want[i] * want[i];
  }
  return std::sqrt(e2 / std::max(r2, 1e-30));
}
}  // namespace

int main() {
  // 1. The variant: bf16, head_dim 64, causal, 6 query heads sharing 2 KV heads (GQA 3:1),
  //    with the LSE the backward needs.
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::bf16;
  spec.head_dim = 64;
  spec.num_heads_q = 6;
  spec.num_heads_kv = 2;
  spec.mask.kind = flashjit::MaskKind::causal;
  spec.return_lse = true;

  // 2. The backward's kernels (no GPU needed with an arch): D = rowsum(dO ∘ O); dK, dV per
  //    block of keys with dQ reduce-added; the dQ convert.
  const bool gpu = flashjit::gpu_available();
  flashjit::CompileOptions options;
  if (!gpu) options.arch = "sm_90a";
  for (const flashjit::CompiledKernel& k :
       {flashjit::compile_bwd_preprocess(spec, options), flashjit::compile_bwd_dkdv(spec, options),
        flashjit::compile_bwd_dq_convert(spec, options)})
    std::printf("kernel: %s (%s), %d registers, %d bytes of shared memory\n", k.kernel_name.c_str(), k.arch.c_str(),
                k.resources.registers, k.dynamic_smem_bytes);
  if (!gpu) {
    std::printf("no GPU: %s; compiled only\n", flashjit::gpu_unavailable_reason().c_str());
    return 0;
  }

  // 3. Random q, k, v, dO in (batch, heads, seqlen, head_dim) layout.
  const int64_t B = 1, HQ = 6, HKV = 2, S = 300, D = 64, G = HQ / HKV;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto random_bf16 = [&](int64_t n) {
    std::vector<uint16_t> h(static_cast<size_t>(n));
    for (auto& x : h) x = to_bf16(normal(rng));
    return h;
  };
  const std::vector<uint16_t> q = random_bf16(B * HQ * S * D), k = random_bf16(B * HKV * S * D),
                              v = random_bf16(B * HKV * S * D), dout = random_bf16(B * HQ * S * D);
  flashjit::CudaDriver& drv = flashjit::CudaDriver::get();
  drv.current_device();  // makes the primary context current
  auto alloc = [&](size_t bytes) {
    CUdeviceptr p = 0;
    drv.check(drv.cuMemAlloc(&p, bytes), "cuMemAlloc");
    return p;
  };
  auto upload = [&](const std::vector<uint16_t>& h) {
    const CUdeviceptr p = alloc(h.size() * 2);
    drv.check(drv.cuMemcpyHtoD(p, h.data(), h.size() * 2), "cuMemcpyHtoD");
    return p;
  };
  const CUdeviceptr d_q = upload(q), d_k = upload(k), d_v = upload(v), d_do = upload(dout);
  const CUdeviceptr d_o = alloc(q.size() * 2), d_lse = alloc(B * HQ * S * 4), d_dq = alloc(q.size() * 2),
                    d_dk = alloc(k.size() * 2), d_dv = alloc(v.size() * 2);
  using flashjit::TensorView;
  const auto bf16 = flashjit::ElemType::bf16;
  auto view = [&](CUdeviceptr p, int64_t h) { return TensorView::bhsd(reinterpret_cast<void*>(p), bf16, B, h, S, D); };
  const TensorView lse = TensorView::lse(reinterpret_cast<float*>(d_lse), B, HQ, S);

  // 4. Forward with the LSE, then the backward, on the default stream.
  flashjit::forward(spec, view(d_q, HQ), view(d_k, HKV), view(d_v, HKV), view(d_o, HQ), &lse, nullptr);
  auto run_backward = [&](bool deterministic) {
    flashjit::BackwardOptions o;
    o.deterministic = deterministic;
    flashjit::backward(spec, view(d_q, HQ), view(d_k, HKV), view(d_v, HKV), view(d_o, HQ), lse, view(d_do, HQ),
                       view(d_dq, HQ), view(d_dk, HKV), view(d_dv, HKV), nullptr, {}, o);
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
    std::vector<uint16_t> gq(q.size()), gk(k.size()), gv(v.size());
    drv.check(drv.cuMemcpyDtoH(gq.data(), d_dq, gq.size() * 2), "cuMemcpyDtoH");
    drv.check(drv.cuMemcpyDtoH(gk.data(), d_dk, gk.size() * 2), "cuMemcpyDtoH");
    drv.check(drv.cuMemcpyDtoH(gv.data(), d_dv, gv.size() * 2), "cuMemcpyDtoH");
    return std::vector<std::vector<uint16_t>>{gq, gk, gv};
  };
  const auto grads = run_backward(false);
  const auto det1 = run_backward(true), det2 = run_backward(true);
  for (CUdeviceptr p : {d_q, d_k, d_v, d_do, d_o, d_lse, d_dq, d_dk, d_dv}) drv.cuMemFree(p);

  // 5. float64 on the host: P = softmax(q kᵀ / sqrt(D)) with the causal mask, then
  //    dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = dS K / sqrt(D),
  //    dK = dSᵀ Q / sqrt(D); dK and dV summed over the query heads of a KV head.
  std::vector<double> rq(q.size(), 0.0), rk(k.size(), 0.0), rv(v.size(), 0.0);
  const double scale = 1.0 / std::sqrt(double(D));
  auto at = [&](const std::vector<uint16_t>& t, int64_t heads, int64_t h, int64_t row, int64_t c) {
    return from_bf16(t[static_cast<size_t>(((0 * heads + h) * S + row) * D + c)]);
  };
  for (int64_t h = 0; h < HQ; ++h) {
    const int64_t hk = h / G;
    for (int64_t i = 0; i < S; ++i) {
      std::vector<double> p(static_cast<size_t>(i + 1)), dp(p.size());
      double mx = -INFINITY, sum = 0, delta = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < D; ++c) dot += at(q, HQ, h, i, c) * at(k, HKV, hk, j, c);
        p[j] = dot * scale;
        mx = std::max(mx, p[j]);
      }
      for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
      std::vector<double> o(static_cast<size_t>(D), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        p[j] /= sum;
        for (int64_t c = 0; c < D; ++c) o[c] += p[j] * at(v, HKV, hk, j, c);
      }
      for (int64_t c = 0; c < D; ++c) delta += o[c] * at(dout, HQ, h, i, c);
      for (int64_t j = 0; j <= i; ++j) {
        double d = 0;
        for (int64_t c = 0; c < D; ++c) d += at(dout, HQ, h, i, c) * at(v, HKV, hk, j, c);
        const double ds = p[j] * (d - delta);
        for (int64_t c = 0; c < D; ++c) {
          rv[static_cast<size_t>((hk * S + j) * D + c)] += p[j] * at(dout, HQ, h, i, c);
          rq[static_cast<size_t>((h * S + i) * D + c)] += ds * at(k, HKV, hk, j, c) * scale;
          rk[static_cast<size_t>((hk * S + j) * D + c)] += ds * at(q, HQ, h, i, c) * scale;
        }
      }
    }
  }
  const double eq = rel_err(grads[0], rq), ek = rel_err(grads[1], rk), ev = rel_err(grads[2], rv);
  const double dq_det = rel_err(det1[0], rq);
  const bool same = det1 == det2;
  const bool ok = eq < 3e-2 && ek < 3e-2 && ev < 3e-2 && dq_det < 3e-2 && same;
  std::printf("relative error vs float64: dq %.2e, dk %.2e, dv %.2e; deterministic dq %.2e, "
              "two deterministic runs %s (%s)\n",
              eq, ek, ev, dq_det, same ? "bit-identical" : "DIFFER", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
