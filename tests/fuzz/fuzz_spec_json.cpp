// libFuzzer harness: the spec JSON parser and validator (compiler/spec/).
//
// For any input bytes it checks that
//   1. flashjit::spec_from_json(text) followed by flashjit::validate(spec) either succeeds
//      or throws flashjit::SpecError. Any other exception type is a bug and is deliberately
//      not caught: it escapes, std::terminate aborts, and libFuzzer reports the input (as it
//      does for ASan/UBSan findings, hangs past -timeout and memory past -rss_limit_mb);
//   2. a SpecError's what() is valid UTF-8 (the Python bindings turn messages into str, which
//      fails on bytes that are not UTF-8);
//   3. a spec that parses and validates survives the round trip through its canonical JSON:
//      spec_from_json(spec_to_json(spec)) parses, validates and equals spec, and printing it
//      again gives the same canonical text (a fixed point).
// Failed checks print what was wrong and __builtin_trap(), which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "flashjit/error.h"
#include "flashjit/spec.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_spec_json: %s\n  %s\n", what, detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing past
// U+10FFFF, no truncated sequences. Python's str(bytes, "utf-8") accepts exactly this.
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    std::size_t len;
    uint32_t cp, min;
    if (c < 0x80) { ++i; continue; }
    else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return false;  // a continuation byte first, or 0xF8..0xFF
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// The message with bytes >= 0x80 and control characters shown as \xNN, for the report.
std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  flashjit::AttentionSpec spec;
  try {
    spec = flashjit::spec_from_json(text);
    flashjit::validate(spec);
  } catch (const flashjit::SpecError& e) {  // the only exception the parser may throw
    if (!valid_utf8(e.what())) fail("SpecError::what() is not valid UTF-8", escaped(e.what()));
    return 0;
  }

  // A valid spec: its canonical JSON must read back as the same spec.
  const std::string canonical = flashjit::spec_to_json(spec);
  flashjit::AttentionSpec again;
  try {
    again = flashjit::spec_from_json(canonical);
    flashjit::validate(again);
  } catch (const flashjit::SpecError& e) {
    fail("the canonical JSON of a valid spec is rejected", canonical + "\n  " + escaped(e.what()));
  }
  if (!(again == spec)) fail("spec_from_json(spec_to_json(spec)) != spec", canonical);
  const std::string canonical_again = flashjit::spec_to_json(again);
  if (canonical_again != canonical)
    fail("canonical JSON is not a fixed point", canonical + "\n  " + canonical_again);
  // The pretty form is the same document.
  try {
    if (!(flashjit::spec_from_json(flashjit::spec_to_json(spec, /*pretty=*/true)) == spec))
      fail("spec_from_json(spec_to_json(spec, pretty)) != spec", canonical);
  } catch (const flashjit::SpecError& e) {
    fail("the pretty canonical JSON of a valid spec is rejected", canonical + "\n  " + escaped(e.what()));
  }
  return 0;
}
