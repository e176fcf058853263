// Background compiles of the forward's tuning candidates (FLASHJIT_TUNE_MODE=background).
//
// A new (spec, shape bucket) runs its heuristic tile at once; a job compiles the other
// candidates on worker threads meanwhile (NVRTC only: no CUDA call, so it is safe while the
// caller captures a CUDA graph). The first forward() that finds the job compiled times the
// candidates on its own tensors and stream and keeps the winner (forward.cpp). Why: a
// first call that tunes pays for every candidate's compile (2-4 s on the H200's 16 cores),
// while one compile is under a second.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit::detail {

class BackgroundCompiles {
 public:
  static BackgroundCompiles& get();

  struct Compiled {
    std::vector<TileConfig> tiles;  // tile_candidates(spec, arch); [0] is the heuristic
    std::vector<std::string> skip;  // compile_candidates()' reasons ("" = time it)
  };

  // Starts a job for `digest` (spec without tile, normalized) unless one exists or was taken.
  void start(const std::string& digest, const AttentionSpec& spec, const std::string& arch);
  // Whether start() was called for `digest` and its result not yet taken.
  bool pending(const std::string& digest);
  // The job's result once it has compiled everything (the job is then gone); nullopt while it
  // runs or when there is none.
  std::optional<Compiled> take_if_done(const std::string& digest);
  // Blocks until every job started so far has compiled.
  void wait_all();

  // No new job or candidate compile starts, the running compiles finish, the threads are
  // joined (flashjit::stop_tuning, and at exit). Later start() calls do nothing.
  void shutdown();

  ~BackgroundCompiles();

 private:
  BackgroundCompiles() = default;
  static void at_exit();

  struct Job {
    Compiled result;
    bool done = false;
    std::thread thread;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::atomic<bool> stopping_{false};
  bool exit_hook_ = false;
};

}  // namespace flashjit::detail
