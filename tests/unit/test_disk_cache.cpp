// The on-disk kernel cache: hits and misses, key sensitivity, corruption handling,
// directory rules, maintenance and concurrent writers.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"

namespace fs = std::filesystem;
using flashjit::CacheEntry;
using flashjit::DiskCache;

namespace {

// A fresh directory per test, removed afterwards, so tests never see each other's entries.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("flashjit-cache-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Sets or unsets an environment variable for one scope and restores it afterwards.
struct EnvGuard {
  std::string name;
  std::optional<std::string> saved;
  explicit EnvGuard(std::string n) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) saved = v;
  }
  void set(const std::string& v) { ::setenv(name.c_str(), v.c_str(), 1); }
  void unset() { ::unsetenv(name.c_str()); }
  ~EnvGuard() {
    if (saved)
      ::setenv(name.c_str(), saved->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

CacheEntry sample_entry(const std::string& tag) {
  CacheEntry e;
  e.kernel_name = "flash_fwd_" + tag;
  // Binary content with NULs and high bytes, like a real cubin.
  e.image = std::string("\x7f" "ELF", 4) + std::string(1, '\0') + tag + std::string(3000, '\xab');
  e.log = "ptxas info    : Used 96 registers, used 1 barriers, 16384 bytes smem, 544 bytes cmem[0]\n";
  e.resources.registers = 96;
  e.resources.shared_static_bytes = 16384;
  e.resources.stack_frame_bytes = 0;
  e.resources.spill_store_bytes = 4;
  e.resources.spill_load_bytes = 8;
  e.threads = 128;
  e.dynamic_smem_bytes = 65536;
  e.compile_ms = 1234.25;
  e.spec_json = R"({"dtype":"bf16","head_dim":128,"tag":")" + tag + "\"}";
  e.arch = "sm_90a";
  return e;
}

void require_same(const CacheEntry& a, const CacheEntry& b) {
  CHECK(a.kernel_name == b.kernel_name);
  CHECK(a.image == b.image);
  CHECK(a.log == b.log);
  CHECK(a.resources.registers == b.resources.registers);
  CHECK(a.resources.shared_static_bytes == b.resources.shared_static_bytes);
  CHECK(a.resources.stack_frame_bytes == b.resources.stack_frame_bytes);
  CHECK(a.resources.spill_store_bytes == b.resources.spill_store_bytes);
  CHECK(a.resources.spill_load_bytes == b.resources.spill_load_bytes);
  CHECK(a.threads == b.threads);
  CHECK(a.dynamic_smem_bytes == b.dynamic_smem_bytes);
  CHECK(a.compile_ms == b.compile_ms);
  CHECK(a.spec_json == b.spec_json);
  CHECK(a.arch == b.arch);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_all(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

std::vector<fs::path> files_under(const fs::path& root) {
  std::vector<fs::path> out;
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

const std::string kKeyA = flashjit::digest_hex("entry a");
const std::string kKeyB = flashjit::digest_hex("entry b");

}  // namespace

TEST_CASE("digest_hex is XXH3-128 as 32 lowercase hex chars", "[cache]") {
  const std::string d = flashjit::digest_hex("hello");
  REQUIRE(d.size() == 32);
  CHECK(d.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(flashjit::digest_hex("hello") == d);
  CHECK(flashjit::digest_hex("hellp") != d);
  CHECK(flashjit::digest_hex("") != flashjit::digest_hex(std::string(1, '\0')));
  CHECK(flashjit::digest_hex("abcdefgh") != flashjit::digest_hex(std::string("abcdefgh\0", 9)));
  // Known answers, computed with the reference tool, not with this function
  // (`printf 'flashjit' | xxh128sum`, xxHash 0.8.1; python: xxhash.xxh3_128_hexdigest(b"flashjit")).
  // The digest names entries on disk, so it must not change between builds or platforms
  // (a change orphans every existing cache entry; then bump kCacheSchemaVersion).
  CHECK(flashjit::digest_hex("") == "99aa06d3014798d86001c324468d497f");
  CHECK(flashjit::digest_hex("flashjit") == "435890320fedc26bfebb1af6e2dfe332");
  CHECK(flashjit::digest_hex("hello") == "b5e9c1ad071b3e7fc779cfaa5e523818");
  // Past 240 bytes XXH3 takes its long-input path (stripes and accumulators): pin that too.
  // `head -c 1000 /dev/zero | tr '\0' x | xxh128sum`
  CHECK(flashjit::digest_hex(std::string(1000, 'x')) == "50a1af5a5f2dcf01c0a4877b962cba82");
}

TEST_CASE("disk cache: miss, then hit with every field intact", "[cache]") {
  TempDir tmp;
  DiskCache cache(tmp.path);
  CHECK_FALSE(cache.load(kKeyA).has_value());

  const CacheEntry e = sample_entry("a");
  const fs::path path = cache.store(kKeyA, e);
  CHECK(path.string() == cache.entry_path(kKeyA).string());
  CHECK(path.string() == (tmp.path / "kernels" / kKeyA.substr(0, 2) / (kKeyA + ".fjk")).string());
  REQUIRE(fs::exists(path));

  const auto got = cache.load(kKeyA);
  REQUIRE(got.has_value());
  require_same(*got, e);
  CHECK_FALSE(cache.load(kKeyB).has_value());

  // Storing again replaces the entry.
  const CacheEntry e2 = sample_entry("a2");
  cache.store(kKeyA, e2);
  const auto got2 = cache.load(kKeyA);
  REQUIRE(got2.has_value());
  require_same(*got2, e2);
}

TEST_CASE("disk cache: keys that are not file-name safe are rejected", "[cache]") {
  TempDir tmp;
  DiskCache cache(tmp.path);
  CHECK_THROWS_AS(cache.entry_path("../etc/passwd"), flashjit::ArgumentError);
  CHECK_THROWS_AS(cache.store("a/b", sample_entry("x")), flashjit::ArgumentError);
  CHECK_THROWS_AS(cache.load(""), flashjit::ArgumentError);
}

TEST_CASE("kernel_cache_key changes with every piece of key material", "[cache]") {
  const std::string src = "extern \"C\" __global__ void k() {}\n";
  const std::vector<std::string> opts = flashjit::nvrtc_options("sm_90a");
  const std::string key = flashjit::kernel_cache_key(src, "sm_90a", opts);
  CHECK(key.size() == 32);
  CHECK(flashjit::kernel_cache_key(src, "sm_90a", opts) == key);  // deterministic

  CHECK(flashjit::kernel_cache_key(src + " ", "sm_90a", opts) != key);
  CHECK(flashjit::kernel_cache_key(src, "sm_90", opts) != key);
  CHECK(flashjit::kernel_cache_key(src, "sm_80", opts) != key);
  std::vector<std::string> more = opts;
  more.push_back("-DEXTRA=1");
  CHECK(flashjit::kernel_cache_key(src, "sm_90a", more) != key);
  std::vector<std::string> changed = opts;
  changed.back() += "0";
  CHECK(flashjit::kernel_cache_key(src, "sm_90a", changed) != key);
  // Option boundaries count: {"-a -b"} is not {"-a", "-b"}.
  CHECK(flashjit::kernel_cache_key(src, "sm_90a", {"-a -b"}) !=
        flashjit::kernel_cache_key(src, "sm_90a", {"-a", "-b"}));
  // The arch/option/source boundaries cannot be shifted into each other.
  CHECK(flashjit::kernel_cache_key(src, "sm_90a", {}) != flashjit::kernel_cache_key(src, "sm_90", {"a"}));
}

TEST_CASE("disk cache: a truncated entry is a miss and is rebuilt", "[cache]") {
  TempDir tmp;
  DiskCache cache(tmp.path);
  const CacheEntry e = sample_entry("t");
  const fs::path path = cache.store(kKeyA, e);
  const auto full = fs::file_size(path);
  fs::resize_file(path, full / 2);
  CHECK_FALSE(cache.load(kKeyA).has_value());

  // Truncated inside the header too.
  fs::resize_file(path, 10);
  CHECK_FALSE(cache.load(kKeyA).has_value());
  fs::resize_file(path, 0);
  CHECK_FALSE(cache.load(kKeyA).has_value());

  cache.store(kKeyA, e);
  CHECK(fs::file_size(path) == full);
  const auto got = cache.load(kKeyA);
  REQUIRE(got.has_value());
  require_same(*got, e);
}

TEST_CASE("disk cache: corrupted entries read as misses", "[cache]") {
  TempDir tmp;
  DiskCache cache(tmp.path);
  const CacheEntry e = sample_entry("c");
  const fs::path path = cache.store(kKeyA, e);
  const std::string good = read_all(path);
  REQUIRE(cache.load(kKeyA).has_value());

  SECTION("a flipped byte in the payload") {
    std::string bad = good;
    bad[bad.size() - 100] ^= 0x01;
    write_all(path, bad);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("a flipped byte in the image's middle") {
    std::string bad = good;
    bad[good.size() / 2] ^= 0x40;
    write_all(path, bad);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("trailing garbage") {
    write_all(path, good + "x");
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("bad magic") {
    std::string bad = good;
    bad[0] = 'G';
    write_all(path, bad);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("another schema version") {
    std::string bad = good;
    const std::string field = "schema=" + std::to_string(flashjit::kCacheSchemaVersion) + "\n";
    const auto pos = bad.find(field);
    REQUIRE(pos != std::string::npos);
    bad.replace(pos, field.size(), "schema=" + std::to_string(flashjit::kCacheSchemaVersion + 1) + "\n");
    write_all(path, bad);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("an entry written for another key at this path") {
    const fs::path other = cache.store(kKeyB, sample_entry("b"));
    REQUIRE(cache.load(kKeyB).has_value());
    fs::copy_file(other, path, fs::copy_options::overwrite_existing);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  SECTION("a lying payload length") {
    std::string bad = good;
    const auto pos = bad.find("\npayload=");
    REQUIRE(pos != std::string::npos);
    bad.insert(pos + 9, "1");  // claims 10x (plus) the real length
    write_all(path, bad);
    CHECK_FALSE(cache.load(kKeyA).has_value());
  }
  // Whatever was broken, a store repairs it.
  cache.store(kKeyA, e);
  const auto got = cache.load(kKeyA);
  REQUIRE(got.has_value());
  require_same(*got, e);
}

TEST_CASE("disk cache: default_dir follows FLASHJIT_CACHE_DIR, XDG_CACHE_HOME, HOME", "[cache]") {
  EnvGuard fj("FLASHJIT_CACHE_DIR"), xdg("XDG_CACHE_HOME"), home("HOME");
  fj.set("/tmp/fj-explicit");
  xdg.set("/tmp/fj-xdg");
  home.set("/tmp/fj-home");
  CHECK(DiskCache::default_dir().string() == "/tmp/fj-explicit");

  fj.unset();
  CHECK(DiskCache::default_dir().string() == "/tmp/fj-xdg/flashjit");

  fj.set("");  // empty counts as unset
  CHECK(DiskCache::default_dir().string() == "/tmp/fj-xdg/flashjit");

  xdg.unset();
  CHECK(DiskCache::default_dir().string() == "/tmp/fj-home/.cache/flashjit");

  xdg.set("relative/cache");  // the XDG spec says to ignore relative paths
  CHECK(DiskCache::default_dir().string() == "/tmp/fj-home/.cache/flashjit");
}

TEST_CASE("disk cache: list, stats and clear", "[cache]") {
  TempDir tmp;
  DiskCache cache(tmp.path);
  CHECK(cache.list().empty());
  CHECK(cache.stats().entries == 0);
  CHECK(cache.clear() == 0);  // nothing there, not even the directory

  const CacheEntry a = sample_entry("a");
  CacheEntry b = sample_entry("b");
  b.arch = "sm_80";
  const fs::path pa = cache.store(kKeyA, a);
  const fs::path pb = cache.store(kKeyB, b);
  const std::string kKeyC = flashjit::digest_hex("entry c");
  const fs::path pc = cache.store(kKeyC, sample_entry("c"));
  fs::resize_file(pc, fs::file_size(pc) - 1);  // corrupt one

  const auto listing = cache.list();
  REQUIRE(listing.size() == 3);
  std::size_t valid = 0, total_bytes = 0;
  for (const auto& l : listing) {
    total_bytes += l.bytes;
    CHECK(l.bytes == fs::file_size(l.path));
    if (l.key == kKeyA) {
      CHECK(l.valid);
      CHECK(l.kernel_name == a.kernel_name);
      CHECK(l.arch == "sm_90a");
      CHECK(l.spec_json == a.spec_json);
      CHECK(l.path == pa.string());
    } else if (l.key == kKeyB) {
      CHECK(l.valid);
      CHECK(l.arch == "sm_80");
    } else {
      CHECK(l.key == kKeyC);
      CHECK_FALSE(l.valid);
    }
    valid += l.valid;
  }
  CHECK(valid == 2);

  const auto s = cache.stats();
  CHECK(s.entries == 3);
  CHECK(s.corrupt == 1);
  CHECK(s.bytes == total_bytes);

  CHECK(cache.clear() == 3);
  CHECK(cache.list().empty());
  CHECK_FALSE(cache.load(kKeyA).has_value());
  CHECK(files_under(tmp.path / "kernels").empty());
  // The cache works again after a clear.
  cache.store(kKeyA, a);
  CHECK(cache.load(kKeyA).has_value());
}

TEST_CASE("disk cache: 8 processes racing on one key all succeed", "[cache]") {
  TempDir tmp;
  const std::string key = flashjit::digest_hex("race key");
  const std::string payload_size = "200000";
  const std::string iterations = "60";
  const std::string dir = tmp.path.string();

  std::vector<pid_t> children;
  for (int i = 0; i < 8; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execl(FLASHJIT_TEST_HELPER_PATH, FLASHJIT_TEST_HELPER_PATH, dir.c_str(), key.c_str(),
              payload_size.c_str(), iterations.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);  // exec failed
    }
    children.push_back(pid);
  }
  int failures = 0;
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("helper pid " << pid << " status " << status);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(ok);
    failures += !ok;
  }
  CHECK(failures == 0);

  // Exactly one entry file, no temp files left behind, and it holds the helper's entry.
  const auto files = files_under(tmp.path / "kernels");
  REQUIRE(files.size() == 1);
  CHECK(files[0].filename().string() == key + ".fjk");
  DiskCache cache(tmp.path);
  const auto got = cache.load(key);
  REQUIRE(got.has_value());
  CHECK(got->kernel_name == "race_" + key);
  CHECK(got->image.size() == 200000u);
  const auto s = cache.stats();
  CHECK(s.entries == 1);
  CHECK(s.corrupt == 0);
}
