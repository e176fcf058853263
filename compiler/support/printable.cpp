// Messages that quote user bytes (a key, a value, a file name, a compiler log) must stay
// valid UTF-8: Python turns every flashjit message into a str, and one stray byte would
// replace a SpecError with a UnicodeDecodeError.
#include <string>
#include <string_view>

#include "flashjit/error.h"

namespace flashjit {
namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if there is none.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
  else return 0;
  if (s.size() - i < n) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xbf) return 0;
  return n;
}

}  // namespace

std::string printable(std::string_view bytes, std::size_t max_bytes) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() < max_bytes ? bytes.size() : max_bytes + 3);
  for (std::size_t i = 0; i < bytes.size();) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x80) {
      if (const std::size_t n = utf8_sequence_length(bytes, i)) {
        out.append(bytes.substr(i, n));
        i += n;
        continue;
      }
    } else if (c >= 0x20 && c != 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if (c == '\n' || c == '\t') {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    out += "\\x";  // a control character or a byte that is not UTF-8
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 0xf]);
    ++i;
  }
  return out;
}

}  // namespace flashjit
