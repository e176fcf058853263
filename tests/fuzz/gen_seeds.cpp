// Writes the generated seeds of tests/fuzz/corpus/ (tuning records and cache entries, which
// carry digests and checksums that are impractical to write by hand):
//
//   build-fuzz/tests/fuzz/flashjit_fuzz_gen_seeds tests/fuzz/corpus
//
// The valid seeds come from the library's own writers (tuning_record_to_json, DiskCache::store);
// the others are those with one thing broken. The spec seeds (corpus/fuzz_spec_json) are
// written by hand. Output is deterministic, so re-running it changes no file.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "cache_entry_format.h"
#include "flashjit/disk_cache.h"
#include "flashjit/spec.h"
#include "flashjit/tuning.h"
#include "tuning_samples.h"

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
  if (!f) throw std::runtime_error("cannot write " + p.string());
  std::printf("%6zu  %s\n", bytes.size(), p.c_str());
}

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `text` with the first occurrence of `from` replaced (which must exist).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const std::size_t pos = text.find(from);
  if (pos == std::string::npos) throw std::runtime_error("seed generator: '" + from + "' not found");
  return text.replace(pos, from.size(), to);
}

void tuning_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  flashjit::TuningKey key = fjtest::sample_tuning_key();
  key.code_version = "0123456789abcdef0123456789abcdef";
  const flashjit::TuningRecord sample = fjtest::sample_tuning_record(key);
  const std::string valid = flashjit::tuning_record_to_json(sample);
  if (!flashjit::tuning_record_from_json(valid)) throw std::runtime_error("sample tuning record does not read back");
  write(dir / "valid_mma_sync.json", valid);

  // A wgmma winner for a sliding-window fp16 spec, no candidates.
  flashjit::TuningKey wkey = key;
  wkey.spec_json = flashjit::spec_to_json(flashjit::spec_from_json(
      R"({"dtype":"fp16","head_dim":128,"num_heads_q":8,"num_heads_kv":2,)"
      R"("mask":{"kind":"sliding_window","left":255,"right":0,"align":"top_left"},"return_lse":true})"));
  wkey.bucket = flashjit::shape_bucket(1, 8, 4096, 8192);
  flashjit::TuningRecord w;
  w.key = wkey;
  w.tile = {128, 128, 8, 2, flashjit::MmaKind::wgmma};
  w.median_ms = 1.5;
  w.created = "2026-01-01T00:00:00Z";
  const std::string valid_w = flashjit::tuning_record_to_json(w);
  if (!flashjit::tuning_record_from_json(valid_w)) throw std::runtime_error("wgmma tuning record does not read back");
  write(dir / "valid_wgmma.json", valid_w);

  // One thing wrong in each (each reads as a miss today).
  write(dir / "bad_schema.json", replaced(valid, "\"schema\": 1", "\"schema\": 2"));
  write(dir / "bad_digest.json", replaced(valid, "\"digest\": \"", "\"digest\": \"0"));
  write(dir / "float_sm_count.json", replaced(valid, "\"sm_count\": 132", "\"sm_count\": 132.5"));
  write(dir / "huge_sm_count.json", replaced(valid, "\"sm_count\": 132", "\"sm_count\": 1e300"));
  write(dir / "negative_ms.json", replaced(valid, "\"median_ms\": 0.8125", "\"median_ms\": -1"));
  write(dir / "bad_tile.json", replaced(valid, "\"block_m\": 128", "\"block_m\": 100"));
  write(dir / "string_tile.json", replaced(valid, "\"block_m\": 128", "\"block_m\": \"128\""));
  write(dir / "truncated.json", valid.substr(0, valid.size() / 2));
}

void cache_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  char tmpl[] = "/tmp/flashjit-gen-seeds-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  const fs::path tmp = tmpl;
  const flashjit::DiskCache cache(tmp);

  flashjit::CacheEntry e;
  e.kernel_name = "flashjit_fwd_bf16_d64x64_causal_br_0123abcd";
  e.image = std::string("\x7f" "ELF\x02\x01\x01", 7) + std::string(25, '\0');  // the start of a cubin
  e.log = "ptxas info: Used 96 registers";
  e.resources.registers = 96;
  e.resources.shared_static_bytes = 0;
  e.resources.stack_frame_bytes = 0;
  e.resources.spill_store_bytes = 0;
  e.resources.spill_load_bytes = 0;
  e.threads = 128;
  e.dynamic_smem_bytes = 49152;
  e.compile_ms = 512.25;
  e.spec_json = flashjit::spec_to_json(flashjit::spec_from_json(R"({"dtype":"bf16","head_dim":64,"mask":"causal"})"));
  e.arch = "sm_80";
  const std::string key = "0123456789abcdef0123456789abcdef";  // also the harness's fixed key
  const std::string file = read(cache.store(key, e));
  // The harness's encoder must agree with the library's writer.
  if (file != fjfuzz::cache_header(key, fjfuzz::cache_payload(e)) + fjfuzz::cache_payload(e))
    throw std::runtime_error("tests/fuzz/cache_entry_format.h disagrees with DiskCache::store");
  if (!flashjit::detail::parse_cache_entry(file, key)) throw std::runtime_error("stored entry does not parse");

  // Harness input: "<key>\n<file>".
  write(dir / "valid.fjk", key + "\n" + file);
  write(dir / "no_newline.fjk", "FLASHJIT-KERNEL");  // no newline: the harness's fixed key, the whole file
  flashjit::CacheEntry empty;
  const std::string empty_file = read(cache.store("ab", empty));
  write(dir / "valid_empty_fields.fjk", "ab\n" + empty_file);
  write(dir / "wrong_key.fjk", "0123456789abcdef0123456789abcdeX\n" + file);
  std::string bad_sum = file;
  char& digit = bad_sum[bad_sum.find("checksum=") + 9];
  digit = digit == '0' ? '1' : '0';
  write(dir / "bad_checksum.fjk", key + "\n" + bad_sum);
  write(dir / "truncated.fjk", key + "\n" + file.substr(0, file.size() - 5));
  write(dir / "trailing_garbage.fjk", key + "\n" + file + "xyz");
  write(dir / "bad_schema.fjk", key + "\n" + replaced(file, "schema=" + std::to_string(flashjit::kCacheSchemaVersion),
                                                                "schema=" + std::to_string(flashjit::kCacheSchemaVersion + 1)));
  write(dir / "huge_length.fjk", key + "\n" + replaced(file, "payload=", "payload=9999999999999999999"));
  // A payload that the harness wraps in a valid header (its second check): the encoded entry
  // alone, and one whose threads field does not fit 32 bits.
  write(dir / "payload_only.bin", fjfuzz::cache_payload(e));
  std::string wide = fjfuzz::cache_payload(e);
  const std::size_t threads_at = 3 * 8 + e.kernel_name.size() + e.image.size() + e.log.size() + 5 * 8;
  wide[threads_at + 4] = '\x01';  // threads = 128 + 2^32
  write(dir / "payload_wide_int.bin", wide);
  fs::remove_all(tmp);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    tuning_seeds(fs::path(argv[1]) / "fuzz_tuning_record");
    cache_seeds(fs::path(argv[1]) / "fuzz_cache_entry");
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "gen_seeds: %s\n", ex.what());
    return 1;
  }
  return 0;
}
