// Dropout's random numbers: counter-based Philox4x32 (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC'11) and the map from an attention element to its bits.
// One definition for the host (the CPU evaluator, the keep-mask debug entry) and the device
// (forward and backward kernels), so both draw bit-identical masks.
//
// The contract (docs/dropout.md), Philox4x32-7: element (batch b, query head h, query row i, key column j)
// of a call with RNG state (seed, offset) is dropped iff its 16-bit number r satisfies
// r < threshold, threshold = floor(p · 65536). r depends on nothing else: not the tile, the
// back end, the loop order or the kernel (forward, bwd_dkdv, bwd_dq regenerate the same r).
//
// One Philox call gives 8 numbers of 16 bits, for the 8 elements of a *dropout group*:
// query rows {2r, 2r+1} × key columns {16s + 2c + e + 8m : e, m ∈ {0, 1}} (c ∈ 0..3). The
// group is what two neighbouring lanes of an mma fragment hold between them, in the forward's
// S layout (a lane: rows g, g+8, columns 2t, 2t+1 of each 8-column block) and in the
// backward's Sᵀ layout (a lane: keys g, g+8, queries 2t, 2t+1), so a lane needs 1 call for 4
// of its elements in either.
#pragma once

#include "flashjit/host_device.cuh"

namespace flashjit {
namespace philox {

typedef unsigned int u32;
typedef unsigned long long u64;

struct U32x4 {
  u32 x, y, z, w;
};

// The 64-bit product of two 32-bit words. On the device one mul.wide.u32 (one IMAD.WIDE):
// written in C++ as a 64-bit multiply it compiled to 64-bit multiplies, shifts and xors.
FJ_HOST_DEVICE void mulhilo(u32 a, u32 b, u32& hi, u32& lo) {
#ifdef __CUDA_ARCH__
  asm("{\n\t.reg .u64 p;\n\tmul.wide.u32 p, %2, %3;\n\tmov.b64 {%1, %0}, p;\n\t}" : "=r"(hi), "=r"(lo) : "r"(a), "r"(b));
#else
  const u64 p = static_cast<u64>(a) * b;
  hi = static_cast<u32>(p >> 32);
  lo = static_cast<u32>(p);
#endif
}

// Philox4x32 with R rounds. R = 10 is Random123's philox4x32_10, whose known-answer vectors
// (its tests/kat_vectors) tests/unit/test_dropout.cpp checks; dropout uses R = 7
// (kDropoutRounds), the same function stopped earlier.
template <int R>
FJ_HOST_DEVICE U32x4 philox4x32(U32x4 c, u32 k0, u32 k1) {
#ifdef __CUDACC__
#pragma unroll
#endif
  for (int round = 0; round < R; ++round) {
    u32 hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c.x, hi0, lo0);
    mulhilo(0xCD9E8D57u, c.z, hi1, lo1);
    c = U32x4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

FJ_HOST_DEVICE U32x4 philox4x32_10(U32x4 c, u32 k0, u32 k1) { return philox4x32<10>(c, k0, k1); }

// Dropout's rounds: 7, as FlashAttention-2 and Composable Kernel use Philox for dropout.
// Salmon et al. report Philox4x32-7 passing TestU01's BigCrush; 10 is their margin for general
// use. test_dropout.cpp checks the masks' rates and neighbour correlations statistically.
constexpr int kDropoutRounds = 7;

}  // namespace philox

// A call's RNG state and the threshold its kernels compare with.
struct DropoutKey {
  philox::u64 seed = 0, offset = 0;
};

// The group counter of element (bh = b · heads_q + h, i, j): word x = key block of 16 and
// class c, y = row pair, z = batch·head, w = offset's low word; Philox key = (seed's low word,
// seed's high word ^ offset's high word).
FJ_HOST_DEVICE philox::U32x4 dropout_group_bits(const DropoutKey& key, philox::u32 bh, philox::u32 i, philox::u32 j) {
  const philox::U32x4 c{((j >> 4) << 2) | ((j & 7u) >> 1), i >> 1, bh, static_cast<philox::u32>(key.offset)};
  return philox::philox4x32<philox::kDropoutRounds>(c, static_cast<philox::u32>(key.seed),
                               static_cast<philox::u32>(key.seed >> 32) ^ static_cast<philox::u32>(key.offset >> 32));
}

// Which of the group's 8 numbers element (i, j) takes: bit 2 = row parity, bit 1 = which 8 of
// the 16 keys, bit 0 = key parity; number n is the low (n even) or high half of word n / 2.
FJ_HOST_DEVICE int dropout_slot(philox::u32 i, philox::u32 j) {
  return static_cast<int>(((i & 1u) << 2) | (((j >> 3) & 1u) << 1) | (j & 1u));
}

FJ_HOST_DEVICE philox::u32 dropout_number(const philox::U32x4& g, int slot) {
  const philox::u32 w = (slot >> 1) == 0 ? g.x : (slot >> 1) == 1 ? g.y : (slot >> 1) == 2 ? g.z : g.w;
  return (slot & 1) ? (w >> 16) : (w & 0xFFFFu);
}

// The 16-bit number of one element (the reference path: one Philox call per element).
FJ_HOST_DEVICE philox::u32 dropout_element_number(const DropoutKey& key, philox::u32 bh, philox::u32 i, philox::u32 j) {
  return dropout_number(dropout_group_bits(key, bh, i, j), dropout_slot(i, j));
}

// floor(p · 65536) for 0 <= p < 1: at most 65535, so some element is always kept.
FJ_HOST_DEVICE philox::u32 dropout_threshold(double p) {
  const double t = p * 65536.0;
  return t <= 0.0 ? 0u : static_cast<philox::u32>(t);
}

// 1 / (1 - p) for the p the threshold stands for (threshold / 65536): E[kept · scale] = 1.
FJ_HOST_DEVICE double dropout_keep_scale(philox::u32 threshold) { return 65536.0 / (65536.0 - threshold); }

}  // namespace flashjit
