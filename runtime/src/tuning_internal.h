// Internal: pieces of the tuner shared by forward() and autotune().
#pragma once

#include <cuda.h>

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flashjit/autotune.h"
#include "flashjit/compiled_kernel.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"

namespace flashjit::detail {

// The device's identity for tuning keys, queried once per device.
DeviceInfo device_info(CUdevice dev);

// FLASHJIT_AUTOTUNE unset or anything but "0": untiled calls tune.
bool autotune_enabled();

// How the forward tunes a new (spec, shape bucket) when autotune_enabled() (FLASHJIT_TUNE_MODE):
//   background (default): the first call runs the heuristic tile at once while worker threads
//     compile the other candidates; the first call after they are compiled times them all
//     (tens of milliseconds) and swaps the winner in. First-call latency is one compile.
//   blocking: the first call compiles and times every candidate before it launches.
enum class TuneMode { background, blocking };
TuneMode tune_mode();

// This process's tile decisions by tuning-key digest (forward and backward keys differ by
// kind): the remembered tile, else decide() once (threads meeting a new digest wait for the
// first) and remember it. After the first call for a digest: no disk I/O, no tuning.
TileConfig remembered_or_decide(const std::string& digest, const std::function<TileConfig()>& decide);
// The same where decide() may return an interim tile ({tile, false}: used for this call, not
// remembered, so the next call decides again): background tuning's heuristic phase.
// *is_final (when given): whether the tile returned is the remembered, final one.
TileConfig remembered_or_decide_interim(const std::string& digest,
                                       const std::function<std::pair<TileConfig, bool>()>& decide,
                                       bool* is_final = nullptr);

// compile(i) for i in [0, n) on one worker per core, at most max_workers (0 = no limit)
// (NVRTC is thread-safe and the caches are guarded); the error of each ("" where it compiled).
std::vector<std::string> compile_in_parallel(std::size_t n, const std::function<void(std::size_t)>& compile,
                                             std::size_t max_workers = 0);

// Why a compiled candidate is not worth timing ("" when it is): ptxas reports spills, or
// serialised wgmma (C7514). Such a tile loses to its neighbours, and dropping it before
// timing keeps the tuning call short.
std::string not_worth_timing(const CompiledKernel& k);

// Compiles tiles[i] for (spec, arch) (cached); per candidate, why it will not be timed: its
// compile error, or not_worth_timing() ("" = time it). tiles[0], the heuristic, is timed
// whenever it compiles. No GPU needed.
// `stop` (may be null): once true, candidates not yet started are left out.
// `on_compiled` (may be empty): called once per candidate when its compile ends, failed or
// not, from the compiling worker thread; the calls never overlap (a lock is held).
std::vector<std::string> compile_candidates(const AttentionSpec& spec, const std::vector<TileConfig>& tiles,
                                            const std::string& arch, std::size_t max_workers = 0,
                                            const std::atomic<bool>* stop = nullptr,
                                            const std::function<void()>& on_compiled = {});

// Times every candidate whose skip reason is "" on these tensors (see autotune()), the rest
// recorded as not timed with their reason; counts one tuning. Throws when none could run.
// `on_timed` (may be empty): called after each candidate is timed or skipped.
TuneResult time_candidates(const AttentionSpec& spec, const std::vector<TileConfig>& tiles,
                           const std::vector<std::string>& skip, const TensorView& q, const TensorView& k,
                           const TensorView& v, const TensorView& o, const TensorView* lse, CUstream_st* stream,
                           const std::vector<TensorView>& captures, const std::function<void()>& on_timed = {});

// CUDA events for one tuning run. destroy() on the normal path reports errors; the
// destructor only cleans up after an exception, which is then the error worth reporting.
class Events {
 public:
  Events(int n);
  ~Events();
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  CUevent operator[](int i) const { return ev_[static_cast<std::size_t>(i)]; }
  int size() const { return static_cast<int>(ev_.size()); }
  void destroy();

 private:
  std::vector<CUevent> ev_;
};

// Times launch() (one kernel launch on `stream`): 2 warm-ups, one launch to size the run,
// then timed launches adding up to about 20 ms (at least 3, at most events.size() - 1), each
// between two events; the median counts. Returns ok with median_ms and repetitions set.
CandidateTiming time_launches(const std::function<void()>& launch, CUstream stream, Events& events);

}  // namespace flashjit::detail
