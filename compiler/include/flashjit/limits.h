// The documented bounds of everything flashjit reads from users, disk or other machines
// (docs/security.md explains why each exists). Input past a bound is rejected with an
// error naming the field and the bound: never a crash, a hang or an unbounded allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flashjit::limits {

// ---- JSON text (specs, tuning records, the CLI's specs files) ----------------------------
inline constexpr std::size_t kMaxSpecJsonBytes = 64 * 1024;          // one spec
inline constexpr std::size_t kMaxSpecsFileBytes = 16 * 1024 * 1024;  // `flashjit tune --specs`
inline constexpr std::size_t kMaxTuningRecordBytes = 1024 * 1024;    // one tuning record
inline constexpr int kMaxJsonDepth = 16;                  // nesting of objects and arrays
inline constexpr std::size_t kMaxJsonObjectMembers = 256;  // keys in one object
inline constexpr std::size_t kMaxJsonArrayElements = 65536;

// ---- spec fields ----------------------------------------------------------------------
inline constexpr int kMaxHeads = 65535;            // num_heads_q, num_heads_kv (grid y limit)
inline constexpr int kMaxWindow = 1 << 30;         // mask.left / mask.right (-1 = unbounded)
inline constexpr double kMinSoftmaxScale = 1e-30;  // finite, positive, a normal float even
inline constexpr double kMaxSoftmaxScale = 1e30;   // after the kernel's * log2(e)

// ---- files in the kernel cache ----------------------------------------------------------
inline constexpr std::size_t kMaxCacheEntryBytes = std::size_t(256) * 1024 * 1024;

}  // namespace flashjit::limits
