// Hostile input: specs, tuning records, cache entries and files built to crash, hang or
// mislead flashjit. Each section is a regression test for one finding of the hardening
// issue (numbered as there); every one of them failed before its fix. The tensor-argument
// findings (10) are in test_forward_args.cpp, the cache-import ones (8, 9) in
// test_cache_import.cpp.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/limits.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/runtime.h"
#include "flashjit/spec.h"
#include "flashjit/tuning.h"
#include "tuning_samples.h"

namespace fs = std::filesystem;
using flashjit::AttentionSpec;
using flashjit::SpecError;
using fjtest::has;

namespace {

struct Caught {
  std::string field, what;
};

// The SpecError `f` throws (a test failure if it throws nothing or something else).
Caught spec_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const SpecError& e) {
    return {e.field(), e.what()};
  }
  FAIL("no SpecError was thrown");
  return {};
}

Caught parse_error(const std::string& text) {
  return spec_error([&] { flashjit::validate(flashjit::spec_from_json(text)); });
}

// Python decodes every message as UTF-8: one stray byte would turn a SpecError into a
// UnicodeDecodeError.
bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || c == 0xc0 || c == 0xc1 || c > 0xf4 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    if (n == 3) {
      const unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f)) return false;
    }
    i += n;
  }
  return true;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `f` in a child process with an alarm: a call that blocks (a FIFO) fails the test
// instead of hanging it. The child's exit status is f()'s result (true = 0).
bool in_child_within(int seconds, const std::function<bool()>& f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(static_cast<unsigned>(seconds));
    ::_exit(f() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO("child status " << status << (WIFSIGNALED(status) ? " (killed by a signal: it blocked or crashed)" : ""));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::string nested(int depth) { return std::string(static_cast<std::size_t>(depth), '[') + std::string(static_cast<std::size_t>(depth), ']'); }

const char* kSpecD64 = R"({"dtype":"bf16","head_dim":64})";

}  // namespace

// ---- 1. deep nesting -------------------------------------------------------------------

TEST_CASE("hostile 1: deeply nested JSON is refused while parsing, never recursed over", "[hostile]") {
  // 70,000 levels (~140 KB) crashed building the error message (a recursive dump).
  const std::string deep = nested(70000);
  Caught e = parse_error(R"({"dtype":"bf16","head_dim":)" + deep + "}");
  CHECK(e.field == "json");  // refused before 64 KiB are even parsed: the size limit
  e = parse_error(R"({"dtype":"bf16","head_dim":)" + nested(5000) + "}");
  CHECK(e.field == "head_dim");
  CHECK(has(e.what, "nesting deeper than 16 levels"));
  e = parse_error(nested(20));
  CHECK(e.field == "[0]");
  CHECK(has(e.what, "nesting deeper"));
  // The same through a byte-order mark (Python's from_json path used to reach it).
  e = parse_error("\xEF\xBB\xBF" + nested(20000));
  CHECK(e.field == "json");
  // At the limit it is only a type error.
  e = parse_error(R"({"dtype":"bf16","head_dim":)" + nested(15) + "}");
  CHECK(has(e.what, "expected an integer"));
}

TEST_CASE("hostile 1: a deeply nested tuning record is a miss; list and the CLI survive it", "[hostile][cli]") {
  fjtest::ScratchDir dir;
  const flashjit::TuningDb db(dir.path);
  const flashjit::TuningKey key = fjtest::sample_tuning_key();
  const fs::path path = db.store(key, fjtest::sample_tuning_record(key));
  for (const std::string& text : {nested(70000), R"({"schema":1,"key":{"spec":)" + nested(60000) + "}}"}) {
    write_text(path, text);
    CHECK(!db.lookup(key));
    const auto listing = db.list();
    REQUIRE(listing.size() == 1);
    CHECK(!listing[0].record);
    for (const char* action : {"list", "stats"}) {
      const fjtest::CliResult r = fjtest::run_cli({"cache", action, "--cache-dir", dir.path.string()});
      INFO(r.out);
      CHECK(r.status == 0);
      CHECK(has(r.out, "corrupt"));
    }
  }
  // tune --specs with one deep line: an error naming the line, not a crash.
  const fs::path specs = dir.path / "deep.jsonl";
  write_text(specs, R"({"dtype":"bf16","head_dim":)" + nested(30000) + "}\n");
  const fjtest::CliResult r =
      fjtest::run_cli({"tune", "--specs", specs.string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"});
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(has(r.out, "deep.jsonl:1"));
  write_text(specs, "[" + std::string(R"({"dtype":"bf16","head_dim":)") + nested(20) + "}]");
  const fjtest::CliResult r2 =
      fjtest::run_cli({"tune", "--specs", specs.string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"});
  INFO(r2.out);
  CHECK(r2.status == 1);
  CHECK(has(r2.out, "nesting deeper"));
}

TEST_CASE("hostile 1: the CLI reports a deep spec instead of crashing", "[hostile][cli]") {
  fjtest::ScratchDir dir;
  const fs::path spec = dir.path / "deep.json";
  write_text(spec, R"({"dtype":"bf16","head_dim":64,"tile":)" + nested(50000) + "}");
  const fjtest::CliResult r = fjtest::run_cli({"emit", "--spec", spec.string()});
  INFO(r.out);
  CHECK(r.status == 1);  // was 139 (SIGSEGV)
  CHECK(has(r.out, "allowed: at most 65536"));
  write_text(spec, R"({"dtype":"bf16","head_dim":64,"tile":)" + nested(100) + "}");
  const fjtest::CliResult r2 = fjtest::run_cli({"emit", "--spec", spec.string()});
  CHECK(r2.status == 1);
  CHECK(has(r2.out, "spec.tile: "));
  CHECK(has(r2.out, "nesting deeper than 16 levels"));
}

// ---- 2. integer bounds -----------------------------------------------------------------

TEST_CASE("hostile 2: huge head counts are bounded before any arithmetic", "[hostile]") {
  // num_heads_q = INT_MAX with a non-divisor overflowed the divisor loop (SIGFPE after 6-14 s).
  AttentionSpec s = flashjit::spec_from_json(kSpecD64);
  s.num_heads_q = INT_MAX;
  s.num_heads_kv = 2;
  Caught e;
  const double t = seconds_of([&] { e = spec_error([&] { flashjit::validate(s); }); });
  CHECK(t < 0.5);
  CHECK(e.field == "num_heads_q");
  CHECK(has(e.what, "allowed: 1 to 65535"));
  // At the bound, the divisor list is computed quickly and correctly.
  s.num_heads_q = flashjit::limits::kMaxHeads;  // 3 * 5 * 17 * 257
  s.num_heads_kv = 2;
  e = spec_error([&] { flashjit::validate(s); });
  CHECK(e.field == "num_heads_kv");
  CHECK(has(e.what, "allowed: 1, 3, 5, 15, 17, 51, 85, 255, 257, 771"));
  s.num_heads_kv = 257;
  CHECK_NOTHROW(flashjit::validate(s));
  s.num_heads_kv = INT_MAX;
  CHECK(spec_error([&] { flashjit::validate(s); }).field == "num_heads_kv");
  // Windows are bounded too (documented: the longest sequence flashjit runs).
  e = parse_error(R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"sliding_window","left":2147483647}})");
  CHECK(e.field == "mask.left");
  CHECK(has(e.what, "0 to 1073741824"));
  CHECK_NOTHROW(flashjit::validate(flashjit::spec_from_json(
      R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"sliding_window","left":1073741824,"right":0}})")));
}

// ---- 3. numbers out of range -----------------------------------------------------------

TEST_CASE("hostile 3: numbers a double cannot hold name their field", "[hostile]") {
  // 1e400 gave a raw nlohmann out_of_range (not a SpecError) without a field name.
  struct Case {
    std::string json, field;
  };
  const std::vector<Case> cases = {
      {R"({"dtype":"bf16","head_dim":64,"softmax_scale":1e400})", "softmax_scale"},
      {R"({"dtype":"bf16","head_dim":64,"dropout_p":-1e400})", "dropout_p"},
      {R"({"dtype":"bf16","head_dim":1e400})", "head_dim"},
      {R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"sliding_window","left":1e999}})", "mask.left"},
      {R"({"dtype":"bf16","head_dim":64,"tile":{"block_m":)" + std::string(400, '9') + "}}", "tile.block_m"},
  };
  for (const Case& c : cases) {
    INFO(c.json.substr(0, 80));
    const Caught e = parse_error(c.json);
    CHECK(e.field == c.field);
    CHECK(has(e.what, "number overflow"));
  }
}

TEST_CASE("hostile 3: softmax_scale must stay a normal float literal in the kernel", "[hostile][nvrtc]") {
  // 1e39, 3.4e38 and 1e-320 passed validation, then NVRTC failed on "floating constant is
  // out of range".
  for (const char* v : {"1e39", "3.4e38", "1e-320", "1e-31", "1.0000001e30"}) {
    INFO(v);
    const Caught e = parse_error(std::string(R"({"dtype":"bf16","head_dim":64,"softmax_scale":)") + v + "}");
    CHECK(e.field == "softmax_scale");
    CHECK(has(e.what, "allowed: 1e-30 to 1e+30"));
  }
  // The bounds themselves compile.
  for (const char* v : {"1e-30", "1e30"}) {
    INFO(v);
    const AttentionSpec s =
        flashjit::spec_from_json(std::string(R"({"dtype":"bf16","head_dim":64,"softmax_scale":)") + v + "}");
    flashjit::validate(s);
    CHECK_NOTHROW(flashjit::nvrtc_compile(flashjit::emit_cuda(s, "sm_80"), "scale_bound.cu", "sm_80"));
  }
}

// ---- 4. strictness ---------------------------------------------------------------------

TEST_CASE("hostile 4: duplicate keys, NUL bytes and byte-order marks are errors", "[hostile]") {
  Caught e = parse_error(R"({"dtype":"bf16","head_dim":64,"head_dim":128})");
  CHECK(e.field == "head_dim");
  CHECK(has(e.what, "duplicate key"));
  e = parse_error(R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"causal","kind":"none"}})");
  CHECK(e.field == "mask.kind");
  CHECK(has(e.what, "duplicate key"));
  // Bytes after a NUL were ignored.
  e = parse_error(std::string(R"({"dtype":"bf16","head_dim":64})" "\0" R"(,"x":1)", 38));
  CHECK(e.field == "json");
  CHECK(has(e.what, "NUL byte at offset 30"));
  e = parse_error(std::string("{\"dtype\":\"bf16\0\",\"head_dim\":64}", 31));
  CHECK(has(e.what, "NUL byte"));
  // A BOM was accepted here and rejected by Python: one behaviour, rejected, everywhere.
  e = parse_error("\xEF\xBB\xBF" + std::string(kSpecD64));
  CHECK(e.field == "json");
  CHECK(has(e.what, "byte-order mark"));
}

TEST_CASE("hostile 4: messages quoting non-UTF-8 or control bytes are valid UTF-8", "[hostile]") {
  const std::vector<std::string> texts = {
      "{\"dtype\":\"\xff\xfe\",\"head_dim\":64}",         // invalid UTF-8 in a value
      "{\"dtype\":\"bf16\",\"head_dim\":64,\"\xc3\x28\":1}",  // ... in a key
      "{\"dtype\":\"bf16\",\"head_dim\":\xff}",           // ... where a value should be
      "{\"dtype\":\"bf16\",\"head_dim\":64,\"\xe2\x82\xac\":1}",  // a valid non-ASCII key (kept)
      "{\"dtype\":\"\\u00ff\\u0001\",\"head_dim\":64}",    // escapes that decode to odd bytes
      "{\"dtype\":\"\\ud800\",\"head_dim\":64}",           // a lone surrogate escape
      "{\"dtype\":\"bf16\x01\",\"head_dim\":64}",          // a raw control character
  };
  for (const std::string& t : texts) {
    INFO(t);
    const Caught e = parse_error(t);
    CHECK(valid_utf8(e.what));
    CHECK(valid_utf8(e.field));
  }
  CHECK(has(parse_error(texts[3]).what, "\xe2\x82\xac"));
  CHECK(flashjit::printable("a\xff" "b\x01" "c\n") == "a\\xffb\\x01c\n");
  CHECK(flashjit::printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate is not UTF-8
  CHECK(flashjit::printable(std::string(100, 'x'), 10) == std::string(10, 'x') + "...");
}

// ---- 5. unbounded reads and hangs ------------------------------------------------------

TEST_CASE("hostile 5: JSON text size and member counts are bounded and fast", "[hostile]") {
  // 100k distinct keys took 6 s (200k: > 20 s): the object insertion is quadratic.
  auto many_keys = [](int n) {
    std::string t = R"({"dtype":"bf16","head_dim":64)";
    for (int i = 0; i < n; ++i) t += ",\"k" + std::to_string(i) + "\":0";
    return t + "}";
  };
  for (int n : {300, 5000, 100000, 200000}) {
    INFO(n << " keys");
    const std::string text = many_keys(n);
    Caught e;
    CHECK(seconds_of([&] { e = parse_error(text); }) < 0.5);
    CHECK(e.field == "json");
    CHECK((has(e.what, "more than 256 members") || has(e.what, "allowed: at most 65536")));
  }
  const std::string big = std::string(kSpecD64).insert(1, std::string(70000, ' '));
  CHECK(has(parse_error(big).what, "bytes; allowed: at most 65536"));
}

TEST_CASE("hostile 5: the CLI reads only bounded regular files", "[hostile][cli]") {
  fjtest::ScratchDir dir;
  // --spec /dev/zero grew to 2.5 GB in 20 s; a FIFO hung; a directory gave an unclear message.
  const fs::path fifo = dir.path / "spec.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const fs::path big = dir.path / "big.json";
  write_text(big, std::string(kSpecD64) + std::string(70000, ' '));
  struct Case {
    std::string arg, says;
  };
  for (const Case& c : std::vector<Case>{{"/dev/zero", "is not a regular file"},
                                         {fifo.string(), "is not a regular file"},
                                         {dir.path.string(), "is a directory"},
                                         {big.string(), "is 70030 bytes; allowed: at most 65536"}}) {
    INFO(c.arg);
    const fjtest::CliResult r = fjtest::run_cli({"emit", "--spec", c.arg}, "timeout 20");
    INFO(r.out);
    CHECK(r.status == 1);  // 124 = timed out
    CHECK(has(r.out, "--spec: '" + c.arg + "' " + c.says));
  }
  const fjtest::CliResult r =
      fjtest::run_cli({"tune", "--specs", fifo.string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"}, "timeout 20");
  CHECK(r.status == 1);
  CHECK(has(r.out, "is not a regular file"));
}

TEST_CASE("hostile 5: FIFOs, devices, links and huge sparse files in the cache are misses", "[hostile][cache]") {
  fjtest::ScratchDir dir;
  const flashjit::DiskCache cache(dir.path);
  const flashjit::TuningDb db(dir.path);
  const std::string key = flashjit::digest_hex("hostile 5");
  const flashjit::TuningKey tkey = fjtest::sample_tuning_key();
  fs::create_directories(cache.entry_path(key).parent_path());
  fs::create_directories(db.record_path(tkey).parent_path());

  SECTION("a FIFO at the entry and record paths") {  // hung compile() and forward()'s lookup
    REQUIRE(::mkfifo(cache.entry_path(key).c_str(), 0600) == 0);
    REQUIRE(::mkfifo(db.record_path(tkey).c_str(), 0600) == 0);
    CHECK(in_child_within(10, [&] { return !cache.load(key) && !db.lookup(tkey); }));
    CHECK(in_child_within(10, [&] { return cache.list().size() == 1 && !cache.list()[0].valid; }));
    CHECK(in_child_within(10, [&] { return db.list().size() == 1 && !db.list()[0].record; }));
  }
  SECTION("a 4 GiB sparse entry is not read") {  // `cache import` / `cache list` used 8.4 GB
    const int fd = ::open(cache.entry_path(key).c_str(), O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    const bool sparse = ::ftruncate(fd, off_t(4) << 30) == 0;
    ::close(fd);
    if (!sparse) {
      WARN("the file system refused a 4 GiB sparse file; skipped");
      return;
    }
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    CHECK(!cache.load(key));
    const auto listing = cache.list();
    REQUIRE(listing.size() == 1);
    CHECK(!listing[0].valid);
    CHECK(listing[0].bytes == (std::size_t(4) << 30));
    ::getrusage(RUSAGE_SELF, &after);
    CHECK(after.ru_maxrss - before.ru_maxrss < 64 * 1024);  // KiB: no 4 GiB buffer
  }
  SECTION("links at the entry and record paths are not followed") {
    const fs::path outside = dir.path / "outside";
    cache.store(key, flashjit::CacheEntry{});
    fs::rename(cache.entry_path(key), outside);
    fs::create_symlink(outside, cache.entry_path(key));
    CHECK(!cache.load(key));
    fs::create_symlink("/dev/zero", db.record_path(tkey));
    CHECK(in_child_within(10, [&] { return !db.lookup(tkey); }));
  }
}

// ---- 6. a cache that cannot be written -------------------------------------------------

namespace {
int g_scale_counter = 0;
// A spec no other compile in this process has made, so compile() misses its memory cache.
AttentionSpec fresh_spec() {
  return flashjit::spec_from_json(R"({"dtype":"bf16","head_dim":32,"softmax_scale":)" +
                                  std::to_string(0.25 + 0.001 * ++g_scale_counter) + "}");
}
flashjit::CompiledKernel compile_sm80(const AttentionSpec& s) {
  flashjit::CompileOptions o;
  o.arch = "sm_80";
  return flashjit::compile(s, o);
}
}  // namespace

TEST_CASE("hostile 6: compile() returns the kernel when the cache cannot be written", "[hostile][cache][nvrtc]") {
  fjtest::ScratchDir dir;
  const fjtest::ScopedEnv env("FLASHJIT_CACHE_DIR", dir.path.string());
  const flashjit::DiskCache cache(dir.path);

  SECTION("a directory at the entry path; cache clear removes it") {
    const AttentionSpec s = fresh_spec();
    const std::string key = flashjit::kernel_cache_key(flashjit::emit_cuda(s, "sm_80"), "sm_80",
                                                       flashjit::nvrtc_options("sm_80"));
    fs::create_directories(cache.entry_path(key) / "junk");
    const flashjit::CompiledKernel k = compile_sm80(s);  // exited 1 although NVRTC succeeded
    CHECK(!k.image.empty());
    CHECK(!k.cache_hit);
    CHECK(k.cache_path.empty());
    CHECK(fs::is_directory(cache.entry_path(key)));
    const fjtest::CliResult r = fjtest::run_cli({"cache", "clear", "--cache-dir", dir.path.string()});
    CHECK(r.status == 0);
    CHECK(!fs::exists(cache.entry_path(key)));
    flashjit::CacheEntry e;
    e.kernel_name = "k";
    cache.store(key, e);  // the path is usable again
    CHECK(cache.load(key));
  }
  SECTION("a file where the kernels directory should be") {
    write_text(dir.path / "kernels", "not a directory");
    CHECK(!compile_sm80(fresh_spec()).image.empty());
  }
  SECTION("a full disk (RLIMIT_FSIZE: writes fail with EFBIG, as ENOSPC would)") {
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit tiny = saved;
    tiny.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &tiny) == 0);
    flashjit::CompiledKernel k;
    std::string error;
    try {
      k = compile_sm80(fresh_spec());
    } catch (const std::exception& e) {
      error = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    INFO(error);
    CHECK(error.empty());
    CHECK(!k.image.empty());
    CHECK(k.image.size() > 4096);  // it could not have been written
    CHECK(cache.list().empty());   // and no temp file is left behind
  }
  SECTION("a read-only cache directory") {
    if (::geteuid() == 0) {
      WARN("running as root, which ignores permissions: the read-only case cannot be staged here");
      return;
    }
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    const flashjit::CompiledKernel k = compile_sm80(fresh_spec());
    fs::permissions(dir.path, fs::perms::owner_all);
    CHECK(!k.image.empty());
  }
}

TEST_CASE("hostile 6: a linked shard directory is not written through", "[hostile][cache]") {
  fjtest::ScratchDir dir, outside("outside");
  const flashjit::DiskCache cache(dir.path);
  const std::string key = flashjit::digest_hex("linked shard");
  fs::create_directories(dir.path / "kernels");
  fs::create_symlink(outside.path, cache.entry_path(key).parent_path());
  flashjit::CacheEntry e;
  e.kernel_name = "k";
  std::string error;
  try {
    cache.store(key, e);
  } catch (const std::runtime_error& err) {
    error = err.what();
  }
  CHECK(has(error, "does not follow links inside its cache"));
  CHECK(fs::is_empty(outside.path));
  CHECK(!cache.load(key));
  // Nor is a linked kernels/ or tuning/ directory.
  fs::remove(cache.entry_path(key).parent_path());
  fs::remove(dir.path / "kernels");
  fs::create_symlink(outside.path, dir.path / "kernels");
  fs::create_symlink(outside.path, dir.path / "tuning");
  CHECK_THROWS(cache.store(key, e));
  const flashjit::TuningKey tkey = fjtest::sample_tuning_key();
  CHECK_THROWS(flashjit::TuningDb(dir.path).store(tkey, fjtest::sample_tuning_record(tkey)));
  CHECK(fs::is_empty(outside.path));
  // clear removes the links (not what they point at); then stores work.
  cache.clear();
  flashjit::TuningDb(dir.path).clear();
  CHECK(!fs::exists(fs::symlink_status(dir.path / "kernels")));
  CHECK(!fs::exists(fs::symlink_status(dir.path / "tuning")));
  cache.store(key, e);
  CHECK(cache.load(key));
  CHECK(fs::exists(outside.path));
}

// ---- 7. tuning records whose tile cannot run -------------------------------------------

TEST_CASE("hostile 7: a record whose tile does not fit its arch is a miss", "[hostile][tuning]") {
  fjtest::ScratchDir dir;
  const flashjit::TuningDb db(dir.path);
  const flashjit::TuningKey key = fjtest::sample_tuning_key();  // bf16 d128 causal, sm_90a
  struct Case {
    const char* what;
    flashjit::TileConfig tile;
    std::string arch;
  };
  const std::vector<Case> cases = {
      // 192x192, 12 warps, 4 stages: 443 KB of shared memory (227 KB allowed).
      {"wgmma 192x192 s4", {192, 192, 12, 4, flashjit::MmaKind::wgmma}, "sm_90a"},
      // mma.sync 128x256 with 4 stages: 626 KB.
      {"mma_sync 128x256 s4", {128, 256, 4, 4}, "sm_90a"},
      // wgmma on an sm_80 record.
      {"wgmma on sm_80", {128, 128, 8, 2, flashjit::MmaKind::wgmma}, "sm_80"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    flashjit::TuningKey k = key;
    k.arch = c.arch;
    flashjit::TuningRecord rec = fjtest::sample_tuning_record(k);
    rec.tile = c.tile;
    db.store(k, rec);
    CHECK(!db.lookup(k));  // was a hit, and forward() then failed with LegalityError
    CHECK(!flashjit::tuning_record_from_json(flashjit::tuning_record_to_json(rec)));
  }
  flashjit::TuningRecord fits = fjtest::sample_tuning_record(key);
  db.store(key, fits);
  CHECK(db.lookup(key));
}
