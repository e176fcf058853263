// Background compiles of tuning candidates: see background_tuning.h.
#include "background_tuning.h"

#include <fmt/format.h>

#include <cstdlib>
#include <thread>

#include "flashjit/autotune.h"
#include "runtime_stats.h"
#include "tuning_internal.h"

namespace flashjit::detail {

namespace {
// Half the cores: the caller's process keeps the other half (data loading, its own
// compiles) while the candidates build.
std::size_t background_workers() { return std::max(1u, std::thread::hardware_concurrency() / 2); }
}  // namespace

BackgroundCompiles& BackgroundCompiles::get() {
  static BackgroundCompiles instance;
  return instance;
}

void BackgroundCompiles::at_exit() { get().shutdown(); }

void BackgroundCompiles::start(const std::string& digest, const AttentionSpec& spec, const std::string& arch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || jobs_.count(digest)) return;
  if (!exit_hook_) {
    // Registered after the caller's first compile, so it runs before the destructors of
    // everything that compile set up (NVRTC, the caches), which the workers still use.
    std::atexit(&BackgroundCompiles::at_exit);
    exit_hook_ = true;
  }
  auto job = std::make_unique<Job>();
  Job* j = job.get();
  jobs_.emplace(digest, std::move(job));
  if (log_enabled()) log_line(fmt::format("background tuning: compiling the candidates of {} for {}", digest, arch));
  j->thread = std::thread([this, j, spec, arch, digest] {
    Compiled c;
    try {
      c.tiles = tile_candidates(spec, arch);
      // After each compile the exit hook is registered again: exit() runs handlers and static
      // destructors newest first, and a compile may have made statics (NVRTC's own among them)
      // that the next compile uses; the hook must stop the workers before those go.
      c.skip = compile_candidates(spec, c.tiles, arch, background_workers(), &stopping_,
                                  [] { std::atexit(&BackgroundCompiles::at_exit); });
    } catch (const std::exception& e) {  // no candidates: time the heuristic alone
      c.tiles = {*resolve_tile(spec, arch).tile};
      c.skip = {""};
      log_line(fmt::format("warning: background tuning of {}: {}", digest, e.what()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    j->result = std::move(c);
    j->done = true;
    if (log_enabled())
      log_line(fmt::format("background tuning: {} candidates of {} compiled; the next call times them",
                           j->result.tiles.size(), digest));
    cv_.notify_all();
  });
}

bool BackgroundCompiles::pending(const std::string& digest) {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.count(digest) != 0;
}

std::optional<BackgroundCompiles::Compiled> BackgroundCompiles::take_if_done(const std::string& digest) {
  std::unique_ptr<Job> job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(digest);
    if (it == jobs_.end() || !it->second->done) return std::nullopt;
    job = std::move(it->second);
    jobs_.erase(it);
  }
  job->thread.join();  // it has finished its work; joined outside the lock it last took
  return std::move(job->result);
}

void BackgroundCompiles::wait_all() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    for (const auto& [digest, job] : jobs_)
      if (!job->done) return false;
    return true;
  });
}

void BackgroundCompiles::shutdown() {
  std::map<std::string, std::unique_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    jobs.swap(jobs_);
  }
  for (auto& [digest, job] : jobs)
    if (job->thread.joinable()) job->thread.join();
}

BackgroundCompiles::~BackgroundCompiles() { shutdown(); }

}  // namespace flashjit::detail
