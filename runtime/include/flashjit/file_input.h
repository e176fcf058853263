// Reading an input file a user named (a spec, a specs list): bounded and non-blocking.
#pragma once

#include <cstddef>
#include <string>

namespace flashjit {

// The whole regular file at `path`, at most `max_bytes` long. Throws ArgumentError(param)
// naming the path when it is missing, a directory, a FIFO or device (never blocks on
// one), larger than the limit, or unreadable.
std::string read_input_file(const std::string& path, std::size_t max_bytes, const std::string& param);

}  // namespace flashjit
