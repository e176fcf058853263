// The tuning database: one JSON record per key in <cache dir>/tuning/<digest>.json.
//
// A record repeats its full key and digest, so a reader can tell a record written for
// another key (a digest collision, a hand edit, a copy under the wrong name) from its
// own; anything that fails to parse or verify is a miss, and the next tuning rewrites it.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cmath>
#include <ctime>
#include <system_error>

#include "safe_file.h"
#include "flashjit/disk_cache.h"
#include "flashjit/ir.h"
#include "flashjit/limits.h"
#include "flashjit/passes.h"
#include "flashjit/tuning.h"
#include "flashjit/heuristics.h"
#include "strict_json.h"

namespace fs = std::filesystem;
using flashjit::json::Json;  // ordered: keeps fields in the order written, easier to read

namespace flashjit {

namespace {

constexpr char kRecordExt[] = ".json";
// A temp file older than this is a leftover of a writer that died; clear() removes it.
constexpr auto kStaleTempAge = std::chrono::minutes(10);

std::string now_utc_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json tile_json(const TileConfig& t) {
  Json j{{"block_m", t.block_m}, {"block_n", t.block_n}, {"warps", t.warps},
         {"stages", t.stages},   {"mma", to_string(t.mma)}};
  if (t.pipeline != PipelineKind::cp_async) j["pipeline"] = to_string(t.pipeline);  // absent: cp_async
  if (t.pingpong) j["pingpong"] = true;
  if (t.persistent) j["persistent"] = true;
  return j;
}

// An integer field, strictly: nlohmann's get<int>() of 1e300 is undefined behaviour (a
// float-to-int overflow; found by tests/fuzz/fuzz_tuning_record), of 132.5 truncates and of
// 2^64-1 wraps. Records are written with plain integers, so anything else is corrupt.
int64_t int_field(const Json& j, const char* name, int64_t lo = INT32_MIN, int64_t hi = INT32_MAX) {
  const Json& v = j.at(name);
  if (!v.is_number_integer()) throw std::invalid_argument(std::string(name) + ": not an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(hi) : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
    throw std::invalid_argument(std::string(name) + ": out of range");
  return v.get<int64_t>();
}
int int32_field(const Json& j, const char* name) { return static_cast<int>(int_field(j, name)); }

TileConfig tile_from(const Json& j) {
  TileConfig t;
  t.block_m = int32_field(j, "block_m");
  t.block_n = int32_field(j, "block_n");
  t.warps = int32_field(j, "warps");
  t.stages = int32_field(j, "stages");
  const std::string mma = j.value("mma", std::string("mma_sync"));  // absent in records before wgmma
  if (mma == "wgmma") t.mma = MmaKind::wgmma;
  else if (mma != "mma_sync") throw std::runtime_error("tile.mma: unknown value " + mma);
  const std::string pipeline = j.value("pipeline", std::string("cp_async"));  // absent in records before tma_ws
  if (pipeline == "tma_ws") t.pipeline = PipelineKind::tma_ws;
  else if (pipeline != "cp_async") throw std::runtime_error("tile.pipeline: unknown value " + pipeline);
  if (j.contains("pingpong")) {
    if (!j["pingpong"].is_boolean()) throw std::invalid_argument("pingpong: not a boolean");
    t.pingpong = j["pingpong"].get<bool>();
  }
  if (j.contains("persistent")) {
    if (!j["persistent"].is_boolean()) throw std::invalid_argument("persistent: not a boolean");
    t.persistent = j["persistent"].get<bool>();
  }
  return t;
}

double finite_ms(const Json& j) {
  if (!j.is_number()) throw std::invalid_argument("median_ms: not a number");
  const double ms = j.get<double>();
  if (!std::isfinite(ms) || ms < 0) throw std::invalid_argument("median_ms out of range");
  return ms;
}

bool is_record_file(const fs::path& p) { return p.extension() == kRecordExt && !detail::is_temp_file(p); }

// Everything directly in `dir` but real directories (links are reported, not followed:
// list() shows them as corrupt, clear() removes them); tolerant of files vanishing mid-walk.
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    const fs::file_status st = it->symlink_status(ec2);
    if (!ec2 && (!fs::is_directory(st) || is_record_file(it->path()))) files.push_back(it->path());
  }
  return files;
}

// <cache dir>/<this> is where a record lives.
fs::path record_rel_path(const std::string& file_name) { return fs::path("tuning") / file_name; }

}  // namespace

std::string tuning_record_to_json(const TuningRecord& r) {
  Json key;
  if (r.key.kind != "fwd") key["kind"] = r.key.kind;
  key["spec"] = json::parse(r.key.spec_json);
  key["bucket"] = {{"seqlen_q", r.key.bucket.seqlen_q},
                   {"seqlen_k", r.key.bucket.seqlen_k},
                   {"batch_heads", r.key.bucket.batch_heads}};
  key["gpu_name"] = r.key.gpu_name;
  key["sm_count"] = r.key.sm_count;
  key["driver_version"] = r.key.driver_version;
  key["nvrtc_version"] = r.key.nvrtc_version;
  key["arch"] = r.key.arch;
  key["code_version"] = r.key.code_version;

  Json candidates = Json::array();
  for (const CandidateTiming& c : r.candidates) {
    Json cj{{"tile", tile_json(c.tile)}, {"ok", c.ok}};
    if (c.ok) {
      cj["median_ms"] = c.median_ms;
      cj["repetitions"] = c.repetitions;
    } else {
      cj["error"] = c.error;
    }
    candidates.push_back(std::move(cj));
  }

  Json j;
  j["schema"] = kTuningSchemaVersion;
  j["digest"] = r.key.digest();
  j["key"] = std::move(key);
  j["tile"] = tile_json(r.tile);
  j["median_ms"] = r.median_ms;
  j["candidates"] = std::move(candidates);
  j["created"] = r.created;
  return j.dump(2) + "\n";
}

std::optional<TuningRecord> tuning_record_from_json(const std::string& text) {
  try {
    const Json j = json::parse(text, json::Limits{limits::kMaxTuningRecordBytes});
    if (int32_field(j, "schema") != kTuningSchemaVersion) return std::nullopt;
    TuningRecord r;
    const Json& key = j.at("key");
    // Through the spec parser: validates the spec and brings it to canonical form.
    const AttentionSpec spec = spec_from_json(key.at("spec").dump());
    validate(spec);
    r.key.spec_json = spec_to_json(without_tile(spec));
    r.key.kind = key.contains("kind") ? key.at("kind").get<std::string>() : "fwd";
    if (r.key.kind != "fwd" && r.key.kind != "bwd_dkdv") return std::nullopt;
    const Json& b = key.at("bucket");
    r.key.bucket.seqlen_q = int_field(b, "seqlen_q", 1, INT64_MAX);
    r.key.bucket.seqlen_k = int_field(b, "seqlen_k", 1, INT64_MAX);
    r.key.bucket.batch_heads = int_field(b, "batch_heads", 1, INT64_MAX);
    r.key.gpu_name = key.at("gpu_name").get<std::string>();
    r.key.sm_count = int32_field(key, "sm_count");
    r.key.driver_version = int32_field(key, "driver_version");
    r.key.nvrtc_version = key.at("nvrtc_version").get<std::string>();
    r.key.arch = key.at("arch").get<std::string>();
    r.key.code_version = key.at("code_version").get<std::string>();
    if (j.at("digest").get<std::string>() != r.key.digest()) return std::nullopt;

    r.tile = tile_from(j.at("tile"));
    if (r.key.kind == "bwd_dkdv") {
      check_bwd_tile(spec, r.tile, r.key.arch);  // the backward's rules, on the record's arch
    } else {
      validate(r.tile, spec);
      // A tile that cannot run on the record's arch (too much shared memory, too many
      // registers, wgmma off Hopper) would fail in forward(): through the legality pass,
      // such a record is a miss, and tuning or the heuristic decides instead.
      AttentionSpec tiled = spec.normalized();
      tiled.tile = r.tile;
      (void)passes::run_pipeline(ir::lower(tiled), r.key.arch);
    }
    r.median_ms = finite_ms(j.at("median_ms"));
    for (const Json& cj : j.at("candidates")) {
      CandidateTiming c;
      c.tile = tile_from(cj.at("tile"));
      c.ok = cj.at("ok").get<bool>();
      if (c.ok) {
        c.median_ms = finite_ms(cj.at("median_ms"));
        c.repetitions = int32_field(cj, "repetitions");
      } else {
        c.error = cj.at("error").get<std::string>();
      }
      r.candidates.push_back(std::move(c));
    }
    r.created = j.at("created").get<std::string>();
    return r;
  } catch (const std::exception&) {
    // Malformed JSON, a missing or mistyped field, a spec or tile that does not validate:
    // the record is unusable, which for a cache means a miss.
    return std::nullopt;
  }
}

TuningDb::TuningDb(fs::path cache_dir) : dir_(std::move(cache_dir) / "tuning") {}

TuningDb TuningDb::default_db() { return TuningDb(DiskCache::default_dir()); }

fs::path TuningDb::record_path(const TuningKey& key) const { return dir_ / (key.digest() + kRecordExt); }

std::optional<TuningRecord> TuningDb::lookup(const TuningKey& key) const {
  std::string text;
  // Never through a link, never a FIFO or device, never more than the record size limit.
  const fs::path rel = record_rel_path(record_path(key).filename().string());
  if (!detail::read_file_below(dir_.parent_path(), rel, limits::kMaxTuningRecordBytes, text).ok())
    return std::nullopt;
  std::optional<TuningRecord> r = tuning_record_from_json(text);
  if (!r || !(r->key == key)) return std::nullopt;
  return r;
}

fs::path TuningDb::store(const TuningKey& key, const TuningRecord& record) const {
  TuningRecord r = record;
  r.key = key;
  if (r.created.empty()) r.created = now_utc_iso();
  const fs::path path = record_path(key);
  detail::write_file_atomically_below(dir_.parent_path(), record_rel_path(path.filename().string()),
                                     tuning_record_to_json(r));
  return path;
}

std::vector<TuningListing> TuningDb::list() const {
  std::vector<TuningListing> out;
  for (const fs::path& p : files_in(dir_)) {
    if (!is_record_file(p)) continue;
    TuningListing l;
    l.digest = p.stem().string();
    l.path = p.string();
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(p, ec);
    if (ec) continue;  // removed meanwhile
    if (fs::is_regular_file(st)) {
      const auto size = fs::file_size(p, ec);
      if (ec) continue;
      l.bytes = static_cast<std::size_t>(size);
    }
    std::string text;
    if (detail::read_file_below(dir_.parent_path(), record_rel_path(p.filename().string()),
                                limits::kMaxTuningRecordBytes, text)
            .ok()) {
      // Valid only under its own digest: lookup() would never find it under another name.
      std::optional<TuningRecord> r = tuning_record_from_json(text);
      if (r && r->key.digest() == l.digest) l.record = std::move(r);
    }
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const TuningListing& a, const TuningListing& b) { return a.digest < b.digest; });
  return out;
}

std::size_t TuningDb::clear() const {
  std::size_t removed = 0;
  std::error_code link_ec;
  if (fs::is_symlink(fs::symlink_status(dir_, link_ec))) fs::remove(dir_, link_ec);  // never written through
  const auto now = fs::file_time_type::clock::now();
  for (const fs::path& p : files_in(dir_)) {
    std::error_code ec;
    if (detail::is_temp_file(p)) {
      // A young temp file belongs to a store in progress; leave it to its rename.
      const auto mtime = fs::last_write_time(p, ec);
      if (!ec && now - mtime > kStaleTempAge) fs::remove(p, ec);
    } else if (is_record_file(p)) {
      // A record, or a directory, FIFO or link under a record's name: nothing a lookup can use.
      if (fs::remove_all(p, ec) > 0 && !ec) ++removed;
    } else if (fs::is_symlink(fs::symlink_status(p, ec))) {
      fs::remove(p, ec);
    }
  }
  return removed;
}

}  // namespace flashjit
