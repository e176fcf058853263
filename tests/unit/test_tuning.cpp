// The autotuner's CPU side and the tuning database: candidate enumeration, tuning keys,
// shape buckets, record storage, corruption handling, concurrent writers, and moving
// caches between directories with `flashjit cache export/import`.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/autotune.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/ir.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/passes.h"
#include "flashjit/tuning.h"
#include "tuning_samples.h"

namespace fs = std::filesystem;
using flashjit::AttentionSpec;
using flashjit::TileConfig;
using flashjit::TuningDb;
using flashjit::TuningKey;
using fjtest::has;

namespace {

AttentionSpec spec(const std::string& json) { return flashjit::spec_from_json(json); }

AttentionSpec with_tile(AttentionSpec s, const TileConfig& t) {
  s.tile = t;
  return s;
}

std::string tile_str(const TileConfig& t) { return flashjit::to_string(t); }

bool contains(const std::vector<TileConfig>& v, const TileConfig& t) {
  return std::find(v.begin(), v.end(), t) != v.end();
}

// True when the legality pipeline accepts the tile on arch (what the tuner must keep).
bool pipeline_accepts(const AttentionSpec& s, const TileConfig& t, const std::string& arch) {
  try {
    flashjit::validate(t, s);
    flashjit::passes::run_pipeline(flashjit::ir::lower(with_tile(s, t)), arch);
    return true;
  } catch (const flashjit::SpecError&) {
    return false;
  } catch (const flashjit::LegalityError&) {
    return false;
  }
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const std::vector<std::string> kSpecs = {
    R"({"dtype":"bf16","head_dim":64,"num_heads_q":4,"mask":"causal"})",
    R"({"dtype":"fp16","head_dim":128,"num_heads_q":8,"num_heads_kv":2})",
    R"({"dtype":"bf16","head_dim":256,"mask":{"kind":"sliding_window","left":128,"right":0}})",
    R"({"dtype":"fp16","head_dim":192,"head_dim_v":128,"return_lse":true})",
    R"({"dtype":"bf16","head_dim":32})",
};
const std::vector<std::string> kArchs = {"sm_80", "sm_86", "sm_89", "sm_90a"};

}  // namespace

TEST_CASE("tuning: candidates are legal, complete, deterministic and lead with the heuristic", "[tuning]") {
  for (const std::string& json : kSpecs)
    for (const std::string& arch : kArchs) {
      const AttentionSpec s = spec(json);
      INFO(json << " on " << arch);
      const std::vector<TileConfig> c = flashjit::tile_candidates(s, arch);
      REQUIRE(!c.empty());
      CHECK(c.front() == flashjit::default_tile(s, arch));
      CHECK(c == flashjit::tile_candidates(s, arch));
      // The tile in the spec, if any, does not change what is tuned over.
      CHECK(c == flashjit::tile_candidates(with_tile(s, {16, 16, 1, 2}), arch));

      std::set<std::string> seen;
      for (const TileConfig& t : c) {
        INFO("candidate " << tile_str(t));
        CHECK(seen.insert(tile_str(t)).second);  // no duplicates
        CHECK(pipeline_accepts(s, t, arch));
        CHECK(flashjit::passes::smem_bytes(s, t) <= flashjit::passes::smem_limit(arch));
      }
      // Every grid config the pipeline accepts is a candidate, and the order is the grid's.
      std::vector<TileConfig> grid_part;
      // sm_90a: the wgmma grid first (one warpgroup per 64 rows); never elsewhere.
      for (int bm : {64, 128, 192})
        for (int bn : {64, 96, 128, 176, 192})
          for (int st : {2, 3}) {
            const TileConfig t{bm, bn, bm / 16, st, flashjit::MmaKind::wgmma};
            INFO("grid " << tile_str(t));
            CHECK(contains(c, t) == (arch == "sm_90a" && pipeline_accepts(s, t, arch)));
            if (contains(c, t) && !(t == c.front())) grid_part.push_back(t);
          }
      for (int bm : {64, 128})
        for (int bn : {32, 64, 128})
          for (int w : {4, 8})
            for (int st : {2, 3}) {
              const TileConfig t{bm, bn, w, st};
              INFO("grid " << tile_str(t));
              CHECK(contains(c, t) == pipeline_accepts(s, t, arch));
              if (contains(c, t) && !(t == c.front())) grid_part.push_back(t);
            }
      CHECK(std::vector<TileConfig>(c.begin() + 1, c.end()) == grid_part);
    }
}

TEST_CASE("tuning: the warp-specialised candidates, on request, and their records", "[tuning][tma_ws]") {
  const AttentionSpec causal = spec(R"({"dtype":"bf16","head_dim":128,"num_heads_q":8,"mask":{"kind":"causal"}})");
  const auto ws = [](const std::vector<TileConfig>& c) {
    return std::count_if(c.begin(), c.end(), [](const TileConfig& t) { return t.pipeline == flashjit::PipelineKind::tma_ws; });
  };
  unsetenv("FLASHJIT_TUNE_TMA_WS");
  CHECK(ws(flashjit::tile_candidates(causal, "sm_90a")) == 0);
  setenv("FLASHJIT_TUNE_TMA_WS", "1", 1);
  const std::vector<TileConfig> c = flashjit::tile_candidates(causal, "sm_90a");
  CHECK(ws(c) > 0);
  CHECK(ws(flashjit::tile_candidates(causal, "sm_80")) == 0);  // Hopper only
  for (const TileConfig& t : c)
    if (t.pipeline == flashjit::PipelineKind::tma_ws) {
      INFO(tile_str(t));
      CHECK(t.warps == t.block_m / 16 + 4);
      CHECK(pipeline_accepts(causal, t, "sm_90a"));
    }
  // A mask whose tiles are listed at run time: the producer builds the lists, but a
  // persistent block does not (validate() refuses it).
  const AttentionSpec listed = spec(R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"custom",)"
                                    R"("expr":"(q_idx // 64) % 2 == (kv_idx // 64) % 2"}})");
  const std::vector<TileConfig> lc = flashjit::tile_candidates(listed, "sm_90a");
  CHECK(ws(lc) > 0);
  CHECK(std::none_of(lc.begin(), lc.end(), [](const TileConfig& t) { return t.persistent; }));
  unsetenv("FLASHJIT_TUNE_TMA_WS");

  // A winner with pipeline = tma_ws survives the database's round trip.
  const flashjit::DeviceInfo dev{"NVIDIA Test GPU", 132, 13000, "sm_90a"};
  const TuningKey key = flashjit::make_tuning_key(causal, flashjit::shape_bucket(2, 8, 4096, 4096), dev);
  fjtest::ScratchDir dir;
  const TuningDb db(dir.path);
  flashjit::TuningRecord rec;
  rec.key = key;
  rec.tile = TileConfig{128, 128, 12, 2, flashjit::MmaKind::wgmma, flashjit::PipelineKind::tma_ws, true, true};
  rec.median_ms = 0.25;
  rec.candidates = {{rec.tile, true, 0.25, 10, ""}, {TileConfig{128, 128, 8, 2, flashjit::MmaKind::wgmma}, true, 0.3, 10, ""}};
  db.store(key, rec);
  const auto got = db.lookup(key);
  REQUIRE(got);
  CHECK(got->tile == rec.tile);
  CHECK(got->candidates.size() == 2);
  CHECK(got->candidates[1].tile.pipeline == flashjit::PipelineKind::cp_async);
  CHECK(has(read_text(db.record_path(key)), "\"pipeline\": \"tma_ws\""));
  CHECK(has(read_text(db.record_path(key)), "\"persistent\": true"));
}

TEST_CASE("tuning: candidates are pruned by each arch's budget", "[tuning]") {
  const AttentionSpec d256 = spec(R"({"dtype":"bf16","head_dim":256})");
  for (const TileConfig& t : flashjit::tile_candidates(d256, "sm_80")) {
    INFO(tile_str(t));
    CHECK(!(t.block_m == 128 && t.block_n == 128 && t.stages == 3));
    CHECK(flashjit::passes::smem_bytes(d256, t) <= 163 * 1024);
  }
  // 128x128, 8 warps, 2 stages at d128 needs 170 KB of shared memory: Hopper only.
  const AttentionSpec d128 = spec(R"({"dtype":"bf16","head_dim":128,"mask":"causal"})");
  const auto sm86 = flashjit::tile_candidates(d128, "sm_86");
  const auto sm80 = flashjit::tile_candidates(d128, "sm_80");
  const auto sm90 = flashjit::tile_candidates(d128, "sm_90a");
  CHECK(sm86.size() < sm90.size());
  CHECK(sm80.size() <= sm90.size());
  const TileConfig big{128, 128, 8, 2};
  CHECK(contains(sm90, big));
  CHECK(!contains(sm86, big));
  CHECK(!contains(sm80, big));
  for (const TileConfig& t : sm86) CHECK(contains(sm90, t));  // a smaller budget only removes

  REQUIRE_THROWS_AS(flashjit::tile_candidates(d128, "sm_12"), flashjit::ArgumentError);
  REQUIRE_THROWS_AS(flashjit::tile_candidates(spec(R"({"dtype":"bf16","head_dim":128})"), "sm_80x"),
                    flashjit::ArgumentError);
}

TEST_CASE("tuning: shape buckets round up to powers of two", "[tuning]") {
  using flashjit::shape_bucket;
  using flashjit::ShapeBucket;
  CHECK(shape_bucket(2, 4, 1000, 1000) == ShapeBucket{1024, 1024, 8});
  CHECK(shape_bucket(1, 1, 1, 1) == ShapeBucket{64, 64, 1});
  CHECK(shape_bucket(1, 1, 64, 0) == ShapeBucket{64, 64, 1});
  CHECK(shape_bucket(1, 16, 64, 65) == ShapeBucket{64, 128, 16});
  CHECK(shape_bucket(3, 5, 4096, 4097) == ShapeBucket{4096, 8192, 16});
  CHECK(shape_bucket(4, 16, 16384, 16384) == ShapeBucket{16384, 16384, 64});
  // Shapes in one bucket share a key; a neighbour bucket does not.
  CHECK(shape_bucket(2, 4, 513, 900) == shape_bucket(1, 7, 1024, 1024));
  CHECK(!(shape_bucket(2, 4, 1025, 1000) == shape_bucket(2, 4, 1024, 1000)));
  CHECK(flashjit::to_string(shape_bucket(2, 4, 1000, 1000)) == "sq<=1024 sk<=1024 bh<=8");
}

TEST_CASE("tuning: the key digest covers every key field and not the tile", "[tuning]") {
  const TuningKey base = fjtest::sample_tuning_key();
  const std::string d = base.digest();
  CHECK(d.size() == 32);
  CHECK(d.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(fjtest::sample_tuning_key().digest() == d);  // stable

  std::vector<std::pair<std::string, TuningKey>> changed;
  auto vary = [&](const std::string& what, auto&& edit) {
    TuningKey k = base;
    edit(k);
    changed.emplace_back(what, k);
  };
  vary("spec", [](TuningKey& k) {
    k.spec_json = flashjit::spec_to_json(spec(R"({"dtype":"bf16","head_dim":128,"num_heads_q":16})"));
  });
  vary("seqlen_q bucket", [](TuningKey& k) { k.bucket.seqlen_q *= 2; });
  vary("seqlen_k bucket", [](TuningKey& k) { k.bucket.seqlen_k *= 2; });
  vary("batch*heads bucket", [](TuningKey& k) { k.bucket.batch_heads *= 2; });
  vary("gpu name", [](TuningKey& k) { k.gpu_name += " PCIe"; });
  vary("sm count", [](TuningKey& k) { k.sm_count = 114; });
  vary("driver", [](TuningKey& k) { k.driver_version = 12080; });
  vary("nvrtc", [](TuningKey& k) { k.nvrtc_version = "12.8"; });
  vary("arch", [](TuningKey& k) { k.arch = "sm_90"; });
  vary("code version", [](TuningKey& k) { k.code_version = "0123456789abcdef"; });
  std::set<std::string> digests{d};
  for (const auto& [what, k] : changed) {
    INFO(what);
    CHECK(k.digest() != d);
    CHECK(!(k == base));
    digests.insert(k.digest());
  }
  CHECK(digests.size() == changed.size() + 1);

  // make_tuning_key drops the tile: specs differing only in the tile share a key.
  flashjit::DeviceInfo dev{"NVIDIA Test GPU", 132, 13000, "sm_90a"};
  const AttentionSpec s = spec(R"({"dtype":"bf16","head_dim":128,"num_heads_q":16,"mask":"causal"})");
  const auto bucket = flashjit::shape_bucket(2, 4, 1000, 1000);
  const TuningKey a = flashjit::make_tuning_key(s, bucket, dev);
  const TuningKey b = flashjit::make_tuning_key(with_tile(s, {64, 32, 4, 3}), bucket, dev);
  CHECK(a.digest() == b.digest());
  CHECK(a.nvrtc_version == flashjit::nvrtc_version_string());
  CHECK(a.code_version == flashjit::code_version());
  CHECK(a.code_version.size() == 16);
  // A spec written differently but equal after normalization has the same key.
  const AttentionSpec s2 = spec(
      R"({"dtype":"bf16","head_dim":128,"head_dim_v":128,"num_heads_q":16,"num_heads_kv":16,)"
      R"("mask":{"kind":"causal"}})");
  CHECK(flashjit::make_tuning_key(s2, bucket, dev).digest() == a.digest());
}

TEST_CASE("tuning: database store and lookup round trip", "[tuning]") {
  fjtest::ScratchDir dir;
  const TuningDb db(dir.path);
  CHECK(db.dir() == dir.path / "tuning");
  const TuningKey key = fjtest::sample_tuning_key();
  const TuningKey other = fjtest::sample_tuning_key(" other");
  CHECK(!db.lookup(key));

  const flashjit::TuningRecord rec = fjtest::sample_tuning_record(key);
  const fs::path path = db.store(key, rec);
  CHECK(path == dir.path / "tuning" / (key.digest() + ".json"));
  CHECK(fs::exists(path));
  CHECK(has(read_text(path), "\"gpu_name\": \"NVIDIA Test GPU\""));  // readable JSON

  const auto got = db.lookup(key);
  REQUIRE(got);
  CHECK(fjtest::same_record(*got, rec));
  CHECK(!db.lookup(other));

  // store() files the record under the key it is given, whatever record.key says.
  db.store(other, rec);
  const auto got_other = db.lookup(other);
  REQUIRE(got_other);
  CHECK(got_other->key == other);
  CHECK(got_other->tile == rec.tile);
  REQUIRE(db.lookup(key));

  // A record without a creation time gets one.
  flashjit::TuningRecord undated = rec;
  undated.created.clear();
  db.store(key, undated);
  CHECK(db.lookup(key)->created.size() == 20);  // 2025-01-02T03:04:05Z

  // Specs with doubles and every field set survive the JSON round trip under their key.
  const flashjit::DeviceInfo dev{"NVIDIA Test GPU", 132, 13000, "sm_90a"};
  const TuningKey exotic = flashjit::make_tuning_key(
      spec(R"({"dtype":"fp16","head_dim":192,"head_dim_v":128,"num_heads_q":12,"num_heads_kv":4,)"
           R"("mask":{"kind":"sliding_window","align":"top_left","left":37,"right":11},)"
           R"("softmax_scale":0.1,"return_lse":true})"),
      flashjit::shape_bucket(3, 12, 777, 4097), dev);
  db.store(exotic, rec);
  REQUIRE(db.lookup(exotic));
  CHECK(db.lookup(exotic)->key == exotic);
  db.clear();
  db.store(key, undated);
  db.store(other, rec);

  const auto listing = db.list();
  REQUIRE(listing.size() == 2);
  for (const auto& l : listing) CHECK(l.record);
  CHECK(listing[0].digest < listing[1].digest);
  CHECK(db.clear() == 2);
  CHECK(db.list().empty());
  CHECK(!db.lookup(key));
}

TEST_CASE("tuning: corrupt, truncated or foreign records read as a miss and are rewritten", "[tuning]") {
  fjtest::ScratchDir dir;
  const TuningDb db(dir.path);
  const TuningKey key = fjtest::sample_tuning_key();
  const flashjit::TuningRecord rec = fjtest::sample_tuning_record(key);
  const fs::path path = db.store(key, rec);
  const std::string good = read_text(path);

  // A record written for another key, copied under this key's name.
  const TuningKey other = fjtest::sample_tuning_key(" other");
  const std::string foreign = read_text(db.store(other, fjtest::sample_tuning_record(other)));
  auto replace = [&](std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
  };

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"empty", ""},
      {"truncated", good.substr(0, good.size() / 2)},
      {"truncated by one byte", good.substr(0, good.rfind('}'))},
      {"garbage", std::string("\x7f" "ELF\0\x01\x02 not json", 16)},
      {"not an object", "[1, 2, 3]\n"},
      {"wrong key inside", foreign},
      {"key edited, digest not", replace(good, "NVIDIA Test GPU", "NVIDIA Other GPU")},
      {"other schema", replace(good, "\"schema\": 1", "\"schema\": 99")},
      {"illegal tile", replace(good, "\"tile\": {\n    \"block_m\": 128", "\"tile\": {\n    \"block_m\": 48")},
      {"mistyped field", replace(good, "\"median_ms\": 0.8125", "\"median_ms\": \"fast\"")},
      {"negative time", replace(good, "\"median_ms\": 0.8125", "\"median_ms\": -1.0")},
      {"missing candidates", replace(good, "\"candidates\"", "\"kandidates\"")},
      // Found by tests/fuzz/fuzz_tuning_record (tests/fuzz/crashes-found): get<int>() of
      // 1e300 is undefined behaviour; 132.5 was truncated and 2^64-1 wrapped to -1.
      {"schema 1e300", replace(good, "\"schema\": 1", "\"schema\": 1e300")},
      {"sm_count 1e300", replace(good, "\"sm_count\": 132", "\"sm_count\": 1e300")},
      {"sm_count 132.5", replace(good, "\"sm_count\": 132", "\"sm_count\": 132.5")},
      {"sm_count 2^64-1", replace(good, "\"sm_count\": 132", "\"sm_count\": 18446744073709551615")},
      {"seqlen_q 1e300", replace(good, "\"seqlen_q\": 1024", "\"seqlen_q\": 1e300")},
      {"block_m 1e300", replace(good, "\"tile\": {\n    \"block_m\": 128", "\"tile\": {\n    \"block_m\": 1e300")},
  };
  for (const auto& [what, text] : bad) {
    INFO(what);
    write_text(path, text);
    CHECK(!db.lookup(key));
    bool listed_corrupt = false;
    for (const auto& l : db.list())
      if (l.digest == key.digest()) listed_corrupt = !l.record;
    CHECK(listed_corrupt);
    db.store(key, rec);  // what the next tuning does
    const auto got = db.lookup(key);
    REQUIRE(got);
    CHECK(fjtest::same_record(*got, rec));
  }
  CHECK(read_text(path) == good);
}

TEST_CASE("tuning: concurrent writers of one record leave a valid record", "[tuning]") {
  fjtest::ScratchDir dir;
  constexpr int kProcesses = 8;
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcesses; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execl(FLASHJIT_TUNING_HELPER_PATH, FLASHJIT_TUNING_HELPER_PATH, dir.path.c_str(), "40",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  const TuningDb db(dir.path);
  const TuningKey key = fjtest::sample_tuning_key();
  const auto got = db.lookup(key);
  REQUIRE(got);
  CHECK(fjtest::same_record(*got, fjtest::sample_tuning_record(key)));
  // Every temp file was renamed into place or removed.
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(db.dir())) {
    INFO(e.path().string());
    CHECK(e.path().extension() == ".json");
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("tuning: cache export / import through the CLI", "[tuning][cli]") {
  fjtest::ScratchDir work("export");
  const fs::path a = work.path / "a", b = work.path / "b", c = work.path / "c";
  const fs::path specs = work.path / "specs.json";
  write_text(specs, "[" + kSpecs[0] + ",\n" + kSpecs[4] + "]\n");

  // Compile-only mode (no GPU seen) fills cache a with each spec's heuristic kernel.
  fjtest::CliResult r = fjtest::run_cli(
      {"tune", "--specs", specs.string(), "--shapes", "b=1,sq=128", "--cache-dir", a.string(), "--arch", "sm_80",
       "--forward-only"},
      fjtest::kNoGpuEnv);
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "compile-only mode"));
  REQUIRE(flashjit::DiskCache(a).list().size() == 2);
  CHECK(TuningDb(a).list().empty());

  // A tuning record (as a GPU run would write) and one corrupt file of each kind.
  const TuningKey key = fjtest::sample_tuning_key();
  TuningDb(a).store(key, fjtest::sample_tuning_record(key));
  write_text(a / "kernels" / "ff" / ("ff" + std::string(30, '0') + ".fjk"), "FLASHJIT-KERNEL\nschema=1\ntruncated");
  write_text(a / "tuning" / (std::string(32, 'e') + ".json"), "{\"schema\": 1");

  r = fjtest::run_cli({"cache", "export", b.string(), "--cache-dir", a.string()});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "exported 2 kernel entries and 1 tuning record"));
  CHECK(has(r.out, "2 corrupt skipped"));

  r = fjtest::run_cli({"cache", "import", b.string(), "--cache-dir", c.string()});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "imported 2 kernel entries and 1 tuning record"));
  CHECK(has(r.out, "0 corrupt skipped"));

  r = fjtest::run_cli({"cache", "list", "--cache-dir", c.string()});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "flashjit_fwd_bf16_d64"));
  CHECK(has(r.out, "flashjit_fwd_bf16_d32"));
  CHECK(has(r.out, "2 entries in"));
  CHECK(has(r.out, key.digest()));
  CHECK(has(r.out, "128x64 w8 s3"));
  CHECK(has(r.out, "1 tuning record in"));
  CHECK(!has(r.out, "corrupt"));

  r = fjtest::run_cli({"cache", "stats", "--cache-dir", c.string()});
  CHECK(has(r.out, "entries:   2"));
  CHECK(has(r.out, "tuning:    1 record (0 corrupt)"));

  // The imported entries load and are the exported ones.
  const flashjit::DiskCache src(a), dst(c);
  for (const auto& l : src.list()) {
    if (!l.valid) continue;
    const auto want = src.load(l.key);
    const auto got = dst.load(l.key);
    REQUIRE(got);
    CHECK(got->image == want->image);
    CHECK(got->kernel_name == want->kernel_name);
  }
  const auto rec = TuningDb(c).lookup(key);
  REQUIRE(rec);
  CHECK(fjtest::same_record(*rec, fjtest::sample_tuning_record(key)));

  // A second import finds everything there already.
  r = fjtest::run_cli({"cache", "import", b.string(), "--cache-dir", c.string()});
  CHECK(has(r.out, "imported 0 kernel entries and 0 tuning records"));
  CHECK(has(r.out, "3 already there"));

  // clear removes both kinds.
  r = fjtest::run_cli({"cache", "clear", "--cache-dir", c.string()});
  CHECK(has(r.out, "removed 2 entries"));
  CHECK(has(r.out, "removed 1 tuning record"));

  // Usage errors.
  CHECK(fjtest::run_cli({"cache", "import", (work.path / "missing").string(), "--cache-dir", c.string()}).status == 2);
  CHECK(fjtest::run_cli({"cache", "export", "--cache-dir", c.string()}).status == 2);
  CHECK(fjtest::run_cli({"cache", "export", a.string(), "--cache-dir", a.string()}).status == 2);
}

// The backward's tile is tuned as its own kind: bwd_dkdv candidates, keys whose digest differs
// from the forward's (while a forward key's digest stays what it was), records that round
// trip and are checked by the backward's tile rules.
TEST_CASE("tuning: the backward's bwd_dkdv tiles are candidates, keys and records of their own kind", "[tuning][backward]") {
  for (const std::string& arch : kArchs)
    for (const std::string& js : kSpecs) {
      const AttentionSpec s = spec(js);
      const std::vector<TileConfig> c = flashjit::bwd_tile_candidates(s, arch);
      INFO(arch << " " << js);
      REQUIRE(!c.empty());
      CHECK(c.front() == flashjit::default_bwd_tile(s, arch));
      for (size_t i = 0; i < c.size(); ++i) {
        CHECK_NOTHROW(flashjit::check_bwd_tile(s, c[i], arch));
        for (size_t j = 0; j < i; ++j) CHECK_FALSE(c[i] == c[j]);
      }
      const bool wgmma = std::any_of(c.begin(), c.end(), [](const TileConfig& t) { return t.mma == flashjit::MmaKind::wgmma; });
      const auto n = s.normalized();
      CHECK(wgmma == (arch == "sm_90a" && (n.head_dim == 64 || n.head_dim == 128) && (n.head_dim_v == 64 || n.head_dim_v == 128)));
      CHECK(flashjit::bwd_tile_candidates(s, arch) == c);  // deterministic
    }
  const flashjit::DeviceInfo dev{"NVIDIA Test GPU", 132, 13000, "sm_90a"};
  const AttentionSpec s = spec(kSpecs[0]);
  const auto bucket = flashjit::shape_bucket(2, 4, 1000, 1000);
  const TuningKey fwd = flashjit::make_tuning_key(s, bucket, dev);
  const TuningKey bwd = flashjit::make_tuning_key(s, bucket, dev, "bwd_dkdv");
  CHECK(fwd.kind == "fwd");
  CHECK(fwd.digest() == flashjit::make_tuning_key(s, bucket, dev, "fwd").digest());
  CHECK(bwd.digest() != fwd.digest());
  CHECK_FALSE(bwd == fwd);

  fjtest::ScratchDir dir;
  const TuningDb db(dir.path);
  flashjit::TuningRecord rec;
  rec.key = bwd;
  rec.tile = TileConfig{128, 128, 8, 2, flashjit::MmaKind::wgmma};
  rec.median_ms = 0.5;
  rec.candidates = {{rec.tile, true, 0.5, 10, ""}, {TileConfig{64, 128, 8, 2}, false, 0.0, 0, "spilled"}};
  db.store(bwd, rec);
  const auto got = db.lookup(bwd);
  REQUIRE(got);
  CHECK(got->key == bwd);
  CHECK(got->key.kind == "bwd_dkdv");
  CHECK(got->tile == rec.tile);
  CHECK(!db.lookup(fwd));  // the forward's key does not see the backward's record
  CHECK(has(read_text(db.record_path(bwd)), "\"kind\": \"bwd_dkdv\""));
  // A backward record whose tile the backward cannot run (wgmma, head dim 64, block_m 64:
  // the dQ slabs do not split) reads as a miss.
  flashjit::TuningRecord bad = rec;
  bad.tile = TileConfig{64, 128, 8, 2, flashjit::MmaKind::wgmma};
  db.store(bwd, bad);
  CHECK(!db.lookup(bwd));
}
