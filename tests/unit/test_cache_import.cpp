// `flashjit cache import`: trusting imported kernels. Entries' checksums are unkeyed, so
// anyone can write an entry that verifies; `import --verify` recompiles each entry's spec
// here and rejects entries whose key or code do not match. A badly named or unreadable
// entry is skipped, never the end of the import.
//
// NVRTC compiles are kept few (each ~0.5 s): one genuine cache is built once and shared.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/block_mask.h"
#include "flashjit/codegen.h"
#include "flashjit/kernel_kinds.h"
#include "flashjit/disk_cache.h"
#include "flashjit/tuning.h"
#include "tuning_samples.h"

namespace fs = std::filesystem;
using fjtest::has;
using fjtest::run_cli;
using fjtest::shell_quote;
using flashjit::CacheEntry;
using flashjit::DiskCache;

namespace {

const std::string kSpec = R"({"dtype":"fp16","head_dim":32,"mask":"causal"})";
const char* kTrustLine = "importing a kernel cache means running its kernels";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_all(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

// One genuine cache with one kernel (compiled once per test process), compiled by a CLI run
// whose working directory differs from the test's: the cubin must not depend on where it was
// compiled (flashjit passes -lineinfo, which records the directory, only on request), so an
// export compiled elsewhere is byte for byte a local compile and --verify accepts it.
struct Genuine {
  fjtest::ScratchDir dir{"import-genuine"};
  fs::path cache;
  std::string key;
  CacheEntry entry;
  Genuine() {
    cache = dir.path / "cache";
    const fs::path elsewhere = dir.path / "compiled-here";
    fs::create_directories(elsewhere);
    const fjtest::CliResult r =
        run_cli({"compile", "--spec", kSpec, "--arch", "sm_80"},
                "cd " + shell_quote(elsewhere.string()) + " && FLASHJIT_CACHE_DIR=" + shell_quote(cache.string()));
    INFO(r.out);
    REQUIRE(r.status == 0);
    const std::vector<flashjit::CacheListing> l = DiskCache(cache).list();
    REQUIRE(l.size() == 1);
    key = l[0].key;
    entry = *DiskCache(cache).load(key);
  }
};
const Genuine& genuine() {
  static Genuine g;
  return g;
}

// The file offset and size of the ELF64 section whose name starts with `prefix` (".text.").
std::optional<std::pair<std::size_t, std::size_t>> elf_section(const std::string& elf, const std::string& prefix) {
  auto u16 = [&](std::size_t o) { uint16_t v; std::memcpy(&v, elf.data() + o, 2); return v; };
  auto u32 = [&](std::size_t o) { uint32_t v; std::memcpy(&v, elf.data() + o, 4); return v; };
  auto u64 = [&](std::size_t o) { uint64_t v; std::memcpy(&v, elf.data() + o, 8); return v; };
  if (elf.size() < 64 || elf.compare(0, 4, "\x7f" "ELF") != 0) return std::nullopt;
  const uint64_t shoff = u64(0x28);
  const uint16_t shnum = u16(0x3c), shstrndx = u16(0x3e);
  const uint64_t strtab = u64(shoff + 64 * shstrndx + 0x18);
  for (uint16_t i = 0; i < shnum; ++i) {
    const uint64_t h = shoff + 64 * i;
    const std::string name = elf.c_str() + strtab + u32(h);
    if (name.compare(0, prefix.size(), prefix) == 0)
      return std::make_pair(std::size_t(u64(h + 0x18)), std::size_t(u64(h + 0x20)));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("cache import prints that imported kernels are run, and --verify accepts a genuine export", "[cli]") {
  const Genuine& g = genuine();
  fjtest::ScratchDir work("import");
  const fs::path exported = work.path / "exported", plain = work.path / "plain", verified = work.path / "verified";
  fjtest::CliResult r = run_cli({"cache", "export", exported.string(), "--cache-dir", g.cache.string()});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(!has(r.out, kTrustLine));  // exporting runs nothing

  r = run_cli({"cache", "import", exported.string(), "--cache-dir", plain.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, kTrustLine));
  CHECK(has(r.out, "--verify"));
  CHECK(has(r.out, "imported 1 kernel entry"));

  // --verify recompiles the entry here (another working directory than its compile's).
  r = run_cli({"cache", "import", "--verify", exported.string(), "--cache-dir", verified.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, kTrustLine));
  CHECK(has(r.out, "imported 1 kernel entry"));
  CHECK(has(r.out, "1 verified, 0 rejected"));
  const std::optional<CacheEntry> got = DiskCache(verified).load(g.key);
  REQUIRE(got);
  CHECK(got->kernel_name == g.entry.kernel_name);
  CHECK(got->spec_json == g.entry.spec_json);

  // --verify=VALUE is not a thing; the flag takes no value.
  CHECK(run_cli({"cache", "import", "--verify=yes", exported.string(), "--cache-dir", verified.string()}).status == 2);
  CHECK(run_cli({"cache", "export", "--verify", exported.string(), "--cache-dir", verified.string()}).status == 2);
}

TEST_CASE("cache import --verify rejects a forged cubin that plain import takes", "[cli]") {
  const Genuine& g = genuine();
  fjtest::ScratchDir work("import-forged");
  const fs::path forged = work.path / "forged";
  // A valid entry (header, size, checksum: DiskCache::store writes them) whose machine code
  // has one byte flipped.
  CacheEntry e = g.entry;
  const auto text = elf_section(e.image, ".text.");
  REQUIRE(text);
  REQUIRE(text->second > 64);
  e.image[text->first + text->second / 2] ^= 0x40;
  const fs::path path = DiskCache(forged).store(g.key, e);

  fjtest::CliResult r = run_cli({"cache", "import", forged.string(), "--cache-dir", (work.path / "plain").string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "imported 1 kernel entry"));  // the checksum proves nothing
  CHECK(has(r.out, kTrustLine));

  const fs::path dst = work.path / "verified";
  r = run_cli({"cache", "import", "--verify", forged.string(), "--cache-dir", dst.string()});
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(has(r.out, "rejected " + path.string()));
  CHECK(has(r.out, "cubin differs"));
  CHECK(has(r.out, "first at byte"));
  CHECK(has(r.out, "imported 0 kernel entries"));
  CHECK(has(r.out, "0 verified, 1 rejected"));
  CHECK(!DiskCache(dst).load(g.key));
}

TEST_CASE("cache import --verify rejects an entry whose key does not match its spec", "[cli]") {
  const Genuine& g = genuine();
  fjtest::ScratchDir work("import-key");
  const fs::path src = work.path / "src";
  // The genuine cubin under the key of another spec: spec_json says head_dim 64.
  CacheEntry e = g.entry;
  const std::string from = "\"head_dim\":32", to = "\"head_dim\":64";
  const std::size_t at = e.spec_json.find(from);
  REQUIRE(at != std::string::npos);
  e.spec_json.replace(at, from.size(), to);
  const fs::path respec = DiskCache(src).store(g.key, e);
  // And the genuine entry under a made-up key.
  std::string other_key = g.key;
  other_key.back() = other_key.back() == '0' ? '1' : '0';
  const fs::path rekeyed = DiskCache(src).store(other_key, g.entry);

  const fs::path dst = work.path / "dst";
  fjtest::CliResult r = run_cli({"cache", "import", "--verify", src.string(), "--cache-dir", dst.string()});
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(has(r.out, "rejected " + respec.string() + ": key does not match its spec for this flashjit/NVRTC version"));
  CHECK(has(r.out, "rejected " + rekeyed.string() + ": key does not match its spec for this flashjit/NVRTC version"));
  CHECK(has(r.out, "0 verified, 2 rejected"));
  CHECK(DiskCache(dst).list().empty());
}

TEST_CASE("cache import skips a badly named entry and imports the rest", "[cli]") {
  const Genuine& g = genuine();
  fjtest::ScratchDir work("import-badname");
  const fs::path src = work.path / "src";
  DiskCache(src).store(g.key, g.entry);
  // A tuning record, to see the import go on past the bad entry.
  const flashjit::TuningKey tkey = fjtest::sample_tuning_key();
  flashjit::TuningDb(src).store(tkey, fjtest::sample_tuning_record(tkey));
  // kernels/zz/bad name!.fjk: a well-formed entry for the key "bad name!", which no store
  // could write (it is not a valid key, so it is no file name DiskCache::entry_path gives).
  std::string file = read_all(DiskCache(src).entry_path(g.key));
  const std::string key_line = "key=" + g.key + "\n";
  const std::size_t at = file.find(key_line);
  REQUIRE(at != std::string::npos);
  file.replace(at, key_line.size(), "key=bad name!\n");
  const fs::path bad = src / "kernels" / "zz" / "bad name!.fjk";
  write_all(bad, file);

  const fs::path dst = work.path / "dst";
  fjtest::CliResult r = run_cli({"cache", "import", src.string(), "--cache-dir", dst.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "skipped " + bad.string() + ": not a valid cache key"));
  CHECK(has(r.out, "imported 1 kernel entry and 1 tuning record"));
  CHECK(DiskCache(dst).load(g.key));
  CHECK(flashjit::TuningDb(dst).lookup(tkey));

  // --verify skips it the same way (and verifies the good one: one NVRTC compile).
  const fs::path dst2 = work.path / "dst2";
  r = run_cli({"cache", "import", "--verify", src.string(), "--cache-dir", dst2.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "skipped " + bad.string() + ": not a valid cache key"));
  CHECK(has(r.out, "imported 1 kernel entry and 1 tuning record"));
  CHECK(has(r.out, "1 verified, 0 rejected"));
}

TEST_CASE("cache import --verify recompiles block-mask builder entries too", "[cli][block_mask]") {
  fjtest::ScratchDir work("import-builder");
  const fs::path exported = work.path / "exported", verified = work.path / "verified";
  const std::vector<flashjit::expr::CaptureDecl> caps = {{"doc", flashjit::expr::CaptureDType::i32, 1}};
  flashjit::CompileOptions o;
  o.arch = "sm_80";
  o.use_cache = false;
  const flashjit::CompiledKernel k = flashjit::compile_block_mask("doc[q_idx] == doc[kv_idx]", caps, o);
  flashjit::AttentionSpec meta;  // what compile_block_mask stores beside the cubin
  meta.head_dim = meta.head_dim_v = 64;
  meta.mask.kind = flashjit::MaskKind::custom;
  meta.mask.expr = "doc[q_idx] == doc[kv_idx]";
  meta.captures = caps;
  DiskCache(exported).store(k.cache_key, flashjit::cache_entry_for(k, flashjit::spec_to_json(meta)));
  const fjtest::CliResult r = run_cli({"cache", "import", "--verify", exported.string(), "--cache-dir", verified.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "1 verified, 0 rejected"));
  const std::optional<CacheEntry> got = DiskCache(verified).load(k.cache_key);
  REQUIRE(got);
  CHECK(got->kernel_name == k.kernel_name);
  CHECK(got->image == k.image);
}

TEST_CASE("cache import --verify recompiles bwd_preprocess entries too", "[cli][backward]") {
  fjtest::ScratchDir work("import-bwd-pre");
  const fs::path exported = work.path / "exported", verified = work.path / "verified";
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::f16;
  spec.head_dim = 96, spec.head_dim_v = 96;
  flashjit::CompileOptions o;
  o.arch = "sm_90a";
  o.use_cache = false;
  const flashjit::CompiledKernel k = flashjit::compile_kind(flashjit::KernelKind::bwd_preprocess, spec, o);
  const std::string meta = flashjit::spec_to_json(flashjit::codegen::bwd_preprocess_spec(spec));  // what it stores
  DiskCache(exported).store(k.cache_key, flashjit::cache_entry_for(k, meta));
  const fjtest::CliResult r = run_cli({"cache", "import", "--verify", exported.string(), "--cache-dir", verified.string()});
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "1 verified, 0 rejected"));
  const std::optional<CacheEntry> got = DiskCache(verified).load(k.cache_key);
  REQUIRE(got);
  CHECK(got->kernel_name == k.kernel_name);
  CHECK(got->image == k.image);
}
