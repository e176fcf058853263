// digest_hex: XXH3-128 (xxHash) of arbitrary bytes, as 32 lowercase hex chars.
//
// XXH3-128 replaces a home-made two-lane 64-bit mixer: a hash with published test vectors
// and a reference tool (`xxh128sum`, python's xxhash.xxh3_128_hexdigest) lets anyone check a
// cache key or an entry checksum independently. It is not a cryptographic hash: keys and
// checksums catch damage, not forgery (docs/security.md).
//
// Header-only on purpose (XXH_INLINE_ALL, in this one file): nothing to link, and the GPU
// machine image, which has no xxhash package, needs only the header (.deps/include).
#include "flashjit/disk_cache.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace flashjit {

std::string digest_hex(const std::string& bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  // The canonical form is big-endian high64 then low64: the text xxh128sum prints, on every host.
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  static const char digits[] = "0123456789abcdef";
  std::string s(2 * sizeof c.digest, '0');
  for (std::size_t i = 0; i < sizeof c.digest; ++i) {
    s[2 * i] = digits[c.digest[i] >> 4];
    s[2 * i + 1] = digits[c.digest[i] & 0xf];
  }
  return s;
}

}  // namespace flashjit
