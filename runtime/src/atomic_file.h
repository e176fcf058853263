// Internal: whole-file reads and crash-safe, multi-process-safe file replacement.
// Shared by the kernel cache (disk_cache.cpp) and the tuning database (tuning_db.cpp).
#pragma once

#include <filesystem>
#include <string>

namespace flashjit::detail {

// Writes `data` to a unique temp file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the directory. Readers see the old file or the new one, never a part of
// either; any number of processes may write one path at once (the last rename wins).
// Creates the parent directory. Throws std::runtime_error naming the path on failure.
void write_file_atomically(const std::filesystem::path& path, const std::string& data);

// False when the file cannot be opened or read.
bool read_whole_file(const std::filesystem::path& path, std::string& out);

// Temp files are named "<final name>.tmp.<pid>.<random>".
bool is_temp_file(const std::filesystem::path& path);

}  // namespace flashjit::detail
