// Bounded, non-blocking, link-refusing file I/O (safe_file.h).
#include "safe_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "flashjit/error.h"
#include "flashjit/file_input.h"

namespace fs = std::filesystem;

namespace flashjit::detail {
namespace {

// Closes on every exit path.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

ReadResult fail_read(ReadStatus s, std::string reason) { return ReadResult{s, std::move(reason)}; }

std::string errno_text(int err) { return std::strerror(err); }

// Reads an opened descriptor that must be a regular file of at most max_bytes.
ReadResult read_fd(int fd, std::size_t max_bytes, std::string& out) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_read(ReadStatus::error, "cannot stat: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) return fail_read(ReadStatus::not_regular, "is a directory, not a file");
  if (!S_ISREG(st.st_mode))
    return fail_read(ReadStatus::not_regular, "is not a regular file (a FIFO, socket or device)");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return fail_read(ReadStatus::too_large, "is " + std::to_string(st.st_size) + " bytes; allowed: at most " +
                                                std::to_string(max_bytes));
  // The file was opened O_NONBLOCK (for FIFOs); regular files ignore it, but clear it anyway.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::string data;
  data.resize(static_cast<std::size_t>(st.st_size));
  std::size_t have = 0;
  // One byte past the size stat saw: a file growing under us past the limit is caught.
  for (;;) {
    if (have == data.size()) {
      if (data.size() > max_bytes) break;
      data.resize(data.size() + (data.size() < 4096 ? 4096 : data.size() / 2) + 1);
      if (data.size() > max_bytes + 1) data.resize(max_bytes + 1);
    }
    const ssize_t n = ::read(fd, &data[have], data.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_read(ReadStatus::error, "cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have > max_bytes)
    return fail_read(ReadStatus::too_large, "is larger than " + std::to_string(max_bytes) + " bytes (allowed)");
  data.resize(have);
  out = std::move(data);
  return ReadResult{ReadStatus::ok, {}};
}

ReadResult open_failure(int err) {
  if (err == ENOENT) return fail_read(ReadStatus::missing, "does not exist");
  if (err == ELOOP) return fail_read(ReadStatus::not_regular, "is a symbolic link (not followed inside a cache)");
  if (err == ENOTDIR) return fail_read(ReadStatus::not_regular, "has a non-directory (or link) among its parents");
  return fail_read(ReadStatus::error, "cannot open: " + errno_text(err));
}

// The components of a relative path below a cache root; "..", "." and absolute paths are
// refused (keys and digests never produce them).
std::vector<std::string> components(const fs::path& rel) {
  std::vector<std::string> parts;
  if (rel.is_absolute()) throw std::logic_error("flashjit: cache path " + rel.string() + " is absolute");
  for (const fs::path& p : rel) {
    const std::string s = p.string();
    if (s.empty() || s == "." || s == "..") throw std::logic_error("flashjit: bad cache path " + rel.string());
    parts.push_back(s);
  }
  if (parts.empty()) throw std::logic_error("flashjit: empty cache path");
  return parts;
}

// Opens the directory <dirfd>/<name> without following a link; creates it if `create`.
int open_subdir(int dirfd, const std::string& name, bool create) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT || !create) return fd;
    if (::mkdirat(dirfd, name.c_str(), 0755) != 0 && errno != EEXIST) return -1;
  }
  return -1;
}

// Unique per process and per call, so concurrent writers never share a temp file.
std::string temp_suffix() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd() ^ uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  uint64_t z = seed + counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL;  // SplitMix64 step
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(z));
  return ".tmp." + std::to_string(::getpid()) + "." + hex;
}

[[noreturn]] void fail_write(const std::string& what, const fs::path& path, int err) {
  std::string why = errno_text(err);
  if (err == ELOOP || err == ENOTDIR) why += " (flashjit does not follow links inside its cache)";
  throw std::runtime_error("flashjit: cannot " + what + " " + path.string() + ": " + why);
}

bool write_all(int fd, const std::string& data, int& err) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

ReadResult read_regular_file(const fs::path& path, std::size_t max_bytes, std::string& out) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.fd < 0) {
    const int err = errno;
    if (err == ENOENT) return fail_read(ReadStatus::missing, "does not exist");
    return fail_read(ReadStatus::error, "cannot open: " + errno_text(err));
  }
  return read_fd(fd.fd, max_bytes, out);
}

ReadResult read_file_below(const fs::path& root, const fs::path& rel, std::size_t max_bytes, std::string& out) {
  const std::vector<std::string> parts = components(rel);
  Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd < 0) return open_failure(errno);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    Fd sub(open_subdir(dir.fd, parts[i], false));
    if (sub.fd < 0) return open_failure(errno);
    dir = std::move(sub);
  }
  Fd fd(::openat(dir.fd, parts.back().c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (fd.fd < 0) return open_failure(errno);
  return read_fd(fd.fd, max_bytes, out);
}

void write_file_atomically_below(const fs::path& root, const fs::path& rel, const std::string& data) {
  const std::vector<std::string> parts = components(rel);
  const fs::path path = root / rel;
  const std::string name = parts.back();
  const std::string tmp = name + temp_suffix();
  // A concurrent clear may remove an empty directory between our mkdir and the create:
  // start again from the root a few times.
  int err = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) throw std::runtime_error("flashjit: cannot create " + root.string() + ": " + ec.message());
    Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0) fail_write("open", root, errno);
    fs::path at = root;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      at /= parts[i];
      Fd sub(open_subdir(dir.fd, parts[i], true));
      if (sub.fd < 0) fail_write("create directory", at, errno);
      dir = std::move(sub);
    }
    Fd fd(::openat(dir.fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (fd.fd < 0) {
      err = errno;
      if (err == ENOENT) continue;  // the directory was removed under us
      fail_write("create", path.parent_path() / tmp, err);
    }
    // Durable before the rename publishes it: a crash must not leave a complete-looking
    // name pointing at missing blocks.
    bool ok = write_all(fd.fd, data, err);
    if (ok && ::fsync(fd.fd) != 0) ok = false, err = errno;
    const int fd_num = fd.fd;
    fd.fd = -1;
    if (::close(fd_num) != 0 && ok) ok = false, err = errno;
    if (!ok) {
      ::unlinkat(dir.fd, tmp.c_str(), 0);
      fail_write("write", path.parent_path() / tmp, err);
    }
    // rename replaces a file or a link at `name` (never writing through it); a directory
    // there makes it fail, which is reported.
    if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) != 0) {
      err = errno;
      ::unlinkat(dir.fd, tmp.c_str(), 0);
      fail_write("rename to", path, err);
    }
    (void)::fsync(dir.fd);  // persist the rename (best effort: some file systems refuse)
    return;
  }
  fail_write("create", path.parent_path() / tmp, err);
}

bool is_temp_file(const fs::path& path) { return path.filename().string().find(".tmp.") != std::string::npos; }

}  // namespace flashjit::detail

namespace flashjit {

std::string read_input_file(const std::string& path, std::size_t max_bytes, const std::string& param) {
  std::string out;
  const detail::ReadResult r = detail::read_regular_file(path, max_bytes, out);
  if (!r.ok()) throw ArgumentError(param, "'" + path + "' " + r.reason);
  return out;
}

}  // namespace flashjit
