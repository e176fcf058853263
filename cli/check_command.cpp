// flashjit check: one variant on the GPU against float64 attention on the CPU, forward and
// backward, measured as flashjit.check() measures it in Python (check_metrics.h): per output
// the largest absolute error, the Frobenius-relative error and the dtype's rounding floor.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>

#include "check_metrics.h"
#include "cli.h"
#include "device_buffer.h"
#include "flashjit/backward.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/runtime.h"
#include "flashjit/half_bits.h"

namespace flashjit::cli {

namespace {

// The float64 reference is dense on one CPU core: forward and backward cost about
// b * heads_q * sq * sk * (head_dim + head_dim_v) multiply-adds several times over. Measured on
// a busy 2-core machine, per 2^20 scores: 1.3 s at head_dim 64, 4.8 s at 128, 14 s at 256; so
// 2^22 scores stay under about a minute for every head dim (docs/cli.md).
constexpr double kMaxScores = 1 << 22;

struct Inputs {
  eval::HostTensor t;
  std::vector<uint16_t> bits;
};

// Normal(0, 1) samples rounded to the dtype: the float64 copy holds exactly what the GPU reads.
Inputs random_tensor(int64_t b, int64_t h, int64_t s, int64_t d, DType dt, std::mt19937_64& rng) {
  Inputs in{eval::HostTensor(b, h, s, d), {}};
  std::normal_distribution<double> normal(0.0, 1.0);
  in.bits.resize(in.t.data.size());
  for (std::size_t i = 0; i < in.bits.size(); ++i) {
    in.bits[i] = to_bits16(normal(rng), dt);
    in.t.data[i] = from_bits16(in.bits[i], dt);
  }
  return in;
}

std::vector<double> decode(const std::vector<uint16_t>& bits, DType dt) {
  std::vector<double> out(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) out[i] = from_bits16(bits[i], dt);
  return out;
}

std::vector<uint16_t> download16(const DeviceBuffer& buf) {
  std::vector<uint16_t> host(buf.bytes() / 2);
  buf.download(host.data());
  return host;
}

uint64_t seed_arg(const Args& args) {
  const auto v = args.get("--seed");
  if (!v) return 0;
  try {
    std::size_t used = 0;
    const unsigned long long n = std::stoull(*v, &used);
    if (used == v->size() && !v->empty() && (*v)[0] != '-') return n;
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("--seed must be a non-negative integer; got '{}'", *v));
}

struct CheckOptions {
  uint64_t seed = 0;
  bool backward = true, deterministic = false;
};

// Runs one shape; returns whether every error is within its bound.
bool check_one(const AttentionSpec& spec0, const TuneShape& shape, const CheckOptions& opt) {
  AttentionSpec spec = spec0.normalized();
  spec.return_lse = true;  // the LSE is compared, and the backward reads it
  const DType dt = spec.dtype;
  const ElemType et = dt == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  const int64_t b = shape.batch, sq = shape.seqlen_q, sk = shape.seqlen_k, hq = spec.num_heads_q,
                hkv = spec.num_heads_kv, d = spec.head_dim, dv = spec.head_dim_v;
  fmt::print("flashjit check: {} | {} | seed {} | {}\n", describe(spec0), describe(shape), opt.seed,
             opt.backward ? (opt.deterministic ? "forward and backward (deterministic)" : "forward and backward")
                          : "forward only");
  std::fflush(stdout);

  std::mt19937_64 rng(opt.seed);
  const Inputs q = random_tensor(b, hq, sq, d, dt, rng), k = random_tensor(b, hkv, sk, d, dt, rng),
               v = random_tensor(b, hkv, sk, dv, dt, rng);
  const DropoutRng drop{opt.seed + 1, 0, nullptr};  // Python's dropout_state (seed + 1, 0)
  const DropoutKey key{drop.seed, drop.offset};
  const DropoutKey* keyp = spec.dropout_p > 0 ? &key : nullptr;

  CudaDriver& drv = CudaDriver::get();
  drv.current_device();  // a current context before the first allocation
  DeviceBuffer dq_in(q.bits.size() * 2), dk_in(k.bits.size() * 2), dv_in(v.bits.size() * 2),
      d_o(static_cast<std::size_t>(b * hq * sq * dv) * 2), d_lse(static_cast<std::size_t>(b * hq * sq) * 4);
  dq_in.upload(q.bits.data());
  dk_in.upload(k.bits.data());
  dv_in.upload(v.bits.data());
  d_o.poison();
  d_lse.poison();
  const TensorView tq = TensorView::bhsd(dq_in.data(), et, b, hq, sq, d),
                   tk = TensorView::bhsd(dk_in.data(), et, b, hkv, sk, d),
                   tv = TensorView::bhsd(dv_in.data(), et, b, hkv, sk, dv),
                   to = TensorView::bhsd(d_o.data(), et, b, hq, sq, dv),
                   tl = TensorView::lse(static_cast<float*>(d_lse.data()), b, hq, sq);
  forward(spec, tq, tk, tv, to, &tl, nullptr, {}, drop);
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after forward");
  const std::vector<double> o = decode(download16(d_o), dt);
  std::vector<float> lse_f(static_cast<std::size_t>(b * hq * sq));
  d_lse.download(lse_f.data());
  const std::vector<double> lse(lse_f.begin(), lse_f.end());

  std::vector<double> dq, dk, dvv;
  Inputs dout;
  if (opt.backward) {
    dout = random_tensor(b, hq, sq, dv, dt, rng);
    DeviceBuffer d_do(dout.bits.size() * 2), d_dq(dq_in.bytes()), d_dk(dk_in.bytes()), d_dv(dv_in.bytes());
    d_do.upload(dout.bits.data());
    for (DeviceBuffer* buf : {&d_dq, &d_dk, &d_dv}) buf->poison();
    BackwardOptions bo;
    bo.deterministic = opt.deterministic;
    bo.dropout = drop;
    backward(spec, tq, tk, tv, to, tl, TensorView::bhsd(d_do.data(), et, b, hq, sq, dv),
             TensorView::bhsd(d_dq.data(), et, b, hq, sq, d), TensorView::bhsd(d_dk.data(), et, b, hkv, sk, d),
             TensorView::bhsd(d_dv.data(), et, b, hkv, sk, dv), nullptr, {}, bo);
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after backward");
    dq = decode(download16(d_dq), dt);
    dk = decode(download16(d_dk), dt);
    dvv = decode(download16(d_dv), dt);
    for (DeviceBuffer* buf : {&d_do, &d_dq, &d_dk, &d_dv}) buf->free();
  }
  for (DeviceBuffer* buf : {&dq_in, &dk_in, &dv_in, &d_o, &d_lse}) buf->free();

  const auto t0 = std::chrono::steady_clock::now();
  const eval::Result ref = eval::reference_attention(spec, q.t, k.t, v.t, {}, keyp);
  std::vector<ErrorRow> rows{compare_tensor("out", o, ref.o.data, dt), compare_lse(lse, ref.lse)};
  if (opt.backward) {
    const eval::Grads g = eval::reference_attention_backward(spec, q.t, k.t, v.t, dout.t, {}, nullptr, keyp);
    rows.push_back(compare_tensor("dq", dq, g.dq.data, dt));
    rows.push_back(compare_tensor("dk", dk, g.dk.data, dt));
    rows.push_back(compare_tensor("dv", dvv, g.dv.data, dt));
  }
  const double ref_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool masked_ok = masked_rows_ok(o, lse, ref.lse, dv);
  fmt::print("{}", format_check_table(rows, masked_ok));
  bool ok = masked_ok;
  for (const ErrorRow& r : rows) ok = ok && r.ok();
  fmt::print("  {} (float64 reference: {:.1f} s on the CPU)\n",
             ok ? "ok: every error within its bound" : "FAILED: an error is outside its bound", ref_s);
  return ok;
}

}  // namespace

int run_check(const Args& args) {
  const AttentionSpec spec = load_spec(args);
  if (!spec.captures.empty())
    throw UsageError("the spec reads captured tensors, whose values the CLI does not have; check it from Python "
                     "with flashjit.check(..., mask_mod=..., score_mod=...)");
  const auto shape_arg = args.get("--shape");
  if (!shape_arg) throw UsageError("check needs --shape, e.g. --shape 'b=2,sq=1000,sk=1000'");
  const std::vector<TuneShape> shapes = parse_shapes(*shape_arg, "--shape");
  const AttentionSpec n = spec.normalized();
  for (const TuneShape& s : shapes) {
    const double scores = static_cast<double>(s.batch) * n.num_heads_q * static_cast<double>(s.seqlen_q) *
                          static_cast<double>(s.seqlen_k);
    if (scores > kMaxScores)
      throw UsageError(fmt::format("--shape {}: b * heads_q * sq * sk = {:.0f} is above {:.0f}, where the float64 "
                                   "reference on the CPU would take minutes; use a smaller --shape",
                                   describe(s), scores, kMaxScores));
  }
  CheckOptions opt;
  opt.seed = seed_arg(args);
  opt.backward = !args.flag("--forward-only");
  opt.deterministic = args.flag("--deterministic");
  if (opt.deterministic && !opt.backward)
    throw UsageError("--deterministic is about the backward; it does nothing with --forward-only");
  if (const auto dir = args.get("--cache-dir")) ::setenv("FLASHJIT_CACHE_DIR", dir->c_str(), 1);
  // The kernel checked is the one later calls get: the tuned winner (unless the user asks
  // for background mode, whose first call runs the interim, quickly compiled kernel).
  ::setenv("FLASHJIT_TUNE_MODE", "blocking", 0);
  if (!gpu_available())
    throw CudaError(fmt::format("check runs the kernels, so it needs a GPU: {} (flashjit compile --arch and "
                                "flashjit tune --compile-only work without one)",
                                gpu_unavailable_reason()));
  bool ok = true;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (i) fmt::print("\n");
    ok = check_one(spec, shapes[i], opt) && ok;
  }
  return ok ? 0 : 1;
}

}  // namespace flashjit::cli
