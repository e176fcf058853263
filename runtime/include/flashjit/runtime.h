// The C++ runtime API: compile a spec (no GPU needed) and run the forward pass.
//
//   flashjit::AttentionSpec spec = flashjit::spec_from_json(R"({"dtype":"bf16","head_dim":128,
//                                                               "mask":{"kind":"causal"}})");
//   flashjit::forward(spec, q, k, v, o, /*lse=*/nullptr, stream);
//
// Tensors are views (pointer, dtype, sizes, strides in elements) of logical shape
// (batch, heads, seqlen, head_dim): any batch/head/sequence strides, last dim contiguous,
// so both BHSD and BSHD memory layouts work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"
#include "flashjit/spec.h"

struct CUstream_st;

namespace flashjit {

// i32, i64 and boolean (one byte) are for tensors captured by expressions only.
enum class ElemType { f16, bf16, f32, i32, i64, boolean };

struct TensorView {
  void* data = nullptr;
  ElemType dtype = ElemType::bf16;
  int rank = 4;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};  // in elements

  static TensorView bhsd(void* data, ElemType t, int64_t b, int64_t h, int64_t s, int64_t d);
  static TensorView bshd(void* data, ElemType t, int64_t b, int64_t s, int64_t h, int64_t d);
  // LSE: float32 (batch, heads, seqlen_q), contiguous.
  static TensorView lse(float* data, int64_t b, int64_t h, int64_t s);
};

// Dropout's RNG state for one call (docs/dropout.md): which elements are dropped is a pure
// function of (seed, offset, batch, head, query, key), so the backward given the forward's
// state regenerates the forward's mask whatever tiles either runs with. device_state, when
// set, points to two uint64 in device memory, {seed, offset}, that the kernels read instead
// (a CUDA graph's replays then draw the masks of whatever its generator wrote there).
struct DropoutRng {
  uint64_t seed = 0;
  uint64_t offset = 0;
  const uint64_t* device_state = nullptr;
};

struct CompileOptions {
  std::string arch;   // "sm_80", "sm_90a", ...; empty = current device's
  bool use_cache = true;
  // NVRTC's fast-compile mode (--Ofast-compile=max): about half the compile time, a slower
  // kernel; not cached. What background tuning's first calls run while the tuned candidates
  // compile.
  bool quick = false;
};

// Generates, compiles (NVRTC) and caches the kernel for `spec`; needs no GPU when
// options.arch is given. A spec without a tile gets the heuristic config (tuned tiles
// depend on the problem shape, which only forward() knows).
CompiledKernel compile(const AttentionSpec& spec, const CompileOptions& options = {});

// Runs attention forward on the current CUDA context's device. Validates everything
// (shapes, strides, dtypes, alignment) before launching; allocates nothing.
// `lse` may be null unless spec.return_lse is set. A spec without a tile gets, per shape
// bucket and device, the tuning database's tile, else the autotuner's winner (stored for
// later processes; FLASHJIT_AUTOTUNE=0 turns tuning off), else the heuristic; see tuning.h.
// `captures`: the tensors the spec's mask / score expressions read (spec.captures, in that
// order; rank 1 to 4, any non-negative strides). Every read's index range is checked
// against their sizes before the launch (docs/expressions.md).
// `dropout`: the RNG state when spec.dropout_p > 0 (ignored otherwise); pass the same to
// backward().
void forward(const AttentionSpec& spec, const TensorView& q, const TensorView& k,
             const TensorView& v, const TensorView& o, const TensorView* lse,
             CUstream_st* stream, const std::vector<TensorView>& captures = {}, const DropoutRng& dropout = {});

// forward() for one spec called many times (a model's layer, the Python bindings): the spec
// is validated once, and per (CUDA context, shape bucket) the decided tile and loaded kernel
// are remembered after the first call, so a later call costs its argument checks and the
// launch (forward() itself re-derives the tuning key and the kernel's cache key on every
// call, some microseconds each). Same semantics and errors as forward(). Copies share the
// memo; thread-safe.
class PreparedForward {
 public:
  explicit PreparedForward(const AttentionSpec& spec);  // throws SpecError as validate() does
  void operator()(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o,
                  const TensorView* lse, CUstream_st* stream, const std::vector<TensorView>& captures = {},
                  const DropoutRng& dropout = {}) const;
  const AttentionSpec& spec() const;

 private:
  struct Memo;
  std::shared_ptr<Memo> memo_;
};

// Blocks until the candidates that background tuning is compiling (FLASHJIT_TUNE_MODE=
// background, the default) have all compiled; each variant's next forward() then times them
// and keeps the winner. For benchmarks, and before capturing CUDA graphs (a call inside a
// capture keeps the tile it has: nothing is timed there).
void wait_for_tuning();
// Stops background tuning for the rest of the process: no new candidate compile starts, the
// running ones finish, the worker threads are joined; variants not yet tuned keep their
// interim tile. flashjit runs it at exit (and the Python module from Python's atexit, before
// the interpreter tears anything down); a program that ends some other way (a thread calling
// exit() while others run flashjit) calls it first.
void stop_tuning();

// For people studying a variant (no GPU needed). arch empty = emit_arch(""): the current
// GPU's arch, or sm_80 where there is no GPU.
std::string emit_arch(const std::string& arch);
// The CUDA source NVRTC would compile for `spec` (tile filled in by the heuristic if absent).
std::string emit_cuda(const AttentionSpec& spec, const std::string& arch = "");
// The printed tile IR after `after_pass` ("lower" = before any pass; "" = after all passes).
std::string emit_ir(const AttentionSpec& spec, const std::string& arch = "", const std::string& after_pass = "");
// The spec with its tile filled in as compile() would: the spec's own tile, else the heuristic.
AttentionSpec resolve_tile(const AttentionSpec& spec, const std::string& arch);

// What this process has done so far (counted since start, all threads together). A process
// that finds every kernel and tuning result on disk shows compiles == 0 and tunings == 0.
struct RuntimeStats {
  int compiles = 0;        // NVRTC compiles (kernel cache misses)
  int disk_hits = 0;       // kernels read from the disk cache
  int memory_hits = 0;     // kernels found in the in-process cache
  int tunings = 0;         // autotuner runs
  int tuning_db_hits = 0;  // forward() tile decisions read from the tuning database
};
RuntimeStats runtime_stats();

// True when a CUDA driver and at least one GPU are present.
bool gpu_available();
// Why gpu_available() is false (driver library missing, no device, ...).
std::string gpu_unavailable_reason();

}  // namespace flashjit
