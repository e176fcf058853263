// Exceptions thrown by flashjit. Every message names the parameter that is wrong
// and what is allowed, so a user can fix the call without reading our source.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flashjit {

// `bytes` as valid UTF-8 for a message: well-formed UTF-8, newlines and tabs are kept;
// other control characters and stray bytes become \xNN; longer than `max_bytes`, it is
// cut and ends in "...". Every exception below passes its message through it, so what()
// is always valid UTF-8, whatever user bytes it quotes.
std::string printable(std::string_view bytes, std::size_t max_bytes = std::string::npos);

// A spec field (or JSON text) that is malformed or unsupported. field() is the
// JSON path of the offending field, e.g. "head_dim" or "mask.kind".
class SpecError : public std::invalid_argument {
 public:
  SpecError(std::string field, const std::string& message)
      : std::invalid_argument(printable("flashjit: spec." + field + ": " + message)),
        field_(printable(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// A runtime argument (tensor shape, stride, dtype, pointer) that does not match
// the spec or the kernel's requirements. Thrown before any launch.
class ArgumentError : public std::invalid_argument {
 public:
  ArgumentError(std::string param, const std::string& message)
      : std::invalid_argument(printable("flashjit: " + param + ": " + message)), param_(printable(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

// The generated kernel does not fit the target (shared memory, registers).
class LegalityError : public std::runtime_error {
 public:
  explicit LegalityError(const std::string& message) : std::runtime_error(printable(message)) {}
};

// NVRTC or the CUDA driver failed; the message carries the log / error name.
class CompileError : public std::runtime_error {
 public:
  explicit CompileError(const std::string& message) : std::runtime_error(printable(message)) {}
};
class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& message) : std::runtime_error(printable(message)) {}
};

}  // namespace flashjit
