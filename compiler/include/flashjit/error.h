// Exceptions thrown by flashjit. Every message names the parameter that is wrong
// and what is allowed, so a user can fix the call without reading our source.
#pragma once

#include <stdexcept>
#include <string>

namespace flashjit {

// A spec field (or JSON text) that is malformed or unsupported. field() is the
// JSON path of the offending field, e.g. "head_dim" or "mask.kind".
class SpecError : public std::invalid_argument {
 public:
  SpecError(std::string field, const std::string& message)
      : std::invalid_argument("flashjit: spec." + field + ": " + message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// A runtime argument (tensor shape, stride, dtype, pointer) that does not match
// the spec or the kernel's requirements. Thrown before any launch.
class ArgumentError : public std::invalid_argument {
 public:
  ArgumentError(std::string param, const std::string& message)
      : std::invalid_argument("flashjit: " + param + ": " + message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

// The generated kernel does not fit the target (shared memory, registers).
class LegalityError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// NVRTC or the CUDA driver failed; the message carries the log / error name.
class CompileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace flashjit
