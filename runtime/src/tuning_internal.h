// Internal: pieces of the tuner shared by forward() and autotune().
#pragma once

#include <cuda.h>

#include <functional>
#include <string>
#include <vector>

#include "flashjit/tuning.h"

namespace flashjit::detail {

// The device's identity for tuning keys, queried once per device.
DeviceInfo device_info(CUdevice dev);

// FLASHJIT_AUTOTUNE unset or anything but "0": untiled calls tune on first use.
bool autotune_enabled();

// This process's tile decisions by tuning-key digest (forward and backward keys differ by
// kind): the remembered tile, else decide() once (threads meeting a new digest wait for the
// first) and remember it. After the first call for a digest: no disk I/O, no tuning.
TileConfig remembered_or_decide(const std::string& digest, const std::function<TileConfig()>& decide);

// compile(i) for i in [0, n) on one worker per core (NVRTC is thread-safe and the caches
// are guarded); the error of each ("" where it compiled).
std::vector<std::string> compile_in_parallel(std::size_t n, const std::function<void(std::size_t)>& compile);

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
