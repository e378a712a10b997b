// The emulator's kernels: each block's threads run as fibers that switch at __syncthreads() in a
// different order after every barrier; the blocks of a launch run two at a time, in an order that
// changes from launch to launch (cuda_runtime.h says what this catches).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

// Boost.Context's assembly context switch: unlike ucontext's swapcontext, which makes a system
// call (sigprocmask) at every switch, a barrier costs a few dozen instructions. The bare
// make/jump pair is used, not boost::context::fiber: a block whose threads disagree on a barrier
// is abandoned as a GPU abandons it, not unwound, and the stacks are pooled.
#include <boost/context/detail/fcontext.hpp>

#include "kernels/cuda/emulator/device_memory.h"
#include "kernels/cuda/emulator/runtime_state.h"

#if defined(GS_EMULATOR_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace gs::cuda_emulator {

namespace {

std::int64_t launches_until_fault = -1;  // -1: none injected
const char* running_kernel = nullptr;     // for device_fault's message

#if defined(GS_EMULATOR_ASAN)
constexpr std::size_t stack_bytes = 512 << 10;
#else
constexpr std::size_t stack_bytes = 128 << 10;
#endif

namespace fcontext = boost::context::detail;

struct Fiber {
  enum class State { fresh, running, at_barrier, done };
  fcontext::fcontext_t context = nullptr;  // where the thread resumes
  std::unique_ptr<char[]> stack;
  State state = State::fresh;
  unsigned index = 0;  // the thread's linear index in its block
};

struct Block {
  fcontext::fcontext_t scheduler = nullptr;  // where the running thread returns to
  std::vector<Fiber> fibers;  // a pool: stacks are kept from launch to launch
  const std::function<void()>* body = nullptr;
  Fiber* running = nullptr;
  bool plain = false;             // threads run as plain calls (the kernel has no barrier)
  bool barrier_when_plain = false;
#if defined(GS_EMULATOR_ASAN)
  const void* scheduler_stack = nullptr;
  std::size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
#endif
};

ThreadContext thread_context;
Block* active = nullptr;  // the block being run, under the device queue's lock

void set_thread_index(unsigned linear) {
  const dim3& d = thread_context.block_dim;
  thread_context.thread_idx = {linear % d.x, (linear / d.x) % d.y, linear / (d.x * d.y)};
}

// Switches from a fiber back to the scheduler; `exiting` when the fiber will not be resumed.
void switch_to_scheduler(Block& b, [[maybe_unused]] bool exiting) {
#if defined(GS_EMULATOR_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, b.scheduler_stack, b.scheduler_stack_size);
#endif
  // The scheduler resumes the thread with a jump of its own: where that came from is where the
  // thread returns next time.
  b.scheduler = fcontext::jump_fcontext(b.scheduler, nullptr).fctx;
#if defined(GS_EMULATOR_ASAN)
  __sanitizer_finish_switch_fiber(fake, &b.scheduler_stack, &b.scheduler_stack_size);
#endif
}

[[noreturn]] void fiber_main(fcontext::transfer_t from) {
  Block& b = *active;
  b.scheduler = from.fctx;
#if defined(GS_EMULATOR_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack, &b.scheduler_stack_size);
#endif
  (*b.body)();
  b.running->state = Fiber::State::done;
  switch_to_scheduler(b, true);
  std::abort();  // a finished thread is never resumed: a fresh one starts on its stack
}

void resume(Block& b, Fiber& f) {
  set_thread_index(f.index);
  b.running = &f;
  if (f.state == Fiber::State::fresh) {
#if defined(GS_EMULATOR_ASAN)
    // The thread before left its frames' redzones poisoned (it ended by a jump, not a return);
    // ucontext's switch is intercepted by ASan to clear them, Boost's is not.
    ASAN_UNPOISON_MEMORY_REGION(f.stack.get(), stack_bytes);
#endif
    f.context = fcontext::make_fcontext(f.stack.get() + stack_bytes, stack_bytes, fiber_main);
  }
  f.state = Fiber::State::running;  // until it reaches a barrier or its end
#if defined(GS_EMULATOR_ASAN)
  __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, f.stack.get(), stack_bytes);
#endif
  f.context = fcontext::jump_fcontext(f.context, nullptr).fctx;
#if defined(GS_EMULATOR_ASAN)
  __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
  b.running = nullptr;
}

// The order the threads of a block run in after a barrier: ascending, descending and shuffled in
// turn, so that code reading another thread's shared-memory write without a barrier in between
// sees the stale value under one of them. Each block starts the rotation at a different turn, so
// that a kernel with a single barrier meets every order too (in a launch of three blocks or more).
void phase_order(std::vector<unsigned>& order, unsigned phase, std::uint64_t block) {
  const unsigned turn = phase + static_cast<unsigned>(block % 3);
  if (turn % 3 == 1) std::reverse(order.begin(), order.end());
  if (turn % 3 == 2) {
    std::uint64_t s = (block + 1) * 0x9e3779b97f4a7c15ull + phase;
    for (std::size_t i = order.size(); i > 1; --i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      std::swap(order[i - 1], order[s % i]);
    }
  }
}

// A block of the launch being run: which fibers run it, and how far it has come. Two blocks are
// run at once, a phase (from one barrier to the next) of each in turn, as a GPU runs many at
// once: a block that shares global memory it means to be its own with another block of the launch
// then meets the other's writes. Their shared memory is one set of statics, so a block's is set
// aside while the other runs.
struct BlockRun {
  Block* block = nullptr;
  std::uint64_t linear = 0;  // its index in the grid, x fastest
  uint3 index{0, 0, 0};
  std::uint64_t serial = 0;  // which variables poison_shared has filled for it; 0 until it starts
  unsigned phase = 0;        // the barrier phases it has run
  bool finished = false;
  std::vector<std::pair<void*, std::vector<char>>> shared;  // set aside while the other block runs
};

std::uint64_t block_serial = 0;  // counts the blocks run
// An overlapped launch (programmatic dependent launch): each thread must call
// begin_after_preceding_kernels() before its first barrier and before it ends. Threads switch only
// at barriers and ends, where this is checked, so one flag serves the running thread.
bool thread_owes_wait = false;
bool wait_missed = false;  // some thread of the running kernel did not wait
BlockRun* current = nullptr;     // the block whose threads are running
std::unordered_map<const void*, std::uint64_t> shared_poisoned_in;  // variable → BlockRun::serial
// The launch's __shared__ variables met so far (address, bytes), as poison_shared meets them.
std::vector<std::pair<void*, std::size_t>> launch_shared;

void enter(BlockRun& r) {
  current = &r;
  active = r.block;
  thread_context.block_idx = r.index;
  for (auto& [variable, bytes] : r.shared) std::memcpy(variable, bytes.data(), bytes.size());
  r.shared.clear();
}

void leave(BlockRun& r) {
  r.shared.clear();
  for (auto& [variable, bytes] : launch_shared) {
    const char* from = static_cast<const char*>(variable);
    r.shared.emplace_back(variable, std::vector<char>(from, from + bytes));
  }
  current = nullptr;
  active = nullptr;
}

// Runs the block's next phase; false (with the error recorded) when its threads disagreed on a
// barrier. Sets r.finished when every thread has ended.
bool run_phase(const char* kernel, BlockRun& r, unsigned threads) {
  Block& b = *r.block;
  if (r.serial == 0) {
    r.serial = ++block_serial;
    if (b.fibers.size() < threads) {
      const std::size_t had = b.fibers.size();
      b.fibers.resize(threads);
      for (std::size_t i = had; i < threads; ++i) b.fibers[i].stack = std::make_unique<char[]>(stack_bytes);
    }
    for (unsigned t = 0; t < threads; ++t) {
      b.fibers[t].state = Fiber::State::fresh;
      b.fibers[t].index = t;
    }
    // Thread 0 first, as a fiber. A barrier must be reached by every thread of a block or none,
    // so if thread 0 ends without one the others can run as plain calls, which is much faster.
    resume(b, b.fibers[0]);
    if (b.fibers[0].state == Fiber::State::done) {
      r.finished = true;
      b.plain = true;
      b.barrier_when_plain = false;
      for (unsigned t = 1; t < threads && !b.barrier_when_plain; ++t) {
        set_thread_index(t);
        (*b.body)();
      }
      b.plain = false;
      if (b.barrier_when_plain) {
        fail(cudaErrorLaunchFailure, std::string(kernel) + ": a thread reached __syncthreads() that thread 0 of its block never reached");
        return false;
      }
      return true;
    }
  }
  std::vector<unsigned> order;
  for (unsigned t = 0; t < threads; ++t)
    if (b.fibers[t].state != Fiber::State::done && !(r.phase == 0 && t == 0)) order.push_back(t);
  phase_order(order, r.phase, r.linear);
  ++r.phase;
  for (unsigned t : order) resume(b, b.fibers[t]);
  unsigned waiting = 0, finished = 0;
  for (unsigned t = 0; t < threads; ++t) (b.fibers[t].state == Fiber::State::done ? finished : waiting) += 1;
  if (waiting == 0) {
    r.finished = true;
    return true;
  }
  if (finished != 0) {
    fail(cudaErrorLaunchFailure, std::string(kernel) + ": " + std::to_string(finished) + " of " + std::to_string(threads) +
                                     " threads of a block ended while the others waited at __syncthreads()");
    return false;
  }
  return true;
}

}  // namespace

ThreadContext& context() { return thread_context; }

void poison_shared(void* variable, std::size_t bytes) {
  if (!current) return;  // not inside a kernel
  std::uint64_t& poisoned_in = shared_poisoned_in[variable];
  if (poisoned_in == current->serial) return;
  if (std::none_of(launch_shared.begin(), launch_shared.end(), [&](const auto& v) { return v.first == variable; }))
    launch_shared.emplace_back(variable, bytes);
  poisoned_in = current->serial;
  std::memset(variable, 0xff, bytes);
}

void waited_for_preceding_kernels() { thread_owes_wait = false; }

void sync_threads() {
  if (thread_owes_wait) wait_missed = true;
  Block* b = active;
  if (!b || b->plain || !b->running) {
    if (b) b->barrier_when_plain = true;
    return;
  }
  b->running->state = Fiber::State::at_barrier;
  switch_to_scheduler(*b, false);
}

namespace {

// The order the blocks of a launch run in: ascending, descending and shuffled, in turn from one
// launch to the next. A GPU runs a launch's blocks at once and in no set order, so a block that
// reads what another block of the same launch writes (without the ticket and fence of a
// last-block pattern) gets a wrong result under at least one of them.
void block_order(std::vector<std::uint64_t>& order, std::uint64_t blocks, std::uint64_t launch) {
  order.resize(blocks);
  for (std::uint64_t i = 0; i < blocks; ++i) order[i] = i;
  if (launch % 3 == 1) std::reverse(order.begin(), order.end());
  if (launch % 3 == 2) {
    std::uint64_t s = (launch + 1) * 0x9e3779b97f4a7c15ull;
    for (std::size_t i = order.size(); i > 1; --i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      std::swap(order[i - 1], order[s % i]);
    }
  }
}

}  // namespace

// Runs a kernel whose configuration was checked, under the device queue's lock: its blocks in
// block_order, two at a time, a phase of each in turn. An overlapped one checks its threads' waits.
void run_kernel(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& kernel_body, bool overlapped) {
  running_kernel = kernel;
  struct Ended {
    ~Ended() { running_kernel = nullptr; }
  } ended;
  if (launches_until_fault >= 0 && launches_until_fault-- == 0) {
    // Reported by the calls after it, as a GPU reports a fault: asynchronously.
    sticky = cudaErrorIllegalAddress;
    sticky_message = std::string("an illegal memory access was encountered in ") + kernel + " (injected by a test)";
    return;
  }
  const std::function<void()> waiting_body = [&kernel_body] {
    thread_owes_wait = true;
    kernel_body();
    if (thread_owes_wait) wait_missed = true;
    thread_owes_wait = false;
  };
  const std::function<void()>& body = overlapped ? waiting_body : kernel_body;
  wait_missed = false;
  static Block pools[2];
  static std::uint64_t launches = 0;
  static std::vector<std::uint64_t> order;
  DeviceMemory::Open open(memory());
  thread_context.grid_dim = grid;
  thread_context.block_dim = block;
  const unsigned threads = block.x * block.y * block.z;
  block_order(order, std::uint64_t(grid.x) * grid.y * grid.z, launches++);
  launch_shared.clear();
  BlockRun runs[2];
  for (int slot = 0; slot < 2; ++slot) {
    pools[slot].body = &body;
    runs[slot].finished = true;  // empty until given a block
  }
  std::size_t next = 0;
  for (int slot = 0;; slot ^= 1) {
    BlockRun& r = runs[slot];
    if (r.finished) {
      if (next == order.size()) {
        if (runs[slot ^ 1].finished) break;
        continue;
      }
      const std::uint64_t linear = order[next++], xy = std::uint64_t(grid.x) * grid.y;
      r = BlockRun{};
      r.block = &pools[slot];
      r.linear = linear;
      r.index = {static_cast<unsigned>(linear % grid.x), static_cast<unsigned>((linear / grid.x) % grid.y),
                 static_cast<unsigned>(linear / xy)};
    }
    enter(r);
    const bool ok = run_phase(kernel, r, threads);
    leave(r);
    if (!ok) break;
  }
  current = nullptr;
  active = nullptr;
  thread_owes_wait = false;
  if (wait_missed)
    fail(cudaErrorLaunchFailure, std::string(kernel) +
                                     ": launched to overlap the kernel before it, a thread reached a barrier or its end "
                                     "without waiting for that kernel; begin_after_preceding_kernels() must be the "
                                     "kernel's first statement (kernels/cuda/cuda_backend.h)");
}

void launch(const char* kernel, dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> body,
            std::vector<const void*> pointers, bool overlapped) {
  const std::uint64_t threads = std::uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration, std::string(kernel) + ": grid " + std::to_string(grid.x) + "×" +
                                            std::to_string(grid.y) + "×" + std::to_string(grid.z) + ", block " +
                                            std::to_string(block.x) + "×" + std::to_string(block.y) + "×" +
                                            std::to_string(block.z) + " is outside CUDA's limits");
    return;
  }
  if (active) {
    fail(cudaErrorLaunchFailure, std::string(kernel) + ": launched from inside a kernel");
    return;
  }
  std::lock_guard lock(device_queue());
  if (sticky) {
    broken((std::string("a launch of ") + kernel).c_str());
    return;
  }
  if (!stream && unsafe_during_capture((std::string("a launch of ") + kernel + " on the legacy stream").c_str())) return;
  if (stream && stream->capturing) {
    stream->operations.push_back({kernel, grid, block, std::move(body), std::move(pointers), nullptr, nullptr, 0, overlapped});
    return;
  }
  run_kernel(kernel, grid, block, body, overlapped);
}

void inject_fault(std::int64_t n) {
  std::lock_guard lock(device_queue());
  launches_until_fault = n;
}

void device_fault(cudaError_t code, std::string message) {
  std::lock_guard lock(device_queue());
  if (sticky) return;
  sticky = code;
  sticky_message = std::move(message) + " in " + (running_kernel ? running_kernel : "a kernel");
}

void clear_fault() {
  std::lock_guard lock(device_queue());
  sticky = cudaSuccess;
  sticky_message.clear();
  launches_until_fault = -1;
  last_error = cudaSuccess;
}

}  // namespace gs::cuda_emulator
