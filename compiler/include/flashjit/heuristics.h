// The tile config used when none is given and no tuned result exists.
#pragma once

#include <string>

#include "flashjit/spec.h"

namespace flashjit {

// A legal (fits the arch's shared memory and registers) config for spec and arch,
// chosen from what FlashAttention-2 uses for the same head dims.
TileConfig default_tile(const AttentionSpec& spec, const std::string& arch);

}  // namespace flashjit
