// Host-side cost of flashjit's launch path, on a GPU:
//   forward_us    median host time of one forward() call in steady state (tile decision
//                 remembered, kernel loaded): validation + argument checks + launch;
//   compile_hit_ms a new process's compile() with a warm disk cache (a disk-cache hit);
//   first_call_ms  its first forward() after that (tuning-record lookup, module load).
// The problem is tiny (b=1, h=1, s=128, d=64) so the GPU never becomes the bottleneck;
// the queue is drained every 256 calls outside the timed region.
// Uses only the public API, so the same file builds against older flashjit versions for
// before/after comparisons (scripts/device_host_overhead.sh).
//
//   host_overhead [calls]      prints one JSON line
#include <flashjit/cuda_driver.h>
#include <flashjit/runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  const auto t_start = std::chrono::steady_clock::now();
  const int calls = argc > 1 ? std::atoi(argv[1]) : 20000;
  flashjit::CudaDriver& drv = flashjit::CudaDriver::get();
  if (!drv.available()) {
    std::printf("{\"error\": \"no GPU: %s\"}\n", drv.unavailable_reason().c_str());
    return 2;
  }
  drv.current_device();
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::bf16;
  spec.head_dim = 64;
  spec.mask.kind = flashjit::MaskKind::causal;
  const int64_t B = 1, H = 1, S = 128, D = 64;
  const size_t bytes = size_t(B * H * S * D) * 2;
  CUdeviceptr q, k, v, o;
  for (CUdeviceptr* p : {&q, &k, &v, &o}) {
    drv.check(drv.cuMemAlloc(p, bytes), "cuMemAlloc");
    drv.check(drv.cuMemsetD8(*p, 0, bytes), "cuMemsetD8");
  }
  using flashjit::TensorView;
  auto view = [&](CUdeviceptr p) {
    return TensorView::bhsd(reinterpret_cast<void*>(p), flashjit::ElemType::bf16, B, H, S, D);
  };
  const TensorView vq = view(q), vk = view(k), vv = view(v), vo = view(o);

  // compile() first: in a new process with a warm cache this is a disk-cache hit.
  flashjit::CompileOptions opt;
  auto t0 = std::chrono::steady_clock::now();
  const flashjit::CompiledKernel ck = flashjit::compile(spec, opt);
  const double compile_ms = ms_since(t0);
  // The first forward(): tuning-database lookup (warm when run a second time), module load.
  t0 = std::chrono::steady_clock::now();
  flashjit::forward(spec, vq, vk, vv, vo, nullptr, nullptr);
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
  const double first_call_ms = ms_since(t0);
  const double process_to_first_ms = ms_since(t_start);

  std::vector<double> us;
  us.reserve(size_t(calls));
  for (int i = 0; i < calls; ++i) {
    if (i % 256 == 0) drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
    t0 = std::chrono::steady_clock::now();
    flashjit::forward(spec, vq, vk, vv, vo, nullptr, nullptr);
    us.push_back(ms_since(t0) * 1000.0);
  }
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize");
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[size_t(p * double(us.size() - 1))]; };
  std::printf(
      "{\"forward_us_median\": %.3f, \"forward_us_p10\": %.3f, \"forward_us_p90\": %.3f, \"calls\": %d, "
      "\"first_call_ms\": %.3f, \"process_start_to_first_result_ms\": %.3f, \"compile_hit_ms\": %.3f, "
      "\"compile_cache_hit\": %s}\n",
      pct(0.5), pct(0.1), pct(0.9), calls, first_call_ms, process_to_first_ms, compile_ms,
      ck.cache_hit ? "true" : "false");
  for (CUdeviceptr p : {q, k, v, o}) drv.cuMemFree(p);
  return 0;
}
