// The on-disk kernel cache: one file per key, written atomically, verified on read.
//
// Entry file (<dir>/kernels/<key[0:2]>/<key>.fjk): a text header, then the payload.
//   FLASHJIT-KERNEL\n
//   schema=<kCacheSchemaVersion>\n
//   key=<key>\n
//   payload=<payload bytes>\n
//   checksum=<digest_hex(payload)>\n
//   \n
//   <payload: the CacheEntry fields, little-endian, strings length-prefixed>
// The header is text so `head` shows what an entry is; everything in it is checked on load.
#include "flashjit/disk_cache.h"

#include "safe_file.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "flashjit/error.h"
#include "flashjit/limits.h"
#include "flashjit/nvrtc_compiler.h"

namespace fs = std::filesystem;

namespace flashjit {
namespace {

constexpr char kMagic[] = "FLASHJIT-KERNEL";
constexpr char kEntryExt[] = ".fjk";
// A temp file older than this is a leftover of a writer that died; clear() removes it.
constexpr auto kStaleTempAge = std::chrono::minutes(10);

// ---- payload serialization (explicit little-endian: entries are portable) -----------

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_i64(std::string& out, int64_t v) { put_u64(out, static_cast<uint64_t>(v)); }
void put_f64(std::string& out, double d) {
  uint64_t bits = 0;
  static_assert(sizeof bits == sizeof d, "IEEE double expected");
  std::memcpy(&bits, &d, sizeof bits);
  put_u64(out, bits);
}
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

// Reads fields back; any read past the end marks the whole payload bad.
struct Reader {
  const std::string& data;
  std::size_t pos = 0;
  bool ok = true;

  uint64_t u64() {
    if (!ok || data.size() - pos < 8) return ok = false, 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(data[pos + i])) << (8 * i);
    pos += 8;
    return v;
  }
  int int32() {
    const int64_t v = static_cast<int64_t>(u64());
    if (v < INT32_MIN || v > INT32_MAX) ok = false;
    return ok ? static_cast<int>(v) : 0;
  }
  double f64() {
    const uint64_t bits = u64();
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  std::string str() {
    const uint64_t n = u64();
    if (!ok || n > data.size() - pos) return ok = false, std::string();
    std::string s = data.substr(pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return s;
  }
};

std::string serialize(const CacheEntry& e) {
  std::string out;
  out.reserve(e.image.size() + e.log.size() + e.spec_json.size() + 256);
  put_str(out, e.kernel_name);
  put_str(out, e.image);
  put_str(out, e.log);
  put_i64(out, e.resources.registers);
  put_i64(out, e.resources.shared_static_bytes);
  put_i64(out, e.resources.stack_frame_bytes);
  put_i64(out, e.resources.spill_store_bytes);
  put_i64(out, e.resources.spill_load_bytes);
  put_i64(out, e.threads);
  put_i64(out, e.dynamic_smem_bytes);
  put_f64(out, e.compile_ms);
  put_str(out, e.spec_json);
  put_str(out, e.arch);
  return out;
}

std::optional<CacheEntry> deserialize(const std::string& payload) {
  Reader r{payload};
  CacheEntry e;
  e.kernel_name = r.str();
  e.image = r.str();
  e.log = r.str();
  e.resources.registers = r.int32();
  e.resources.shared_static_bytes = r.int32();
  e.resources.stack_frame_bytes = r.int32();
  e.resources.spill_store_bytes = r.int32();
  e.resources.spill_load_bytes = r.int32();
  e.threads = r.int32();
  e.dynamic_smem_bytes = r.int32();
  e.compile_ms = r.f64();
  e.spec_json = r.str();
  e.arch = r.str();
  if (!r.ok || r.pos != payload.size()) return std::nullopt;  // short or trailing bytes
  return e;
}

// ---- files --------------------------------------------------------------------------

// Keys become file names: only characters that are safe everywhere.
bool is_valid_key(const std::string& key) {
  if (key.size() < 2 || key.size() > 128) return false;
  for (char c : key) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}
void check_key(const std::string& key) {
  if (key.size() < 2 || key.size() > 128)
    throw ArgumentError("key", "cache keys are 2 to 128 characters, got " + std::to_string(key.size()));
  if (!is_valid_key(key))
    throw ArgumentError("key", "cache key '" + key + "' may only hold letters, digits, '_' and '-'");
}

// <dir>/<this> is where an entry lives.
fs::path entry_rel_path(const std::string& key) {
  check_key(key);
  return fs::path("kernels") / key.substr(0, 2) / (key + kEntryExt);
}

}  // namespace

namespace detail {
std::optional<CacheEntry> parse_cache_entry(const std::string& file, const std::string& key) {
  std::size_t pos = 0;
  auto line = [&](std::string& value) {
    const std::size_t nl = file.find('\n', pos);
    if (nl == std::string::npos) return false;
    value = file.substr(pos, nl - pos);
    pos = nl + 1;
    return true;
  };
  auto field = [&](const char* name, std::string& value) {
    std::string l;
    if (!line(l)) return false;
    const std::string prefix = std::string(name) + "=";
    if (l.compare(0, prefix.size(), prefix) != 0) return false;
    value = l.substr(prefix.size());
    return true;
  };
  std::string magic, schema, entry_key, length, checksum, blank;
  if (!line(magic) || magic != kMagic) return std::nullopt;
  if (!field("schema", schema) || schema != std::to_string(kCacheSchemaVersion)) return std::nullopt;
  if (!field("key", entry_key) || entry_key != key) return std::nullopt;
  if (!field("payload", length) || length.empty() || length.size() > 19 ||
      length.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  if (!field("checksum", checksum) || checksum.size() != 32) return std::nullopt;
  if (!line(blank) || !blank.empty()) return std::nullopt;
  const uint64_t n = std::stoull(length);
  if (file.size() - pos != n) return std::nullopt;  // truncated, or trailing garbage
  const std::string payload = file.substr(pos);
  if (digest_hex(payload) != checksum) return std::nullopt;
  return deserialize(payload);
}
}  // namespace detail

namespace {
std::optional<CacheEntry> parse_entry(const std::string& file, const std::string& key) {
  return detail::parse_cache_entry(file, key);
}

std::string header_for(const std::string& key, const std::string& payload) {
  return std::string(kMagic) + "\nschema=" + std::to_string(kCacheSchemaVersion) + "\nkey=" + key +
         "\npayload=" + std::to_string(payload.size()) + "\nchecksum=" + digest_hex(payload) + "\n\n";
}

bool is_entry_file(const fs::path& p) { return p.extension() == kEntryExt; }

// Everything under <dir>/kernels that is not a real directory, plus directories that
// carry an entry's name (which no store can replace): the candidates for list() and
// clear(). Links are reported, never followed (recursive_directory_iterator does not
// descend into linked directories). Tolerant of files vanishing mid-walk.
std::vector<fs::path> walk_entries(const fs::path& root) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(root, ec))) return files;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    const fs::file_status st = it->symlink_status(ec2);
    if (ec2) continue;
    if (fs::is_directory(st)) {
      if (is_entry_file(it->path())) {
        files.push_back(it->path());
        it.disable_recursion_pending();
      }
      continue;
    }
    files.push_back(it->path());
  }
  return files;
}

}  // namespace

CacheEntry cache_entry_for(const CompiledKernel& k, const std::string& spec_json) {
  CacheEntry e;
  e.kernel_name = k.kernel_name;
  e.image = k.image;
  e.log = k.log;
  e.resources = k.resources;
  e.threads = k.threads;
  e.dynamic_smem_bytes = k.dynamic_smem_bytes;
  e.compile_ms = k.compile_ms;
  e.spec_json = spec_json;
  e.arch = k.arch;
  return e;
}

DiskCache::DiskCache(fs::path dir) : dir_(std::move(dir)) {}

fs::path DiskCache::default_dir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  const std::string explicit_dir = env("FLASHJIT_CACHE_DIR");
  if (!explicit_dir.empty()) return fs::path(explicit_dir);
  // The XDG spec says relative values are invalid and must be ignored.
  const std::string xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty() && fs::path(xdg).is_absolute()) return fs::path(xdg) / "flashjit";
  std::string home = env("HOME");
  if (home.empty()) {
    if (const passwd* pw = ::getpwuid(::getuid())) home = pw->pw_dir ? pw->pw_dir : "";
  }
  if (!home.empty()) return fs::path(home) / ".cache" / "flashjit";
  std::error_code ec;
  return fs::temp_directory_path(ec) / ("flashjit-cache-" + std::to_string(::getuid()));
}

fs::path DiskCache::entry_path(const std::string& key) const { return dir_ / entry_rel_path(key); }

std::optional<CacheEntry> DiskCache::load(const std::string& key) const {
  std::string file;
  // Never through a link, never a FIFO or device, never more than the entry size limit.
  if (!detail::read_file_below(dir_, entry_rel_path(key), limits::kMaxCacheEntryBytes, file).ok())
    return std::nullopt;
  return parse_entry(file, key);
}

fs::path DiskCache::store(const std::string& key, const CacheEntry& entry) const {
  const fs::path path = entry_path(key);
  const std::string payload = serialize(entry);
  const std::string data = header_for(key, payload) + payload;
  // Temp file + fsync + rename (safe_file.h): readers never see a partial entry, and
  // racing writers of one key each publish a complete, identical entry.
  detail::write_file_atomically_below(dir_, entry_rel_path(key), data);
  return path;
}

std::vector<CacheListing> DiskCache::list() const {
  std::vector<CacheListing> out;
  for (const fs::path& p : walk_entries(dir_ / "kernels")) {
    if (!is_entry_file(p) || detail::is_temp_file(p)) continue;
    CacheListing l;
    l.key = p.stem().string();
    l.path = p.string();
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(p, ec);
    if (ec) continue;  // removed meanwhile
    if (fs::is_regular_file(st)) {
      const auto size = fs::file_size(p, ec);
      if (ec) continue;
      l.bytes = static_cast<std::size_t>(size);
    }
    std::string file;
    // A file whose name is not a valid key, or not where its key puts it, can never be
    // loaded: it lists as invalid. So does a link, a FIFO or an oversized file.
    const bool placed = is_valid_key(l.key) && p == entry_path(l.key);
    if (placed && detail::read_file_below(dir_, entry_rel_path(l.key), limits::kMaxCacheEntryBytes, file).ok()) {
      if (auto e = parse_entry(file, l.key)) {
        l.valid = true;
        l.kernel_name = e->kernel_name;
        l.arch = e->arch;
        l.spec_json = e->spec_json;
      }
    }
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const CacheListing& x, const CacheListing& y) { return x.key < y.key; });
  return out;
}

CacheStats DiskCache::stats() const {
  CacheStats s;
  for (const CacheListing& l : list()) {
    ++s.entries;  // every entry file, corrupt ones included
    s.bytes += l.bytes;
    if (!l.valid) ++s.corrupt;
  }
  return s;
}

std::size_t DiskCache::clear() const {
  const fs::path root = dir_ / "kernels";
  std::size_t removed = 0;
  std::error_code link_ec;
  if (fs::is_symlink(fs::symlink_status(root, link_ec))) fs::remove(root, link_ec);  // never written through
  const auto now = fs::file_time_type::clock::now();
  for (const fs::path& p : walk_entries(root)) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(p, ec);
    if (ec) continue;
    if (detail::is_temp_file(p)) {
      // A young temp file belongs to a store in progress; leave it to its rename.
      const auto mtime = fs::last_write_time(p, ec);
      if (!ec && now - mtime > kStaleTempAge && !fs::is_directory(st)) fs::remove(p, ec);
    } else if (is_entry_file(p) || fs::is_symlink(st)) {
      // Entries, and what no load can use: a directory, FIFO or link under an entry's
      // name, a linked shard directory. remove_all removes a link, not its target.
      if (fs::remove_all(p, ec) > 0 && !ec && is_entry_file(p)) ++removed;
    }
  }
  // Drop empty shard directories (remove() refuses non-empty ones, which is what we want).
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (fs::is_directory(it->symlink_status(ec2))) fs::remove(it->path(), ec2);
  }
  return removed;
}

std::string kernel_cache_key(const std::string& source, const std::string& arch,
                             const std::vector<std::string>& options) {
  std::string m;
  m.reserve(source.size() + 1024);
  m += "schema=" + std::to_string(kCacheSchemaVersion) + "\n";
  m += std::string("flashjit=") + FLASHJIT_VERSION + "\n";
  m += "nvrtc=" + nvrtc_version_string() + "\n";
  m += "arch=" + arch + "\n";
  // Options length-prefixed: joining with spaces would make {"a b"} and {"a","b"} collide.
  m += "options=" + std::to_string(options.size()) + "\n";
  for (const std::string& o : options) m += "option=" + std::to_string(o.size()) + ":" + o + "\n";
  // The source #includes the embedded templates; their text determines the cubin too.
  const std::vector<EmbeddedFile>& templates = embedded_templates();
  m += "templates=" + std::to_string(templates.size()) + "\n";
  for (const EmbeddedFile& f : templates)
    m += std::string("template=") + f.name + " " + digest_hex(f.content) + "\n";
  m += "source=" + std::to_string(source.size()) + "\n" + source;
  return digest_hex(m);
}

}  // namespace flashjit
