// The CPU emulation of the CUDA runtime declared in cuda_runtime.h: device memory in a guarded
// region, and blocks of fibers that switch at __syncthreads. Single device, one in-order queue:
// every launch and copy completes before it returns.
#include "kernels/cuda/emulator/cuda_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

// Boost.Context's assembly context switch: unlike ucontext's swapcontext, which makes a system
// call (sigprocmask) at every switch, a barrier costs a few dozen instructions. The bare
// make/jump pair is used, not boost::context::fiber: a block whose threads
// disagree on a barrier is abandoned as a GPU abandons it, not unwound, and the stacks are pooled.
#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define GS_EMULATOR_ASAN 1
#endif

namespace gs::cuda_emulator {

namespace {

// ---- errors --------------------------------------------------------------------------------

thread_local cudaError_t last_error = cudaSuccess;
// The detail of the most recent failure, returned by cudaGetErrorString for that code.
thread_local cudaError_t detail_code = cudaSuccess;
thread_local std::string detail_message;

cudaError_t fail(cudaError_t code, std::string message) {
  last_error = code;
  detail_code = code;
  detail_message = std::move(message) + " [cuda emulator]";
  return code;
}

// A kernel's fault on a GPU is sticky: the context is unusable, and every later call returns the
// error until the process ends. Tests inject one (inject_fault) to see a run report it.
cudaError_t sticky = cudaSuccess;
std::string sticky_message;
std::int64_t launches_until_fault = -1;  // -1: none injected
const char* running_kernel = nullptr;     // for device_fault's message

cudaError_t broken(const char* call) { return fail(sticky, std::string(call) + ": " + sticky_message); }

// ---- device memory ---------------------------------------------------------------------------

// One reserved range of address space; allocations are carved from it, and the part in use is
// readable only while a kernel or a copy runs.
class DeviceMemory {
 public:
  static constexpr std::size_t reserved = std::size_t(64) << 30;  // address space, not memory
  static constexpr std::size_t alignment = 256;                   // cudaMalloc's guarantee
  // Every launch opens and closes the used range (one mprotect each), at a cost that grows with
  // the page-table entries remapped: backed by 2 MiB transparent huge pages it is 512 times fewer
  // (the release gpu suite took 19 s with them, 370 s without, on a 2-core machine).
  static constexpr std::size_t huge_page = std::size_t(2) << 20;
#if defined(GS_EMULATOR_ASAN)
  // Unaddressable bytes after every allocation, so that ASan reports a kernel running past it.
  static constexpr std::size_t redzone = 256;
#else
  static constexpr std::size_t redzone = 0;
#endif

  DeviceMemory() {
    void* p = mmap(nullptr, reserved + huge_page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;
    const auto at = reinterpret_cast<std::uintptr_t>(p);
    base_ = static_cast<char*>(p) + ((huge_page - at % huge_page) % huge_page);
    if (madvise(base_, reserved, MADV_HUGEPAGE) != 0 || huge_pages_disabled())
      std::fprintf(stderr,
                   "cuda emulator: no transparent huge pages (/sys/kernel/mm/transparent_hugepage/enabled), so "
                   "every launch protects device memory page by page: the emulated suites run about 20 times slower\n");
  }

  // "[never]" in the kernel's setting; where it cannot be read, madvise's answer stands alone.
  static bool huge_pages_disabled() {
    std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char line[128] = {};
    const bool read = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    return read && std::strstr(line, "[never]") != nullptr;
  }

  void* allocate(std::size_t bytes) {
    if (!base_) return nullptr;
    const std::size_t size = ((bytes == 0 ? 1 : bytes) + redzone + alignment - 1) / alignment * alignment;
    if (limit_ && in_use_ + size > limit_) return nullptr;
    std::size_t offset = top_;
    auto hole = free_.begin();
    while (hole != free_.end() && hole->second < size) ++hole;
    if (hole != free_.end()) {
      offset = hole->first;
      if (hole->second > size) free_.emplace(offset + size, hole->second - size);
      free_.erase(hole);
    } else {
      if (top_ + size > reserved) return nullptr;
      top_ += size;
    }
    live_.emplace(offset, Live{size, bytes});
    in_use_ += size;
    // Fresh device memory holds garbage; all-ones bytes are NaN in f32 and f64 and -1 in i32,
    // so a kernel that reads before it writes gives itself away.
    Open open(*this);
#if defined(GS_EMULATOR_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(base_ + offset, size);
    std::memset(base_ + offset, 0xff, size);
    ASAN_POISON_MEMORY_REGION(base_ + offset + (bytes == 0 ? 1 : bytes), size - (bytes == 0 ? 1 : bytes));
#else
    std::memset(base_ + offset, 0xff, size);
#endif
    return base_ + offset;
  }

  bool release(void* ptr) {
    if (!contains(ptr)) return false;
    auto it = live_.find(static_cast<std::size_t>(static_cast<char*>(ptr) - base_));
    if (it == live_.end()) return false;
    std::size_t offset = it->first, size = it->second.size;
    live_.erase(it);
    in_use_ -= size;
#if defined(GS_EMULATOR_ASAN)
    ASAN_POISON_MEMORY_REGION(base_ + offset, size);  // a kernel that uses it after cudaFree is reported
#endif
    // Coalesce with the free neighbours; the hole at the top shrinks the used range instead.
    auto next = free_.find(offset + size);
    if (next != free_.end()) {
      size += next->second;
      free_.erase(next);
    }
    auto prev = free_.lower_bound(offset);
    if (prev != free_.begin() && (--prev, prev->first + prev->second == offset)) {
      offset = prev->first;
      size += prev->second;
      free_.erase(prev);
    }
    if (offset + size == top_)
      top_ = offset;
    else
      free_.emplace(offset, size);
    return true;
  }

  // The live allocation holding [ptr, ptr + bytes), if one does.
  bool holds(const void* ptr, std::size_t bytes) const {
    if (!contains(ptr)) return false;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(ptr) - base_);
    auto it = live_.upper_bound(at);
    if (it == live_.begin()) return false;
    --it;
    return at + bytes <= it->first + it->second.requested && at < it->first + it->second.requested;
  }
  bool contains(const void* ptr) const {
    const char* p = static_cast<const char*>(ptr);
    return base_ && p >= base_ && p < base_ + reserved;
  }

  std::size_t in_use() const { return in_use_; }
  void set_limit(std::size_t bytes) { limit_ = bytes; }

  // Device memory is accessible while one of these lives.
  class Open {
   public:
    explicit Open(DeviceMemory& m) : m_(m) {
      if (m_.open_++ == 0) m_.protect(PROT_READ | PROT_WRITE);
    }
    ~Open() {
      if (--m_.open_ == 0) m_.protect(PROT_NONE);
    }
    Open(const Open&) = delete;
    Open& operator=(const Open&) = delete;

   private:
    DeviceMemory& m_;
  };

 private:
  void protect(int how) {
    // The whole used range, including holes: one call, whatever the number of allocations.
    const std::size_t extent = (std::max(top_, protected_extent_) + huge_page - 1) / huge_page * huge_page;
    if (extent) mprotect(base_, extent, how);
    protected_extent_ = how == PROT_NONE ? 0 : extent;
  }

  char* base_ = nullptr;
  std::size_t top_ = 0, protected_extent_ = 0;
  std::size_t in_use_ = 0, limit_ = 0;  // carved bytes of the live allocations; 0: no limit
  int open_ = 0;
  struct Live {
    std::size_t size, requested;  // the carved size, and the bytes cudaMalloc was asked for
  };
  std::map<std::size_t, Live> live_;          // by offset
  std::map<std::size_t, std::size_t> free_;  // offset -> size
};

CopyCounts counts;

DeviceMemory& memory() {
  static DeviceMemory m;
  return m;
}

// One device, one in-order queue: every runtime call holds this, so launches and copies from
// different host threads run one after the other (the shared-memory statics are the device's).
std::recursive_mutex& device_queue() {
  static std::recursive_mutex m;
  return m;
}

// ---- blocks of fibers ------------------------------------------------------------------------

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

// ---- streams and graphs ------------------------------------------------------------------------

// A recorded kernel launch (body set) or device-to-device copy (body empty).
struct Operation {
  std::string kernel;
  dim3 grid, block;
  std::function<void()> body;
  std::vector<const void*> pointers;
  void* dst;
  const void* src;
  std::size_t bytes;
  bool overlapped = false;  // launched to overlap the kernel before it
};

}  // namespace

}  // namespace gs::cuda_emulator

struct CUstream_st {
  bool capturing = false, invalidated = false;
  std::string why_invalidated;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  std::vector<gs::cuda_emulator::Operation> operations;
};
struct CUgraph_st {
  std::vector<gs::cuda_emulator::Operation> operations;
};
struct CUgraphExec_st {
  std::vector<gs::cuda_emulator::Operation> operations;
};

namespace gs::cuda_emulator {

namespace {

CUstream_st* capture_in_progress = nullptr;  // one capture at a time, under the device queue's lock
thread_local cudaStreamCaptureMode thread_capture_mode = cudaStreamCaptureModeGlobal;

// A call that is unsafe while a capture is active (CUDA's "potentially unsafe API calls"): if it
// conflicts with the capture in progress, the capture is invalidated and the call must fail with
// cudaErrorStreamCaptureUnsupported. Relaxed captures, or a relaxed calling thread, allow it.
bool unsafe_during_capture(const char* call) {
  CUstream_st* s = capture_in_progress;
  if (!s || s->mode == cudaStreamCaptureModeRelaxed || thread_capture_mode == cudaStreamCaptureModeRelaxed) return false;
  if (s->mode == cudaStreamCaptureModeThreadLocal && s->thread != std::this_thread::get_id()) return false;
  if (!s->invalidated) {
    s->invalidated = true;
    s->why_invalidated = std::string(call) + " while the stream was being captured";
  }
  fail(cudaErrorStreamCaptureUnsupported, std::string(call) + " is not allowed while a stream is being captured");
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

}  // namespace

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

static bool recording = false;
static std::vector<std::string> launch_log;

void record_launches(bool on) {
  std::lock_guard lock(device_queue());
  recording = on;
  launch_log.clear();
}

bool recording_launches() {
  std::lock_guard lock(device_queue());
  return recording;
}

std::vector<std::string> recorded_launches() {
  std::lock_guard lock(device_queue());
  return launch_log;
}

void note_launch(const char* kernel, std::string arguments) {
  std::lock_guard lock(device_queue());
  launch_log.push_back(std::string(kernel) + "(" + arguments + ")");
}

CopyCounts copy_counts() {
  std::lock_guard lock(device_queue());
  return counts;
}

bool is_device_pointer(const void* ptr) {
  std::lock_guard lock(device_queue());
  return memory().holds(ptr, 1);
}

std::size_t memory_in_use() {
  std::lock_guard lock(device_queue());
  return memory().in_use();
}

void set_memory_limit(std::size_t bytes) {
  std::lock_guard lock(device_queue());
  memory().set_limit(bytes);
}

void refuse_launch(const char* kernel, const char* why) { fail(cudaErrorInvalidValue, std::string(kernel) + ": " + why); }

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

// ---- the runtime API -------------------------------------------------------------------------

using gs::cuda_emulator::broken;
using gs::cuda_emulator::capture_in_progress;
using gs::cuda_emulator::sticky;
using gs::cuda_emulator::counts;
using gs::cuda_emulator::device_queue;
using gs::cuda_emulator::fail;
using gs::cuda_emulator::memory;
using gs::cuda_emulator::unsafe_during_capture;

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMalloc");
  if (unsafe_during_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  *ptr = memory().allocate(bytes);
  if (!*ptr) return fail(cudaErrorMemoryAllocation, "out of memory for cudaMalloc of " + std::to_string(bytes) + " bytes");
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (unsafe_during_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
  if (!memory().release(ptr)) return fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  return sticky ? broken("cudaFree") : cudaSuccess;  // freed here all the same, so leak checkers stay quiet
}

namespace {

// Page-locked host memory, and the queued copies to or from it still "in flight". The emulator
// runs every copy at once, but a queued copy into pinned memory lands only when the host next
// waits for the device (its bytes read NaN until then), and pinned memory that a queued copy to
// the device read must not change before then: host code that reads a result too early, or
// reuses a buffer too soon, fails here as it would race on a GPU.
struct InFlight {
  char* host;
  std::vector<char> bytes;  // to the host: what lands; to the device: what was read
  bool to_host;
};
std::map<const char*, std::size_t>& pinned_blocks() {
  static std::map<const char*, std::size_t> blocks;  // start → size
  return blocks;
}
std::vector<InFlight>& in_flight() {
  static std::vector<InFlight> copies;
  return copies;
}
bool pinned(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = pinned_blocks().upper_bound(c);
  if (it == pinned_blocks().begin()) return false;
  --it;
  return c + bytes <= it->first + it->second;
}
// The host waits for the device (`at`): every copy in flight lands.
cudaError_t land_copies(const char* at) {
  auto& copies = in_flight();
  std::string changed;
  for (const auto& c : copies) {
    if (c.to_host)
      std::memcpy(c.host, c.bytes.data(), c.bytes.size());
    else if (std::memcmp(c.host, c.bytes.data(), c.bytes.size()) != 0)
      changed = std::to_string(c.bytes.size()) + "-byte";
  }
  copies.clear();
  if (!changed.empty())
    return fail(cudaErrorIllegalState, "the pinned host memory of a queued " + changed +
                                           " copy to the device changed before the copy was waited for (" + at + ")");
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMallocHost(void** ptr, std::size_t bytes) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMallocHost");
  if (unsafe_during_capture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
  *ptr = std::malloc(bytes == 0 ? 1 : bytes);
  if (!*ptr) return fail(cudaErrorMemoryAllocation, "cudaMallocHost of " + std::to_string(bytes) + " bytes");
  pinned_blocks()[static_cast<const char*>(*ptr)] = bytes == 0 ? 1 : bytes;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::lock_guard lock(device_queue());
  if (unsafe_during_capture("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
  const auto block = pinned_blocks().find(static_cast<const char*>(ptr));
  if (block != pinned_blocks().end()) {
    auto& copies = in_flight();
    const auto into_block = [&](const InFlight& c) { return c.host >= block->first && c.host < block->first + block->second; };
    if (sticky)  // a faulted device runs nothing more: the block's queued copies never land
      copies.erase(std::remove_if(copies.begin(), copies.end(), into_block), copies.end());
    else if (std::any_of(copies.begin(), copies.end(), into_block))
      return fail(cudaErrorIllegalState, "cudaFreeHost of pinned memory a queued copy has not finished with");
    pinned_blocks().erase(block);
  }
  std::free(ptr);
  return sticky ? broken("cudaFreeHost") : cudaSuccess;
}

namespace {

// Checks a copy's pointers against its direction; on success says which side is device memory.
cudaError_t check_copy(const char* call, void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                       bool& dst_device, bool& src_device) {
  auto& m = memory();
  dst_device = m.holds(dst, bytes);
  src_device = m.holds(src, bytes);
  const bool dst_ok = (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) ? dst_device
                      : kind == cudaMemcpyDefault                                        ? true
                                                                                        : !m.contains(dst);
  const bool src_ok = (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) ? src_device
                      : kind == cudaMemcpyDefault                                        ? true
                                                                                        : !m.contains(src);
  if (!dst_ok || !src_ok)
    return fail(cudaErrorInvalidValue, std::string(call) + " of " + std::to_string(bytes) + " bytes: the " +
                                           (dst_ok ? "source" : "destination") +
                                           " is not where the copy's direction says (or runs past its allocation)");
  return cudaSuccess;
}

void copy_now(void* dst, const void* src, std::size_t bytes, bool dst_device, bool src_device) {
  if (src_device != dst_device) {
    ++(dst_device ? counts.host_to_device : counts.device_to_host);
    (dst_device ? counts.host_to_device_bytes : counts.device_to_host_bytes) += static_cast<std::int64_t>(bytes);
  }
  gs::cuda_emulator::DeviceMemory::Open open(memory());
  std::memmove(dst, src, bytes);
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemcpy");
  if (unsafe_during_capture("a synchronous cudaMemcpy")) return cudaErrorStreamCaptureUnsupported;
  // It waits for the work queued before it (every stream here is a blocking one).
  if (const cudaError_t e = land_copies("cudaMemcpy")) return e;
  bool dst_device = false, src_device = false;
  if (const cudaError_t e = check_copy("cudaMemcpy", dst, src, bytes, kind, dst_device, src_device)) return e;
  copy_now(dst, src, bytes, dst_device, src_device);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemcpyAsync");
  if (!stream && unsafe_during_capture("a cudaMemcpyAsync on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  bool dst_device = false, src_device = false;
  if (const cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind, dst_device, src_device)) return e;
  if (stream && stream->capturing) {
    // A graph may copy between device buffers only: host memory that is not pinned cannot be.
    if (!dst_device || !src_device) {
      if (!stream->invalidated) {
        stream->invalidated = true;
        stream->why_invalidated = "a cudaMemcpyAsync between host and device memory while the stream was being captured";
      }
      return fail(cudaErrorStreamCaptureUnsupported, "cudaMemcpyAsync from or to host memory during stream capture");
    }
    stream->operations.push_back({"device-to-device copy", dim3(), dim3(), {}, {dst, src}, dst, src, bytes});
    return cudaSuccess;
  }
  if (stream && !dst_device && src_device && pinned(dst, bytes)) {  // lands at the next wait
    InFlight c{static_cast<char*>(dst), std::vector<char>(bytes), true};
    copy_now(c.bytes.data(), src, bytes, false, true);
    std::memset(dst, 0xff, bytes);
    in_flight().push_back(std::move(c));
    return cudaSuccess;
  }
  if (stream && dst_device && !src_device && pinned(src, bytes)) {  // its source must hold until then
    const char* host = static_cast<const char*>(src);
    in_flight().push_back({const_cast<char*>(host), std::vector<char>(host, host + bytes), false});
  }
  copy_now(dst, src, bytes, dst_device, src_device);
  return cudaSuccess;
}

namespace {

cudaError_t memset_now(const char* call, void* ptr, int value, std::size_t bytes) {
  if (!memory().holds(ptr, bytes)) return fail(cudaErrorInvalidValue, std::string(call) + " outside a device allocation");
  gs::cuda_emulator::DeviceMemory::Open open(memory());
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemset");
  if (unsafe_during_capture("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  return memset_now("cudaMemset", ptr, value, bytes);
}

// In order with the queue, so done at once. Not emulated while the stream is being captured (a
// GPU would record a memset node); nothing here needs it.
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemsetAsync");
  if (!stream && unsafe_during_capture("a cudaMemsetAsync on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  if (stream && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaMemsetAsync during a capture is not emulated");
  return memset_now("cudaMemsetAsync", ptr, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  (void)flags;  // one queue: blocking or not, every stream is ordered with every other
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamCreateWithFlags");
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard lock(device_queue());
  if (!stream || stream->capturing) return fail(cudaErrorInvalidValue, "cudaStreamDestroy of the legacy stream or of a stream being captured");
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamSynchronize");
  if (stream && stream->capturing) {
    if (!stream->invalidated) {
      stream->invalidated = true;
      stream->why_invalidated = "cudaStreamSynchronize of the stream being captured";
    }
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize of a stream being captured");
  }
  if (unsafe_during_capture("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return land_copies("cudaStreamSynchronize");
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamBeginCapture");
  if (!stream) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture on the legacy stream");
  if (capture_in_progress) return fail(cudaErrorIllegalState, "cudaStreamBeginCapture while another capture is in progress");
  stream->capturing = true;
  stream->invalidated = false;
  stream->why_invalidated.clear();
  stream->mode = mode;
  stream->thread = std::this_thread::get_id();
  stream->operations.clear();
  capture_in_progress = stream;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard lock(device_queue());
  *graph = nullptr;
  if (!stream || !stream->capturing) return fail(cudaErrorIllegalState, "cudaStreamEndCapture of a stream that is not being captured");
  if (stream->mode != cudaStreamCaptureModeRelaxed && stream->thread != std::this_thread::get_id())
    return fail(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture from another thread than the one that began it");
  stream->capturing = false;
  capture_in_progress = nullptr;
  auto operations = std::move(stream->operations);
  stream->operations.clear();
  if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by " + stream->why_invalidated);
  *graph = new CUgraph_st{std::move(operations)};
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard lock(device_queue());
  *status = !stream || !stream->capturing ? cudaStreamCaptureStatusNone
            : stream->invalidated         ? cudaStreamCaptureStatusInvalidated
                                          : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  std::swap(*mode, gs::cuda_emulator::thread_capture_mode);
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count) {
  if (!graph || nodes) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: the emulator only counts a graph's nodes");
  *count = graph->operations.size();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  (void)flags;
  if (!graph) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate of a null graph");
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaGraphInstantiate");
  *exec = new CUgraphExec_st{graph->operations};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch of a null graph");
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaGraphLaunch");
  if (stream && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a stream being captured");
  if (!stream && unsafe_during_capture("cudaGraphLaunch on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  for (const auto& op : exec->operations) {
    // A graph runs on the addresses it was captured with: memory freed since is an illegal access.
    for (const void* p : op.pointers)
      if (!memory().holds(p, 1))
        return fail(cudaErrorIllegalAddress, "graph replay: " + op.kernel + " uses device memory freed since the capture");
    if (!op.body) {
      if (!memory().holds(op.dst, op.bytes) || !memory().holds(op.src, op.bytes))
        return fail(cudaErrorIllegalAddress, "graph replay: a device-to-device copy runs past memory freed since the capture");
      copy_now(op.dst, op.src, op.bytes, true, true);
      continue;
    }
    gs::cuda_emulator::run_kernel(op.kernel.c_str(), op.grid, op.block, op.body, op.overlapped);
    if (sticky) return cudaSuccess;  // a fault: the calls after this one report it
    if (gs::cuda_emulator::last_error != cudaSuccess) return gs::cuda_emulator::last_error;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  std::lock_guard lock(device_queue());
  delete exec;
  return sticky ? broken("cudaGraphExecDestroy") : cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard lock(device_queue());
  delete graph;
  return sticky ? broken("cudaGraphDestroy") : cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: the emulator has one device, 0");
  if (attr != cudaDevAttrMultiProcessorCount) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  *value = 132;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaDeviceSynchronize");
  if (unsafe_during_capture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return land_copies("cudaDeviceSynchronize");
}

// A sticky error is returned again and again: it cannot be cleared.
cudaError_t cudaGetLastError() {
  if (sticky) return broken("the device");
  const cudaError_t e = gs::cuda_emulator::last_error;
  gs::cuda_emulator::last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return sticky ? broken("the device") : gs::cuda_emulator::last_error; }

const char* cudaGetErrorString(cudaError_t status) {
  if (status == gs::cuda_emulator::detail_code && !gs::cuda_emulator::detail_message.empty())
    return gs::cuda_emulator::detail_message.c_str();
  switch (status) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}
