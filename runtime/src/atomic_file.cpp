// Temp file + fsync + rename, for the kernel cache and the tuning database.
#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace fs = std::filesystem;

namespace flashjit::detail {
namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
  throw std::runtime_error("flashjit: cannot " + what + " " + path.string() + ": " + std::strerror(err));
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

}  // namespace

void write_file_atomically(const fs::path& path, const std::string& data) {
  const fs::path tmp = path.string() + temp_suffix();
  int fd = -1;
  // A concurrent clear may remove the empty directory between our mkdir and open: retry.
  for (int attempt = 0; attempt < 4 && fd < 0; ++attempt) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw std::runtime_error("flashjit: cannot create " + path.parent_path().string() + ": " + ec.message());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != ENOENT) fail("create", tmp, errno);
  }
  if (fd < 0) fail("create", tmp, errno);

  const char* p = data.data();
  std::size_t left = data.size();
  int err = 0;
  while (left > 0 && err == 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno != EINTR) err = errno;
      continue;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // Durable before the rename publishes it: a crash must not leave a complete-looking
  // name pointing at missing blocks.
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    fail("write", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    fail("rename to", path, err);
  }
  // Persist the rename (best effort: some file systems refuse fsync on directories).
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

bool read_whole_file(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return false;
  out = std::move(ss).str();
  return true;
}

bool is_temp_file(const fs::path& path) { return path.filename().string().find(".tmp.") != std::string::npos; }

}  // namespace flashjit::detail
