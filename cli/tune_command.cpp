// flashjit tune: offline autotuning into the tuning database. With a GPU, every
// (spec, shape) pair is tuned on random tensors of that shape and the winner stored, so a
// later process launches tuned kernels without tuning or compiling. Without a GPU (or
// for an arch that is not the GPU's) it fills the kernel cache with each spec's heuristic
// kernel for --arch instead: compile-only mode, no tuning records. The backward's bwd_dkdv
// tile is tuned too (and its kernels compiled in compile-only mode) unless --forward-only.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>

#include "cli.h"
#include "device_buffer.h"
#include "progress.h"
#include "flashjit/autotune.h"
#include "flashjit/backward.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"

namespace flashjit::cli {

namespace {

// Random 16-bit floats with magnitudes in [2^-5, 2) and random signs: never zero (a zero
// input lets hardware skip work and makes timings lie), never large enough to overflow.
void fill_random(DeviceBuffer& buf, std::size_t elems, DType dt, std::mt19937_64& rng) {
  std::vector<uint16_t> host(elems);
  const int mant_bits = dt == DType::bf16 ? 7 : 10;
  const int exp_lo = dt == DType::bf16 ? 127 - 5 : 15 - 5;  // biased exponent of 2^-5
  for (std::size_t i = 0; i < elems; ++i) {
    const uint64_t r = rng();
    const uint32_t sign = r & 1, exp = exp_lo + static_cast<uint32_t>((r >> 1) % 6);
    const uint32_t mant = static_cast<uint32_t>(r >> 8) & ((1u << mant_bits) - 1);
    host[i] = static_cast<uint16_t>((sign << 15) | (exp << mant_bits) | mant);
  }
  CudaDriver& d = CudaDriver::get();
  d.check(d.cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(buf.data()), host.data(), elems * 2), "cuMemcpyHtoD");
}

// The tuned winner's kernel must be on disk for the next process; it normally is (the
// tuner compiles through the cache), unless this process found it in memory only.
void ensure_cached(const AttentionSpec& spec, const TuneResult& r) {
  const DiskCache cache(DiskCache::default_dir());
  if (cache.load(r.winner.cache_key)) return;
  AttentionSpec tiled = spec.normalized();
  tiled.tile = r.best;
  CacheEntry e;
  e.kernel_name = r.winner.kernel_name;
  e.image = r.winner.image;
  e.log = r.winner.log;
  e.resources = r.winner.resources;
  e.threads = r.winner.threads;
  e.dynamic_smem_bytes = r.winner.dynamic_smem_bytes;
  e.compile_ms = r.winner.compile_ms;
  e.spec_json = spec_to_json(tiled);
  e.arch = r.winner.arch;
  cache.store(r.winner.cache_key, e);
}

// The progress display of one (spec, shape) pair on stderr (progress.h): drawn only when
// stderr is a terminal; when stdout is that terminal too, its pending "[i/n] spec | shape ... "
// is written back when the display goes, so the line reads as it does without one.
class PairProgress {
 public:
  PairProgress(std::size_t spec, std::size_t specs, std::size_t shape, std::size_t shapes, const std::string& prefix)
      : line_(stderr, is_terminal(2), is_terminal(1) ? prefix : std::string()) {
    state_.spec = spec, state_.specs = specs, state_.shape = shape, state_.shapes = shapes;
  }
  TuneOptions options() {
    TuneOptions o;
    if (!is_terminal(2)) return o;  // nothing to draw: leave the tuner without a callback
    start_ = std::chrono::steady_clock::now();
    o.progress = [this](const TuneProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (p.compiled < p.candidates) timing_start_.reset();
      else if (!timing_start_) timing_start_ = now;  // the last compile just ended
      state_.candidates = p.candidates, state_.compiled = p.compiled, state_.timed = p.timed;
      state_.compile_s = std::chrono::duration<double>(now - start_).count();
      state_.timing_s = timing_start_ ? std::chrono::duration<double>(now - *timing_start_).count() : 0.0;
      line_.draw(format_progress(state_));
    };
    return o;
  }
  void note(const std::string& what) {
    line_.draw(fmt::format("[spec {}/{}, shape {}/{}] {}", state_.spec, state_.specs, state_.shape, state_.shapes,
                           what));
  }
  void finish() { line_.finish(); }

 private:
  TuneProgressState state_;
  ProgressLine line_;
  std::chrono::steady_clock::time_point start_;
  std::optional<std::chrono::steady_clock::time_point> timing_start_;
};

// Tunes one pair on fresh random tensors (BHSD layout) and stores the record.
// backward_too: then tune the backward's bwd_dkdv tile too; *backward_record gets its record
// (null when FLASHJIT_AUTOTUNE=0 kept backward() on the heuristic).
// `progress`: the pair's progress display (the forward's candidates; then a note while the
// backward tunes).
TuneResult tune_one(const AttentionSpec& spec0, const TuneShape& shape, std::mt19937_64& rng, bool backward_too,
                    std::optional<TuningRecord>* backward_record, PairProgress& progress) {
  const AttentionSpec s = spec0.normalized();
  const ElemType et = s.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  const int64_t b = shape.batch, hq = s.num_heads_q, hkv = s.num_heads_kv;
  const std::size_t nq = b * hq * shape.seqlen_q * s.head_dim, nk = b * hkv * shape.seqlen_k * s.head_dim,
                    nv = b * hkv * shape.seqlen_k * s.head_dim_v, no = b * hq * shape.seqlen_q * s.head_dim_v;
  DeviceBuffer q(nq * 2), k(nk * 2), v(nv * 2), o(no * 2), lse(b * hq * shape.seqlen_q * 4);
  fill_random(q, nq, s.dtype, rng);
  fill_random(k, nk, s.dtype, rng);
  fill_random(v, nv, s.dtype, rng);
  const TensorView tl = TensorView::lse(static_cast<float*>(lse.data()), b, hq, shape.seqlen_q);
  const TuneResult r =
      autotune(s, TensorView::bhsd(q.data(), et, b, hq, shape.seqlen_q, s.head_dim),
               TensorView::bhsd(k.data(), et, b, hkv, shape.seqlen_k, s.head_dim),
               TensorView::bhsd(v.data(), et, b, hkv, shape.seqlen_k, s.head_dim_v),
               TensorView::bhsd(o.data(), et, b, hq, shape.seqlen_q, s.head_dim_v), s.return_lse ? &tl : nullptr,
               nullptr, {}, progress.options());
  TuningDb::default_db().store(r.key, r.record());
  ensure_cached(s, r);
  if (backward_too) {
    // The backward's bwd_dkdv tile: backward() on this problem tunes it (FLASHJIT_AUTOTUNE
    // permitting) and stores the record under kind bwd_dkdv; the forward runs first for the
    // o and lse it reads.
    AttentionSpec with_lse = s;
    with_lse.return_lse = true;
    const TensorView tq = TensorView::bhsd(q.data(), et, b, hq, shape.seqlen_q, s.head_dim),
                     tk = TensorView::bhsd(k.data(), et, b, hkv, shape.seqlen_k, s.head_dim),
                     tv = TensorView::bhsd(v.data(), et, b, hkv, shape.seqlen_k, s.head_dim_v),
                     to = TensorView::bhsd(o.data(), et, b, hq, shape.seqlen_q, s.head_dim_v);
    progress.note("tuning the backward's bwd_dkdv tile");
    AttentionSpec tuned = with_lse;  // the forward's winner, so the forward is not tuned again
    tuned.tile = r.best;
    forward(tuned, tq, tk, tv, to, &tl, nullptr);
    DeviceBuffer dout(no * 2), dq(nq * 2), dk(nk * 2), dv(nv * 2);
    fill_random(dout, no, s.dtype, rng);
    backward(with_lse, tq, tk, tv, to, tl, TensorView::bhsd(dout.data(), et, b, hq, shape.seqlen_q, s.head_dim_v),
             TensorView::bhsd(dq.data(), et, b, hq, shape.seqlen_q, s.head_dim),
             TensorView::bhsd(dk.data(), et, b, hkv, shape.seqlen_k, s.head_dim),
             TensorView::bhsd(dv.data(), et, b, hkv, shape.seqlen_k, s.head_dim_v), nullptr);
    CudaDriver& d = CudaDriver::get();
    d.check(d.cuCtxSynchronize(), "cuCtxSynchronize after backward");
    for (DeviceBuffer* buf : {&dout, &dq, &dk, &dv}) buf->free();
    const TuningKey bk = make_tuning_key(with_lse, r.key.bucket, current_device_info(), "bwd_dkdv");
    *backward_record = TuningDb::default_db().lookup(bk);
  }
  for (DeviceBuffer* buf : {&q, &k, &v, &o, &lse}) buf->free();
  return r;
}

int tune_all(const std::vector<AttentionSpec>& specs, const std::vector<TuneShape>& shapes, bool backward_too) {
  const DeviceInfo device = current_device_info();
  fmt::print("tuning {} spec(s) x {} shape(s) on {} ({}, {} SMs, driver {}, NVRTC {})\n", specs.size(), shapes.size(),
             device.gpu_name, device.arch, device.sm_count, device.driver_version, nvrtc_version_string());
  struct Row {
    std::string spec, shape, bucket, result;
  };
  std::vector<Row> rows;
  std::mt19937_64 rng(20240601);  // fixed: reruns time the same data
  const std::size_t total = specs.size() * shapes.size();
  std::size_t done = 0, failed = 0;
  for (std::size_t spec_i = 1; spec_i <= specs.size(); ++spec_i)
    for (std::size_t shape_i = 1; shape_i <= shapes.size(); ++shape_i) {
      const AttentionSpec& spec = specs[spec_i - 1];
      const TuneShape& shape = shapes[shape_i - 1];
      Row row{describe(spec), describe(shape), "", ""};
      const std::string prefix = fmt::format("[{}/{}] {} | {} ... ", ++done, total, row.spec, row.shape);
      fmt::print("{}", prefix);
      std::fflush(stdout);
      PairProgress progress(spec_i, specs.size(), shape_i, shapes.size(), prefix);
      try {
        std::optional<TuningRecord> bwd;
        const TuneResult r = tune_one(spec, shape, rng, backward_too, &bwd, progress);
        progress.finish();
        int timed = 0;
        for (const CandidateTiming& c : r.candidates) timed += c.ok;
        row.bucket = to_string(r.key.bucket);
        row.result = fmt::format("{} ({:.4f} ms)", to_string(r.best), r.best_ms);
        fmt::print("-> {} ({:.4f} ms; {}/{} candidates timed)", to_string(r.best), r.best_ms, timed,
                   r.candidates.size());
        if (backward_too) {
          const std::string b = bwd ? fmt::format("{} ({:.4f} ms)", to_string(bwd->tile), bwd->median_ms)
                                    : std::string("heuristic (FLASHJIT_AUTOTUNE=0: not tuned)");
          row.result += " | bwd " + b;
          fmt::print("; backward bwd_dkdv -> {}", b);
        }
        fmt::print("\n");
      } catch (const std::exception& e) {
        progress.finish();
        ++failed;
        row.result = "FAILED";
        fmt::print("FAILED: {}\n", e.what());
      }
      rows.push_back(row);
    }
  fmt::print("\nsummary:\n  {:<36} {:<28} {:<30} {}\n", "SPEC", "SHAPE", "BUCKET", "TILE");
  for (const Row& r : rows) fmt::print("  {:<36} {:<28} {:<30} {}\n", r.spec, r.shape, r.bucket, r.result);
  fmt::print("tuned {} of {} (spec, shape) pairs; records in {}\n", total - failed, total,
             TuningDb::default_db().dir().string());
  return failed ? 1 : 0;
}

int compile_only(const std::vector<AttentionSpec>& specs, const std::string& arch, const std::string& why,
                 bool backward_too) {
  const std::string dir = DiskCache::default_dir().string();
  fmt::print("not tuning: {}\n", why);
  fmt::print("compile-only mode: compiling each spec's heuristic tile for {} into {}; no tuning records are written\n",
             arch, dir);
  std::size_t compiled = 0, cached = 0, failed = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    fmt::print("[{}/{}] {} ... ", i + 1, specs.size(), describe(specs[i]));
    std::fflush(stdout);
    try {
      CompileOptions options;
      options.arch = arch;
      const CompiledKernel k = compile(specs[i], options);
      if (k.cache_hit) ++cached;
      else ++compiled;
      fmt::print("-> {} ({})", to_string(k.tile),
                 k.cache_hit ? std::string("already cached") : fmt::format("compiled in {:.0f} ms", k.compile_ms));
      if (backward_too) {  // the backward's kernels with their heuristic tiles
        const AttentionSpec untiled = without_tile(specs[i]);
        for (const CompiledKernel& bk : {compile_bwd_preprocess(untiled, options), compile_bwd_dkdv(untiled, options),
                                         compile_bwd_dq_convert(untiled, options)}) {
          if (bk.cache_hit) ++cached;
          else ++compiled;
        }
        fmt::print("; backward kernels compiled");
      }
      fmt::print("\n");
    } catch (const std::exception& e) {
      ++failed;
      fmt::print("FAILED: {}\n", e.what());
    }
  }
  fmt::print("compile-only: {} kernel(s) for {} in the cache ({} compiled, {} already cached, {} failed); "
             "shapes are not used without tuning\n",
             compiled + cached, arch, compiled, cached, failed);
  return failed ? 1 : 0;
}

}  // namespace

int run_tune(const Args& args) {
  const auto specs_path = args.get("--specs");
  if (!specs_path) throw UsageError("tune needs --specs FILE (a JSON array of specs, or one spec per line)");
  const auto shapes_arg = args.get("--shapes");
  if (!shapes_arg) throw UsageError("tune needs --shapes, e.g. --shapes 'b=4,sq=4096,sk=4096;b=1,sq=16384'");
  // Before anything touches a cache: every cache user in this process reads the variable.
  if (const auto dir = args.get("--cache-dir")) ::setenv("FLASHJIT_CACHE_DIR", dir->c_str(), 1);
  const std::vector<TuneShape> shapes = parse_shapes(*shapes_arg);
  const std::vector<AttentionSpec> specs = load_specs_file(*specs_path);
  const auto arch = args.get("--arch");
  if (arch) check_arch(*arch);

  if (!args.flag("--compile-only") && gpu_available()) {
    const std::string gpu_arch = current_device_info().arch;
    if (!arch || *arch == gpu_arch) return tune_all(specs, shapes, !args.flag("--forward-only"));
    return compile_only(specs, *arch, fmt::format("--arch {} is not this GPU's arch {}", *arch, gpu_arch),
                        !args.flag("--forward-only"));
  }
  const std::string why = args.flag("--compile-only") ? std::string("--compile-only")
                                                      : fmt::format("no GPU: {}", gpu_unavailable_reason());
  if (!arch)
    throw ArgumentError("arch", fmt::format("{}; pass --arch, e.g. --arch sm_90a, to fill the kernel cache "
                                            "for that arch without tuning",
                                            why));
  return compile_only(specs, *arch, why, !args.flag("--forward-only"));
}

}  // namespace flashjit::cli
