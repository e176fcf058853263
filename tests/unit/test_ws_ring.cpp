// A host model of the warp-specialised forward's synchronisation (templates/flashjit/
// fwd_ws_sm90.cuh): mbarriers and named barriers simulated with threads, the producer running
// the device's own ws_producer_program (ws_ring.cuh), consumer threads (one per warpgroup)
// following the order the generated loop has (pinned by tests/golden/emit_cuda_ws*.test).
// Random delays on every side; checked: no deadlock, every wait sees the tile it expects,
// and no slot is refilled while a consumer still reads it. A GPU can only show that a
// schedule worked on the runs it had; this explores the interleavings.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "flashjit/ws_ring.cuh"

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTimeout = std::chrono::seconds(10);  // a wait this long is a deadlock

// mbarrier: a phase completes when `expected` arrivals and all expected transaction bytes
// have happened; wait(parity) returns once the phase with that parity has completed (the
// current, incomplete phase has the other parity), as mbarrier.try_wait.parity.
struct SimMbarrier {
  std::mutex m;
  std::condition_variable cv;
  int expected = 1, arrivals = 0;
  long tx = 0;
  int completed = 0;
  void complete_if_done() {
    if (arrivals == expected && tx == 0) {
      arrivals = 0;
      ++completed;
      cv.notify_all();
    }
  }
  void arrive() {
    std::lock_guard<std::mutex> l(m);
    ++arrivals;
    complete_if_done();
  }
  void arrive_expect_tx(long bytes) {
    std::lock_guard<std::mutex> l(m);
    tx += bytes;
    ++arrivals;
    complete_if_done();
  }
  void complete_tx(long bytes) {
    std::lock_guard<std::mutex> l(m);
    tx -= bytes;
    complete_if_done();
  }
  bool wait(unsigned parity) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_until(l, Clock::now() + kTimeout, [&] { return unsigned(completed & 1) != parity; });
  }
};

// bar.sync / bar.arrive on one id with a count of two warpgroups (units here).
struct SimNamedBarrier {
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0, generation = 0;
  void arrive() {
    std::lock_guard<std::mutex> l(m);
    if (++arrived == 2) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    }
  }
  bool sync() {
    std::unique_lock<std::mutex> l(m);
    const int g = generation;
    if (++arrived == 2) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return true;
    }
    return cv.wait_until(l, Clock::now() + kTimeout, [&] { return generation != g; });
  }
  int pending() {
    std::lock_guard<std::mutex> l(m);
    return arrived;
  }
};

// One block: `items` holds each work item's tile count (a persistent block has several; the
// rings' uses and Q's phases continue from one to the next). Slots hold (item, tile) codes.
template <int STAGES>
struct Block {
  int consumers;
  std::vector<int> items;
  bool pingpong;
  SimMbarrier q_full, q_empty, k_full[STAGES], v_full[STAGES], k_empty[STAGES], v_empty[STAGES];
  SimNamedBarrier turn[2];
  std::atomic<int> k_slot[STAGES], v_slot[STAGES];  // the tile (sequence position) a slot holds
  std::atomic<int> k_readers[STAGES], v_readers[STAGES];  // consumers reading a slot now
  std::atomic<int> q_item{-1};     // the work item whose Q the Q slot holds
  std::atomic<int> q_readers{0};
  // chunked: the items are chunks of one work item's tile list (WsLists): one Q, and two list
  // buffers published on list_full and released on list_empty.
  bool chunked = false;
  SimMbarrier list_full[2], list_empty[2];
  std::atomic<int> list_chunk[2], list_count[2], list_readers[2];
  std::mutex err_mu;
  std::vector<std::string> errors;
  std::mt19937 rng_seed;

  Block(int c, std::vector<int> work, bool pp, uint32_t seed)
      : consumers(c), items(std::move(work)), pingpong(pp), rng_seed(seed) {
    q_empty.expected = consumers;
    for (int i = 0; i < 2; ++i) {
      list_empty[i].expected = consumers;
      list_chunk[i] = -1;
      list_count[i] = 0;
      list_readers[i] = 0;
    }
    for (int s = 0; s < STAGES; ++s) {
      k_empty[s].expected = v_empty[s].expected = consumers;
      k_slot[s] = v_slot[s] = -1;
      k_readers[s] = v_readers[s] = 0;
    }
  }
  void fail(const std::string& e) {
    std::lock_guard<std::mutex> l(err_mu);
    errors.push_back(e);
  }
};

void jitter(std::mt19937& rng) {
  const int us = std::uniform_int_distribution<int>(0, 40)(rng);
  if (us > 30) std::this_thread::sleep_for(std::chrono::microseconds(us));
  else if (us > 10) std::this_thread::yield();
}

// What the device's WsTmaOps does, with a "copy" that lands after a delay on its own thread.
constexpr int code(int item, int tile) { return item * 1000 + tile; }

template <int STAGES>
struct SimOps {
  Block<STAGES>& b;
  std::mt19937 rng;
  std::vector<std::thread>& copies;
  int item = 0;  // the work item being loaded
  void land(std::atomic<int>& slot_value, std::atomic<int>& readers, int value, SimMbarrier& full, const char* what) {
    const int delay = std::uniform_int_distribution<int>(0, 60)(rng);
    // The copy thread outlives this object (the producer's): it holds the block's members only.
    Block<STAGES>& blk = b;
    copies.emplace_back([&blk, &slot_value, &readers, &full, value, delay, what] {
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
      if (readers.load() != 0) blk.fail(std::string(what) + ": slot refilled while a consumer reads it");
      slot_value = value;
      full.complete_tx(1);
    });
  }
  void wait_q_empty(unsigned parity) {
    if (!b.q_empty.wait(parity)) b.fail("producer: Q empty wait timed out");
  }
  void load_q() {
    b.q_full.arrive_expect_tx(1);
    land(b.q_item, b.q_readers, item, b.q_full, "Q");
  }
  void wait_k_empty(int s, unsigned parity) {
    if (!b.k_empty[s].wait(parity)) b.fail("producer: K empty wait timed out");
  }
  void wait_v_empty(int s, unsigned parity) {
    if (!b.v_empty[s].wait(parity)) b.fail("producer: V empty wait timed out");
  }
  void load_k(int s, int i) {
    jitter(rng);
    b.k_full[s].arrive_expect_tx(1);
    land(b.k_slot[s], b.k_readers[s], code(item, i), b.k_full[s], "K");
  }
  void load_v(int s, int i) {
    jitter(rng);
    b.v_full[s].arrive_expect_tx(1);
    land(b.v_slot[s], b.v_readers[s], code(item, i), b.v_full[s], "V");
  }
};

// One consumer warpgroup, in the order of the generated loop (cuda_codegen.cpp, tma_ws).
template <int STAGES>
void consume(Block<STAGES>& b, int wg, uint32_t seed) {
  using R = flashjit::WsRing<STAGES>;
  std::mt19937 rng(seed);
  auto expect = [&](std::atomic<int>& slot, int want, const char* what, int r) {
    if (slot.load() != want)
      b.fail(std::string(what) + " at r=" + std::to_string(r) + ": slot holds " + std::to_string(slot.load()) +
             ", expected " + std::to_string(want));
  };
  if (b.pingpong && wg == 1) b.turn[0].arrive();  // turns.start()
  int uses = 0;
  if (b.chunked) {  // one Q for all chunks
    if (!b.q_full.wait(0)) return b.fail("Q wait timed out");
    ++b.q_readers;
    expect(b.q_item, 0, "Q", -1);
  }
  for (int item = 0; item < (int)b.items.size(); ++item) {
    int n_tiles = b.items[item];
    if (b.chunked) {  // the producer's list of this chunk
      if (!b.list_full[item % 2].wait(unsigned(item / 2) & 1u)) return b.fail("list wait timed out");
      ++b.list_readers[item % 2];
      expect(b.list_chunk[item % 2], item, "list", -1);
      n_tiles = b.list_count[item % 2];
    } else {
      if (!b.q_full.wait(unsigned(item) & 1u)) return b.fail("Q wait timed out");
      ++b.q_readers;
      expect(b.q_item, item, "Q", -1);
    }
    for (int r = 0; r < n_tiles; ++r) {
      const int n = uses + r;
      const int slot = R::slot(n), prev = R::slot(n + STAGES - 1);
      if (!b.k_full[slot].wait(R::parity(n))) return b.fail("K full wait timed out");
      if (b.pingpong) {
        if (r > 0 && !b.v_full[prev].wait(R::parity(n - 1))) return b.fail("V full wait timed out");
        if (!b.turn[wg].sync()) return b.fail("turn wait timed out");
      }
      ++b.k_readers[slot];  // S = Q·Kᵀ issued: reads the K slot until it has landed
      expect(b.k_slot[slot], code(item, r), "K", r);
      if (r > 0) {
        if (!b.pingpong && !b.v_full[prev].wait(R::parity(n - 1))) return b.fail("V full wait timed out");
        ++b.v_readers[prev];  // P·V of the previous tile issued
        expect(b.v_slot[prev], code(item, r - 1), "V", r);
      }
      if (b.pingpong) b.turn[wg ^ 1].arrive();  // turns.pass_turn()
      jitter(rng);
      expect(b.k_slot[slot], code(item, r), "K (still)", r);
      expect(b.q_item, b.chunked ? 0 : item, "Q (still)", r);
      --b.k_readers[slot];
      b.k_empty[slot].arrive();  // S has landed
      jitter(rng);               // mask, softmax
      if (r > 0) {
        expect(b.v_slot[prev], code(item, r - 1), "V (still)", r);
        --b.v_readers[prev];
        b.v_empty[prev].arrive();  // P·V has landed
      }
    }
    if (!b.chunked) {
      --b.q_readers;
      b.q_empty.arrive();  // every Q·Kᵀ of the item has landed
    }
    if (n_tiles > 0) {
      const int last = R::slot(uses + n_tiles - 1);
      if (!b.v_full[last].wait(R::parity(uses + n_tiles - 1))) return b.fail("last V wait timed out");
      ++b.v_readers[last];
      expect(b.v_slot[last], code(item, n_tiles - 1), "last V", n_tiles);
      jitter(rng);
      --b.v_readers[last];
      b.v_empty[last].arrive();  // the last P·V has landed
    }
    if (b.chunked) {
      expect(b.list_chunk[item % 2], item, "list (still)", -1);
      --b.list_readers[item % 2];
      b.list_empty[item % 2].arrive();  // this chunk's list is read
    }
    uses += n_tiles;
  }
  if (b.pingpong && wg == 0 && !b.turn[0].sync()) b.fail("finish timed out");  // turns.finish()
}

template <int STAGES>
void run_block(int consumers, const std::vector<int>& items, bool pingpong, uint32_t seed, bool chunked = false) {
  Block<STAGES> b(consumers, items, pingpong, seed);
  b.chunked = chunked;
  std::vector<std::thread> copies;
  std::thread producer([&] {
    SimOps<STAGES> ops{b, std::mt19937(seed * 7 + 1), copies};
    int uses = 0;
    if (chunked) ops.load_q();  // ws_produce_q, once
    for (int item = 0; item < (int)items.size(); ++item) {  // as the kernel's producer loop
      ops.item = item;
      if (chunked) {  // roles_listed: wait for the buffer, list the chunk, publish it, then its copies
        const int buf = item % 2;
        if (item >= 2 && !b.list_empty[buf].wait(unsigned((item - 2) / 2) & 1u)) b.fail("producer: list empty wait timed out");
        jitter(ops.rng);
        if (b.list_readers[buf] != 0) b.fail("list buffer rewritten while a consumer reads it");
        b.list_chunk[buf] = item;
        b.list_count[buf] = items[item];
        b.list_full[buf].arrive();
        flashjit::ws_producer_kv_program<STAGES>(ops, items[item], uses);
      } else {
        flashjit::ws_producer_program<STAGES>(ops, items[item], uses, item);
      }
      uses += items[item];
    }
  });
  std::vector<std::thread> wgs;
  for (int c = 0; c < consumers; ++c) wgs.emplace_back([&, c] { consume<STAGES>(b, c, seed * 13 + c); });
  for (auto& t : wgs) t.join();
  producer.join();
  for (auto& t : copies) t.join();
  std::string work;
  for (int n : items) work += std::to_string(n) + " ";
  INFO("stages " << STAGES << " consumers " << consumers << " items [" << work << "] pingpong " << pingpong << " seed "
                 << seed);
  for (const auto& e : b.errors) FAIL_CHECK(e);
  CHECK(b.errors.empty());
  // Every copy issued was consumed and released.
  std::vector<int> uses(STAGES);
  int n = 0;
  for (int tiles : items)
    for (int r = 0; r < tiles; ++r, ++n) ++uses[n % STAGES];
  for (int s = 0; s < STAGES; ++s) {
    CHECK(b.k_full[s].completed == uses[s]);
    CHECK(b.v_full[s].completed == uses[s]);
    CHECK(b.k_empty[s].completed == uses[s]);
    CHECK(b.v_empty[s].completed == uses[s]);
  }
  CHECK(b.q_full.completed == (chunked ? 1 : (int)items.size()));
  CHECK(b.q_empty.completed == (chunked ? 0 : (int)items.size()));
  if (chunked)
    for (int i = 0; i < 2; ++i) {
      const int lists = ((int)items.size() - i + 1) / 2;  // chunks i, i + 2, ...
      CHECK(b.list_full[i].completed == lists);
      CHECK(b.list_empty[i].completed == lists);
    }
  if (pingpong) {  // no named barrier left half-arrived at the block's exit
    CHECK(b.turn[0].pending() == 0);
    CHECK(b.turn[1].pending() == 0);
  }
}

}  // namespace

TEST_CASE("ws ring: slots and parities", "[tma_ws]") {
  using R2 = flashjit::WsRing<2>;
  CHECK(R2::slot(5) == 1);
  CHECK(R2::parity(0) == 0);
  CHECK(R2::parity(1) == 0);
  CHECK(R2::parity(2) == 1);
  CHECK(R2::parity(4) == 0);
  CHECK_FALSE(R2::reuses(1));
  CHECK(R2::reuses(2));
  CHECK(R2::release_parity(2) == R2::parity(0));
  using R3 = flashjit::WsRing<3>;
  CHECK(R3::release_parity(7) == R3::parity(4));
}

TEST_CASE("ws ring: the producer and consumers never deadlock, overrun or read stale tiles", "[tma_ws]") {
  uint32_t seed = 1;
  for (int n_tiles : {0, 1, 2, 3, 5, 8, 13})
    for (int consumers : {1, 2, 3}) {
      for (int rep = 0; rep < 3; ++rep) {
        run_block<2>(consumers, {n_tiles}, false, seed++);
        run_block<3>(consumers, {n_tiles}, false, seed++);
      }
      if (consumers == 2)
        for (int rep = 0; rep < 3; ++rep) {
          run_block<2>(2, {n_tiles}, true, seed++);
          run_block<3>(2, {n_tiles}, true, seed++);
        }
    }
}

TEST_CASE("ws ring: a persistent block's work items share the rings and Q", "[tma_ws]") {
  // Items of different lengths, empty ones (fully masked q tiles) among them: the rings'
  // uses and Q's phases carry over, the producer loads an item's Q only once the last
  // item's consumers released it, and its K/V run ahead into the next item.
  const std::vector<std::vector<int>> blocks = {{3, 1, 4}, {0, 2, 0, 5}, {1, 1, 1, 1, 1}, {7, 0}, {2, 6, 3, 1}};
  uint32_t seed = 1000;
  for (const auto& items : blocks)
    for (int rep = 0; rep < 3; ++rep) {
      for (int consumers : {1, 2, 3}) {
        run_block<2>(consumers, items, false, seed++);
        run_block<3>(consumers, items, false, seed++);
      }
      run_block<2>(2, items, true, seed++);
      run_block<3>(2, items, true, seed++);
    }
}

TEST_CASE("ws ring: tile lists in chunks, built by the producer into two buffers", "[tma_ws]") {
  // A mask classified at run time: the producer lists each chunk's tiles (some chunks
  // empty), publishes the list, then issues its copies; consumers release a buffer once its
  // chunk is done, and the producer reuses it two chunks later.
  const std::vector<std::vector<int>> blocks = {{4}, {3, 0, 5}, {1, 1, 1, 1, 1, 1}, {0, 0, 2}, {6, 2, 0, 3, 1}};
  uint32_t seed = 5000;
  for (const auto& chunks : blocks)
    for (int rep = 0; rep < 3; ++rep) {
      for (int consumers : {1, 2, 3}) {
        run_block<2>(consumers, chunks, false, seed++, true);
        run_block<3>(consumers, chunks, false, seed++, true);
      }
      run_block<2>(2, chunks, true, seed++, true);
      run_block<3>(2, chunks, true, seed++, true);
    }
}
