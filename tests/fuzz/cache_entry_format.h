// The kernel cache's entry file format, written out independently of runtime/src/disk_cache.cpp
// (which keeps its encoder private), for tests/fuzz/fuzz_cache_entry.cpp and the seed
// generator. If the two disagree, the fuzzer's round-trip check reports it.
//
//   FLASHJIT-KERNEL\n schema=<kCacheSchemaVersion>\n key=<key>\n payload=<n>\n checksum=<digest_hex(payload)>\n \n <payload>
//   payload: kernel_name, image, log (u64 length + bytes each), registers, shared_static_bytes,
//            stack_frame_bytes, spill_store_bytes, spill_load_bytes, threads, dynamic_smem_bytes
//            (i64 each), compile_ms (f64 bits), spec_json, arch (strings); all little-endian.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "flashjit/disk_cache.h"

namespace fjfuzz {

inline void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

inline std::string cache_payload(const flashjit::CacheEntry& e) {
  std::string out;
  put_str(out, e.kernel_name);
  put_str(out, e.image);
  put_str(out, e.log);
  for (int64_t v : {int64_t(e.resources.registers), int64_t(e.resources.shared_static_bytes),
                    int64_t(e.resources.stack_frame_bytes), int64_t(e.resources.spill_store_bytes),
                    int64_t(e.resources.spill_load_bytes), int64_t(e.threads), int64_t(e.dynamic_smem_bytes)})
    put_u64(out, static_cast<uint64_t>(v));
  uint64_t bits = 0;
  std::memcpy(&bits, &e.compile_ms, sizeof bits);
  put_u64(out, bits);
  put_str(out, e.spec_json);
  put_str(out, e.arch);
  return out;
}

inline std::string cache_header(const std::string& key, const std::string& payload) {
  return "FLASHJIT-KERNEL\nschema=" + std::to_string(flashjit::kCacheSchemaVersion) + "\nkey=" + key +
         "\npayload=" + std::to_string(payload.size()) + "\nchecksum=" + flashjit::digest_hex(payload) + "\n\n";
}

}  // namespace fjfuzz
