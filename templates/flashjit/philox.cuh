// Dropout's random numbers: counter-based Philox4x32 (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC'11) and the map from an attention element to its bits.
// One definition for the host (the CPU evaluator, the keep-mask debug entry) and the device
// (forward and backward kernels), so both draw bit-identical masks.
//
// The contract (docs/dropout.md), Philox4x32-7: element (batch b, query head h, query row i, key column j)
// of a call with RNG state (seed, offset) is dropped iff its 8-bit number r satisfies
// r < threshold, threshold = floor(p · 256). r depends on nothing else: not the tile, the
// back end, the loop order or the kernel (forward, bwd_dkdv, bwd_dq regenerate the same r).
//
// One Philox call gives 16 numbers of 8 bits, for the 16 elements of a *dropout group*:
// query rows {16a + 2r + ρ + 8η} × key columns {16s + 2c + e + 8m} (ρ, η, e, m ∈ {0, 1};
// r, c ∈ 0..3). The group is what two neighbouring lanes of an mma fragment (lane, lane ^ 4)
// hold between them in one 16 × 16 block, in the forward's S layout (a lane: rows g, g+8,
// columns 2t, 2t+1 of each 8-column block) and in the backward's Sᵀ layout (a lane: keys g,
// g+8, queries 2t, 2t+1): the pair draws two groups, one each, and swaps halves, so a lane
// makes 1 call per 16 of its elements in either layout (dropout.cuh).
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

// The class of a row (or column) index within its group: its 16-block and its pair 2r, 2r+1
// (= its pair 2r + 8, 2r + 9).
FJ_HOST_DEVICE philox::u32 dropout_class(philox::u32 i) { return ((i >> 4) << 2) | ((i & 7u) >> 1); }

// The group counter of element (bh = b · heads_q + h, i, j): word x = the key's class, y =
// the row's class, z = batch·head, w = offset's low word; Philox key = (seed's low word,
// seed's high word ^ offset's high word).
FJ_HOST_DEVICE philox::U32x4 dropout_group_bits(const DropoutKey& key, philox::u32 bh, philox::u32 i, philox::u32 j) {
  const philox::U32x4 c{dropout_class(j), dropout_class(i), bh, static_cast<philox::u32>(key.offset)};
  return philox::philox4x32<philox::kDropoutRounds>(c, static_cast<philox::u32>(key.seed),
                               static_cast<philox::u32>(key.seed >> 32) ^ static_cast<philox::u32>(key.offset >> 32));
}

// Which of the group's 16 numbers element (i, j) takes: bit 3 = row parity ρ flipped in odd
// 16-key blocks, bit 2 = the row's 8-half η, bit 1 = the key's 8-half m, bit 0 = key parity e;
// number n is byte n % 4 of word n / 4 (x, y, z, w). So a word holds one row's 4 keys (S
// layout: one lane's row). The flip lets the two lanes that draw two neighbouring blocks keep
// the same words (x, y) and hand over the same (z, w): no lane-dependent select (dropout.cuh).
FJ_HOST_DEVICE int dropout_slot(philox::u32 i, philox::u32 j) {
  return static_cast<int>((((i ^ (j >> 4)) & 1u) << 3) | (((i >> 3) & 1u) << 2) | (((j >> 3) & 1u) << 1) | (j & 1u));
}

FJ_HOST_DEVICE philox::u32 dropout_number(const philox::U32x4& g, int slot) {
  const philox::u32 w = (slot >> 2) == 0 ? g.x : (slot >> 2) == 1 ? g.y : (slot >> 2) == 2 ? g.z : g.w;
  return (w >> (8 * (slot & 3))) & 0xFFu;
}

// The 8-bit number of one element (the reference path: one Philox call per element).
FJ_HOST_DEVICE philox::u32 dropout_element_number(const DropoutKey& key, philox::u32 bh, philox::u32 i, philox::u32 j) {
  return dropout_number(dropout_group_bits(key, bh, i, j), dropout_slot(i, j));
}

// floor(p · 256) for 0 <= p < 1: at most 255, so some element is always kept. p is rounded
// down to a multiple of 1/256, as FlashAttention-2 rounds it (8-bit numbers: one Philox call
// per 16 elements; 16-bit ones cost twice the calls, +70% on the seeds' forward).
FJ_HOST_DEVICE philox::u32 dropout_threshold(double p) {
  const double t = p * 256.0;
  return t <= 0.0 ? 0u : static_cast<philox::u32>(t);
}

// 1 / (1 - p) for the p the threshold stands for (threshold / 256): E[kept · scale] = 1.
FJ_HOST_DEVICE double dropout_keep_scale(philox::u32 threshold) { return 256.0 / (256.0 - threshold); }

// Keep flags of the four 8-bit numbers in w: bit 7 of byte b of the result is 1 iff byte b of
// w is >= threshold (kept); the other bits are garbage. SWAR, three instructions for four
// numbers: the low 7 bits plus (128 - T mod 128) carry into bit 7 iff they are >= T mod 128,
// and no carry crosses a byte (the sum is at most 255). Then T < 128: kept iff bit 7 is set
// or the low bits reach T; T >= 128: kept iff bit 7 is set and the low bits reach T - 128.
FJ_HOST_DEVICE philox::u32 dropout_kept_bytes(philox::u32 w, philox::u32 threshold) {
  const philox::u32 low = w & 0x7F7F7F7Fu;
  return threshold < 128u ? w | (low + (128u - threshold) * 0x01010101u)
                          : w & (low + (256u - threshold) * 0x01010101u);
}

}  // namespace flashjit
