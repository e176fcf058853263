// Test-only: tuning keys and records with known content, shared by tests/unit/test_tuning.cpp
// and the race helper (tests/support/tuning_race_helper.cpp), which must agree on them.
#pragma once

#include <string>

#include "flashjit/spec.h"
#include "flashjit/tuning.h"

namespace fjtest {

inline flashjit::TuningKey sample_tuning_key(const std::string& tag = "") {
  flashjit::TuningKey k;
  k.spec_json = flashjit::spec_to_json(
      flashjit::spec_from_json(R"({"dtype":"bf16","head_dim":128,"num_heads_q":16,"mask":"causal"})"));
  k.bucket = flashjit::shape_bucket(2, 4, 1000, 1000);
  k.gpu_name = "NVIDIA Test GPU" + tag;
  k.sm_count = 132;
  k.driver_version = 13000;
  k.nvrtc_version = "13.0";
  k.arch = "sm_90a";
  return k;
}

inline flashjit::TuningRecord sample_tuning_record(const flashjit::TuningKey& key) {
  flashjit::TuningRecord r;
  r.key = key;
  r.tile = {128, 64, 8, 3};
  r.median_ms = 0.8125;
  flashjit::CandidateTiming a;
  a.tile = {128, 64, 4, 2};
  a.ok = true;
  a.median_ms = 0.9375;
  a.repetitions = 22;
  flashjit::CandidateTiming b;
  b.tile = r.tile;
  b.ok = true;
  b.median_ms = r.median_ms;
  b.repetitions = 25;
  flashjit::CandidateTiming c;
  c.tile = {64, 128, 4, 3};
  c.ok = false;
  c.error = "flashjit: cuLaunchKernel: CUDA_ERROR_OUT_OF_RESOURCES (\"too many resources\")";
  r.candidates = {a, b, c};
  r.created = "2025-01-02T03:04:05Z";
  return r;
}

inline bool same_record(const flashjit::TuningRecord& x, const flashjit::TuningRecord& y) {
  if (!(x.key == y.key) || !(x.tile == y.tile) || x.median_ms != y.median_ms || x.created != y.created ||
      x.candidates.size() != y.candidates.size())
    return false;
  for (std::size_t i = 0; i < x.candidates.size(); ++i) {
    const auto &a = x.candidates[i], &b = y.candidates[i];
    if (!(a.tile == b.tile) || a.ok != b.ok || a.median_ms != b.median_ms || a.repetitions != b.repetitions ||
        a.error != b.error)
      return false;
  }
  return true;
}

}  // namespace fjtest
