// The tuning database: the autotuner's winners, kept beside the kernel cache.
//
// Location: <cache dir>/tuning/<key digest>.json, where <cache dir> follows the kernel
// cache's rules (DiskCache::default_dir()). A record is keyed by everything that can
// change which tile is fastest: the spec without its tile, the shape bucket, the GPU
// (name, SM count), the driver version, the NVRTC version and the arch. Records are JSON
// so a person can read them; they are written atomically (temp file + fsync + rename) and
// a record that is corrupt, truncated or written for another key reads as a miss and is
// rewritten by the next tuning.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit {

inline constexpr int kTuningSchemaVersion = 1;

// Problem sizes that share a tuned tile: seqlen_q and seqlen_k rounded up to the next
// power of two (at least 64), batch * heads_q rounded up to the next power of two.
struct ShapeBucket {
  int64_t seqlen_q = 64;
  int64_t seqlen_k = 64;
  int64_t batch_heads = 1;

  bool operator==(const ShapeBucket& o) const {
    return seqlen_q == o.seqlen_q && seqlen_k == o.seqlen_k && batch_heads == o.batch_heads;
  }
};
ShapeBucket shape_bucket(int64_t batch, int64_t heads_q, int64_t seqlen_q, int64_t seqlen_k);
std::string to_string(const ShapeBucket& b);  // "sq<=1024 sk<=1024 bh<=8"

// The device-dependent part of a tuning key.
struct DeviceInfo {
  std::string gpu_name;
  int sm_count = 0;
  int driver_version = 0;  // cuDriverGetVersion, e.g. 13000
  std::string arch;        // "sm_90a"
};
// The current context's device (creates the primary context if none is current);
// throws CudaError when no GPU is present.
DeviceInfo current_device_info();

struct TuningKey {
  std::string kind = "fwd";  // the kernel kind tuned: "fwd" or "bwd_dkdv" (kernel_kind.h)
  std::string spec_json;     // spec_to_json(without_tile(spec)): canonical
  ShapeBucket bucket;
  std::string gpu_name;
  int sm_count = 0;
  int driver_version = 0;
  std::string nvrtc_version;
  std::string arch;
  // Digest of the kernels this build generates (templates + codegen of reference specs):
  // a winner tuned with other kernels is not trusted after flashjit changes.
  std::string code_version;

  // 32 hex chars over every field above (and the schema version); the record's file name.
  std::string digest() const;
  bool operator==(const TuningKey& o) const;
};
// This build's TuningKey::code_version (computed once per process).
const std::string& code_version();
// Key for `spec` (its tile is dropped) with this process's NVRTC version. kind: "fwd" (the
// forward's tile) or "bwd_dkdv" (the backward's); a fwd key's digest is what it was before
// kinds existed, so older records still match.
TuningKey make_tuning_key(const AttentionSpec& spec, const ShapeBucket& bucket, const DeviceInfo& device,
                          const std::string& kind = "fwd");

// One timed (or failed) candidate.
struct CandidateTiming {
  TileConfig tile;
  bool ok = false;
  double median_ms = 0.0;  // when ok
  int repetitions = 0;     // timed launches behind the median
  std::string error;       // when !ok: why it was skipped
};

struct TuningRecord {
  TuningKey key;
  TileConfig tile;         // the winner
  double median_ms = 0.0;  // the winner's median launch time
  std::vector<CandidateTiming> candidates;
  std::string created;     // UTC, ISO 8601
};

struct TuningListing {
  std::string digest;  // from the file name
  std::string path;
  std::size_t bytes = 0;
  std::optional<TuningRecord> record;  // null when the file is corrupt or not for its digest
};

class TuningDb {
 public:
  // `cache_dir` is the kernel cache's directory; records live in <cache_dir>/tuning.
  explicit TuningDb(std::filesystem::path cache_dir);
  static TuningDb default_db();  // under DiskCache::default_dir()

  const std::filesystem::path& dir() const { return dir_; }  // <cache_dir>/tuning
  std::filesystem::path record_path(const TuningKey& key) const;

  // Null when absent, unreadable, corrupt, truncated or written for another key.
  std::optional<TuningRecord> lookup(const TuningKey& key) const;
  // Writes `record` under `key` (record.key is replaced by `key`) atomically; returns the path.
  std::filesystem::path store(const TuningKey& key, const TuningRecord& record) const;

  std::vector<TuningListing> list() const;  // sorted by digest
  std::size_t clear() const;                // removes records; returns how many

 private:
  std::filesystem::path dir_;
};

// JSON form of a record (what the database files hold) and back; parse returns null on
// anything malformed, including a spec or tile that does not validate.
std::string tuning_record_to_json(const TuningRecord& record);
std::optional<TuningRecord> tuning_record_from_json(const std::string& text);

std::string to_string(const TileConfig& tile);  // "128x64 w4 s2", "128x128 w8 s2 wgmma"

}  // namespace flashjit
