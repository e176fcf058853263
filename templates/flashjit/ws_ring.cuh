// The warp-specialised forward's copy schedule, one definition for the device skeleton
// (fwd_ws_sm90.cuh) and the host model that tests it (tests/unit/test_ws_ring.cpp).
//
// Each ring (K, V) has STAGES slots. Its n-th use (the n-th tile through it) goes to slot
// n % STAGES; the slot's "full" barrier completes its phase n / STAGES when that tile has
// landed, and its "empty" barrier completes phase n / STAGES when every consumer has
// released it. The producer may refill the slot for use n + STAGES only after that.
#pragma once

#include "flashjit/host_device.cuh"

namespace flashjit {

template <int STAGES>
struct WsRing {
  static FJ_HOST_DEVICE int slot(int n) { return n % STAGES; }
  // The parity an mbarrier wait names for phase n / STAGES of a slot's barrier.
  static FJ_HOST_DEVICE unsigned parity(int n) { return (unsigned)(n / STAGES) & 1u; }
  // Before use n the producer waits for the release of use n - STAGES (if any).
  static FJ_HOST_DEVICE bool reuses(int n) { return n >= STAGES; }
  static FJ_HOST_DEVICE unsigned release_parity(int n) { return parity(n - STAGES); }
};

// The producer's program for one work item (a q tile of one head) whose KV sequence has
// n_tiles tiles: Q, then copy step t = 0 .. n_tiles issues K of the t-th tile (t < n_tiles)
// and V of the (t-1)-th (t >= 1): the consumers' P·V runs one tile behind their Q·Kᵀ.
// A persistent block runs it once per work item: `item` counts them (Q's barriers' phase),
// `base` the tiles that went through the rings before (the rings' uses continue).
// `ops` carries it out:
//   wait_q_empty(parity); load_q(); wait_k_empty(slot, parity); load_k(slot, i);
//   wait_v_empty(slot, parity); load_v(slot, i)   (i: the position in this item's sequence)
template <int STAGES, class Ops>
FJ_HOST_DEVICE void ws_producer_kv_program(Ops& ops, int n_tiles, int base);

template <int STAGES, class Ops>
FJ_HOST_DEVICE void ws_producer_program(Ops& ops, int n_tiles, int base = 0, int item = 0) {
  if (item > 0) ops.wait_q_empty((unsigned)(item - 1) & 1u);  // the last item's consumers are done with Q
  ops.load_q();
  ws_producer_kv_program<STAGES>(ops, n_tiles, base);
}

// The K/V part alone: a block whose tiles come in chunks (a tile list per chunk) runs it once
// per chunk, `base` counting the tiles of the chunks before.
template <int STAGES, class Ops>
FJ_HOST_DEVICE void ws_producer_kv_program(Ops& ops, int n_tiles, int base) {
  using R = WsRing<STAGES>;
  for (int t = 0; t <= n_tiles; ++t) {
    if (t < n_tiles) {
      const int n = base + t;
      if (R::reuses(n)) ops.wait_k_empty(R::slot(n), R::release_parity(n));
      ops.load_k(R::slot(n), t);
    }
    if (t >= 1) {
      const int n = base + t - 1;
      if (R::reuses(n)) ops.wait_v_empty(R::slot(n), R::release_parity(n));
      ops.load_v(R::slot(n), t - 1);
    }
  }
}

}  // namespace flashjit
