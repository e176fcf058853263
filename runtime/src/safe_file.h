// Internal: file I/O that hostile files cannot exploit, for the kernel cache, the tuning
// database and the inputs the CLI reads.
//
// Reads take only regular files (checked with fstat after a non-blocking open, so a FIFO
// or a device never blocks or streams forever) and only up to a size limit (checked
// before reading). Files inside a cache directory are reached component by component
// with O_NOFOLLOW: a symbolic link inside the cache (a shard directory, an entry) is never
// followed, for reading or writing, so nothing outside the cache directory is touched.
// The cache directory itself may be a link (the user chose it).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace flashjit::detail {

enum class ReadStatus { ok, missing, not_regular, too_large, error };

struct ReadResult {
  ReadStatus status = ReadStatus::error;
  std::string reason;  // for messages when status != ok: "is a directory", "is 4294967296 bytes; ..."
  bool ok() const { return status == ReadStatus::ok; }
};

// Reads the regular file at `path` (symbolic links followed: the caller named it).
ReadResult read_regular_file(const std::filesystem::path& path, std::size_t max_bytes, std::string& out);

// Reads <root>/<rel> without following a link in any component of `rel`.
ReadResult read_file_below(const std::filesystem::path& root, const std::filesystem::path& rel,
                           std::size_t max_bytes, std::string& out);

// Writes `data` to a unique temp file beside <root>/<rel>, fsyncs it, renames it over the
// final name and fsyncs the directory. Readers see the old file or the new one, never a
// part of either; any number of processes may write one path at once (the last rename
// wins). Creates `root` and the directories of `rel`; a link among them is an error.
// Throws std::runtime_error naming the path on failure (read-only directory, full disk,
// a directory or a link where the file or a directory should be, ...).
void write_file_atomically_below(const std::filesystem::path& root, const std::filesystem::path& rel,
                                 const std::string& data);

// Temp files are named "<final name>.tmp.<pid>.<random>".
bool is_temp_file(const std::filesystem::path& path);

}  // namespace flashjit::detail
