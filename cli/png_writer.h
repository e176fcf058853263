// A minimal PNG encoder for `flashjit mask`: 8-bit RGB, zlib "stored" (uncompressed)
// deflate blocks. No image library is on the GPU machine's image, and a mask picture of at
// most 1024 x 1024 pixels is 3 MB uncompressed: small enough not to need compression.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flashjit::cli {

// The PNG file bytes of a width x height RGB image (rgb: row-major, 3 bytes per pixel).
std::string encode_png_rgb(int width, int height, const std::vector<uint8_t>& rgb);

}  // namespace flashjit::cli
