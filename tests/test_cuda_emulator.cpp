// The CPU emulation of the CUDA runtime (kernels/cuda/emulator/) must catch what a GPU would
// punish, or the gpu_emulated run of the gpu suite proves less than it seems. Each case here
// runs a small kernel that is wrong in one way and checks that the emulator notices.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "engine/error_type.h"
#include "engine/optim.h"
#include "engine/probe/ntk_stream.h"
#include "experiments/runner.h"
#include "helpers.h"
#include "kernels/cuda/cuda_backend.h"
#include "mma.h"  // the emulator's, kernels/cuda/emulator/
#include "models/models.h"
#include "temp_dir.h"

using gs::Error;
using gs::kernels::i64;
using gs::kernels::cuda::launch;

namespace {

constexpr int block_threads = 256;

// y[t] = x[255 - t] through shared memory; without the barrier a thread may read a slot that its
// owner has not written yet.
template <bool Barrier>
__global__ void reverse_kernel(const float* x, float* y) {
  __shared__ float s[block_threads];
  const int t = static_cast<int>(threadIdx.x);
  s[t] = x[t];
  if (Barrier) __syncthreads();
  y[t] = s[block_threads - 1 - t];
}

// Half of the block waits at a barrier that the other half never reaches.
__global__ void divergent_barrier_kernel(int waiting, float* y) {
  if (static_cast<int>(threadIdx.x) < waiting) __syncthreads();
  y[threadIdx.x] = 1;
}

// Every thread writes its coordinates, to check the grid's and blocks' indexing.
__global__ void coordinates_kernel(int* out) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const unsigned i = block * blockDim.x * blockDim.y * blockDim.z + thread;
  out[4 * i + 0] = static_cast<int>(blockIdx.x + 10 * blockIdx.y + 100 * blockIdx.z);
  out[4 * i + 1] = static_cast<int>(threadIdx.x);
  out[4 * i + 2] = static_cast<int>(threadIdx.y);
  out[4 * i + 3] = static_cast<int>(threadIdx.z);
}

// Thread 0 of every block writes the block's linear index at the next free slot: the order the
// blocks ran in.
__global__ void block_order_kernel(unsigned long long* next, int* order) {
  if (threadIdx.x == 0) order[atomicAdd(next, 1ULL)] = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
}

// Wrong on a GPU: each block reads the value the block before it wrote in the same launch.
__global__ void chain_kernel(float* y) {
  if (threadIdx.x == 0) y[blockIdx.x] = blockIdx.x == 0 ? 1.0f : y[blockIdx.x - 1] + 1.0f;
}

// Thread 0 writes one slot of a shared array before the barrier, and every thread reads its own
// slot after it. The emulated build's copies of the kernels call poison_shared after each
// __shared__ declaration (kernels/cuda/emulator/poison_shared.cmake); this file is not copied, so
// it makes the call itself.
__global__ void unwritten_shared_kernel(float* y) {
  __shared__ float s[block_threads];
  gs::cuda_emulator::poison_shared(&s, sizeof s);
  if (threadIdx.x == 0) s[blockIdx.x] = 1.0f + static_cast<float>(blockIdx.x);
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
}

// Wrong on a GPU: every block uses the same scratch row as if it were its own, across a barrier.
__global__ void shared_scratch_kernel(float* scratch, float* y) {
  const unsigned t = threadIdx.x;
  scratch[t] = static_cast<float>(blockIdx.x);
  __syncthreads();
  y[blockIdx.x * blockDim.x + t] = scratch[(t + 1) % blockDim.x];
}

// Right: each block keeps its own values in shared memory across several barriers.
__global__ void own_shared_kernel(float* y) {
  __shared__ float s[block_threads];
  gs::cuda_emulator::poison_shared(&s, sizeof s);
  const unsigned t = threadIdx.x;
  s[t] = static_cast<float>(blockIdx.x * 1000 + t);
  for (int round = 0; round < 3; ++round) {
    __syncthreads();
    const float neighbour = s[(t + 1) % block_threads];
    __syncthreads();
    s[t] = neighbour;
  }
  __syncthreads();
  y[blockIdx.x * block_threads + t] = s[t];
}

template <class T>
T* device_array(std::size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> to_host(const T* device, std::size_t n) {
  std::vector<T> v(n);
  REQUIRE(cudaMemcpy(v.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return v;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Runs f in a child process, its output (a sanitizer's or doctest's report) discarded; its exit status, a
// killing signal as 128 + signal.
int status_of_child(auto&& f) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (std::freopen("/dev/null", "w", stderr) == nullptr || std::freopen("/dev/null", "w", stdout) == nullptr) _exit(3);
    f();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

__global__ void accumulate_kernel(i64 n, const float* x, float* y) {
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}

template <class T>
void to_device(T* device, const std::vector<T>& host) {
  REQUIRE(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
}

// Ends the capture on the backend's stream; the graph, or null with the error's text in `why`.
cudaGraph_t end_capture(std::string& why) {
  cudaGraph_t graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(gs::kernels::cuda::stream(), &graph);
  why = status == cudaSuccess ? "" : cudaGetErrorString(status);
  (void)cudaGetLastError();
  return graph;
}

// Where a kernel waits for the kernels before it (begin_after_preceding_kernels): first, as every
// kernel in kernels/cuda does, or in one of the ways that race with them in an overlapped launch.
enum class WaitAt { first, after_barrier, thread_0_only, after_early_return, never };

template <WaitAt W>
__global__ void waiting_kernel(float* y) {
  using gs::kernels::cuda::begin_after_preceding_kernels;
  if (W == WaitAt::first) begin_after_preceding_kernels();
  if (W == WaitAt::thread_0_only && threadIdx.x == 0) begin_after_preceding_kernels();
  if (W == WaitAt::after_early_return) {
    if (threadIdx.x >= 100) return;
    begin_after_preceding_kernels();
  } else {
    __syncthreads();
  }
  if (W == WaitAt::after_barrier) begin_after_preceding_kernels();
  y[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

// Overlapped launches for one scope, plain ones again after it.
struct OverlappedLaunches {
  OverlappedLaunches() { gs::kernels::set_overlapped_launches(true); }
  ~OverlappedLaunches() { gs::kernels::set_overlapped_launches(false); }
};

// What `issue` launches on the backend's stream, captured and instantiated; destroyed together.
struct CapturedGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  explicit CapturedGraph(const std::function<void()>& issue) {
    REQUIRE(cudaStreamBeginCapture(gs::kernels::cuda::stream(), cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    issue();
    std::string why;
    graph = end_capture(why);
    REQUIRE_MESSAGE(graph != nullptr, why);
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  ~CapturedGraph() {
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaError_t replay() const { return cudaGraphLaunch(exec, gs::kernels::cuda::stream()); }
};

#if defined(__SANITIZE_ADDRESS__)
__global__ void write_past_end_kernel(i64 n, float* y) {
  if (threadIdx.x == 0) y[n] = 1;  // one element past the allocation
}
#endif

// One TF32 product of tensor-core fragments, a (16 × 8) times b (8 × 16) into c (16 × 16), all
// row-major, a read `shift` floats past its start; the operands rounded to TF32 if `convert`.
__global__ void tf32_product_kernel(int shift, bool convert, const float* a, const float* b, float* c) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + shift, 8);
  wmma::load_matrix_sync(fb, b, 16);
  if (convert) {
    for (int e = 0; e < fa.num_elements; ++e) fa.x[e] = wmma::__float_to_tf32(fa.x[e]);
    for (int e = 0; e < fb.num_elements; ++e) fb.x[e] = wmma::__float_to_tf32(fb.x[e]);
  }
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

}  // namespace

TEST_SUITE("cuda_emulator") {
  TEST_CASE("a missing barrier gives a wrong result, a present one the right result") {
    std::vector<float> x(block_threads);
    for (int i = 0; i < block_threads; ++i) x[i] = 1.0f + static_cast<float>(i);
    float* dx = device_array<float>(block_threads);
    float* dy = device_array<float>(block_threads);
    REQUIRE(cudaMemcpy(dx, x.data(), sizeof(float) * block_threads, cudaMemcpyHostToDevice) == cudaSuccess);
    auto reversed_correctly = [&] {
      auto y = to_host(dy, block_threads);
      for (int i = 0; i < block_threads; ++i)
        if (y[i] != x[block_threads - 1 - i]) return false;
      return true;
    };
    launch("reverse with a barrier", block_threads, 1, block_threads, reverse_kernel<true>, dx, dy);
    CHECK(reversed_correctly());
    launch("reverse without a barrier", block_threads, 1, block_threads, reverse_kernel<false>, dx, dy);
    CHECK_FALSE(reversed_correctly());
    cudaFree(dx);
    cudaFree(dy);
  }

  TEST_CASE("threads of a block that disagree on a barrier fail the launch") {
    float* dy = device_array<float>(block_threads);
    for (int waiting : {128, 255, 1}) {
      CAPTURE(waiting);
      const std::string e = error_of([&] { launch("divergent", block_threads, 1, block_threads, divergent_barrier_kernel, waiting, dy); });
      CHECK(e.find("__syncthreads") != std::string::npos);
      CHECK(e.find("divergent") != std::string::npos);
    }
    // The same kernel with every thread at the barrier is fine.
    CHECK(error_of([&] { launch("uniform", block_threads, 1, block_threads, divergent_barrier_kernel, block_threads, dy); }) == "");
    cudaFree(dy);
  }

  TEST_CASE("grids and blocks of up to three dimensions are indexed as CUDA's") {
    const dim3 grid(3, 2, 2), block(4, 2, 3);
    const int threads = 3 * 2 * 2 * 4 * 2 * 3;
    int* out = device_array<int>(4 * threads);
    launch("coordinates", threads, grid, block, coordinates_kernel, out);
    auto v = to_host(out, 4 * threads);
    int i = 0;
    for (int bz = 0; bz < 2; ++bz)
      for (int by = 0; by < 2; ++by)
        for (int bx = 0; bx < 3; ++bx)
          for (int tz = 0; tz < 3; ++tz)
            for (int ty = 0; ty < 2; ++ty)
              for (int tx = 0; tx < 4; ++tx, ++i) {
                CHECK(v[4 * i] == bx + 10 * by + 100 * bz);
                CHECK(v[4 * i + 1] == tx);
                CHECK(v[4 * i + 2] == ty);
                CHECK(v[4 * i + 3] == tz);
              }
    cudaFree(out);
  }

  TEST_CASE("the blocks of a launch run ascending, descending and shuffled in turn") {
    const dim3 grid(7, 5);
    const int blocks = 7 * 5;
    auto* next = device_array<unsigned long long>(1);
    int* order = device_array<int>(blocks);
    std::vector<int> ascending(blocks);
    for (int i = 0; i < blocks; ++i) ascending[i] = i;
    const std::vector<int> descending(ascending.rbegin(), ascending.rend());
    int seen_ascending = 0, seen_descending = 0, seen_other = 0;
    for (int launch_index = 0; launch_index < 3; ++launch_index) {
      REQUIRE(cudaMemset(next, 0, sizeof(unsigned long long)) == cudaSuccess);
      launch("block order", blocks, grid, 32, block_order_kernel, next, order);
      std::vector<int> ran = to_host(order, blocks);
      CAPTURE(launch_index);
      CHECK(std::is_permutation(ran.begin(), ran.end(), ascending.begin()));  // every block once
      seen_ascending += ran == ascending;
      seen_descending += ran == descending;
      seen_other += ran != ascending && ran != descending;
    }
    CHECK(seen_ascending == 1);
    CHECK(seen_descending == 1);
    CHECK(seen_other == 1);
    cudaFree(next);
    cudaFree(order);
  }

  TEST_CASE("a block that reads what another block of its launch wrote gets a wrong result") {
    const int blocks = 40;
    float* y = device_array<float>(blocks);
    int right = 0;
    for (int launch_index = 0; launch_index < 3; ++launch_index) {
      REQUIRE(cudaMemset(y, 0xff, sizeof(float) * blocks) == cudaSuccess);  // NaN, as fresh memory
      launch("chain", blocks, blocks, 32, chain_kernel, y);
      const std::vector<float> v = to_host(y, blocks);
      bool counted = true;
      for (int b = 0; b < blocks; ++b) counted = counted && v[b] == static_cast<float>(b + 1);
      right += counted;
    }
    CHECK(right == 1);  // ascending order only
    cudaFree(y);
  }

  TEST_CASE("a block's shared memory starts as NaN, whatever the block before it left there") {
    const int blocks = 3;
    float* y = device_array<float>(blocks * block_threads);
    launch("unwritten shared", blocks * block_threads, blocks, block_threads, unwritten_shared_kernel, y);
    const std::vector<float> v = to_host(y, blocks * block_threads);
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < block_threads; ++t) {
        CAPTURE(b);
        CAPTURE(t);
        // Only the slot this block's thread 0 wrote holds a number: the threads that reached the
        // declaration after thread 0 did not poison it again, and no block sees another's slot.
        if (t == b)
          CHECK(v[b * block_threads + t] == 1.0f + static_cast<float>(b));
        else
          CHECK(std::isnan(v[b * block_threads + t]));
      }
    cudaFree(y);
  }

  TEST_CASE("the emulated build's copy of a kernel source poisons each __shared__ variable it declares") {
    gs::test::TempDir dir;
    auto transform = [&](const std::string& source, std::string& copy) {
      std::ofstream(dir / "in.cu") << source;
      const std::string cmd = std::string(GROKSCOPE_CMAKE) + " -DIN=" + (dir / "in.cu").string() +
                              " -DOUT=" + (dir / "out.cpp").string() + " -P " + GROKSCOPE_SOURCE_DIR +
                              "/kernels/cuda/emulator/poison_shared.cmake > " + (dir / "log").string() + " 2>&1";
      const int status = std::system(cmd.c_str());
      std::stringstream text;
      text << std::ifstream(status == 0 ? dir / "out.cpp" : dir / "log").rdbuf();
      copy = text.str();
      return status;
    };
    std::string copy;
    REQUIRE(transform("__global__ void k() {\n"
                      "  __shared__ T as[BK][BM + 1];\n"
                      "  __shared__ double alpha, tau;\n"
                      "  __shared__ __align__(32) float cs[BM][BN + 4];\n"
                      "  x = 1;\n"
                      "}\n",
                      copy) == 0);
    const std::string poison = "::gs::cuda_emulator::poison_shared";
    CHECK(copy == "#line 1 \"" + (dir / "in.cu").string() + "\"\n" +
                      "__global__ void k() {\n"
                      "  __shared__ T as[BK][BM + 1]; " + poison + "(&as, sizeof(as));\n"
                      "  __shared__ double alpha, tau; " + poison + "(&alpha, sizeof(alpha)); " + poison +
                      "(&tau, sizeof(tau));\n"
                      "  __shared__ __align__(32) float cs[BM][BN + 4]; " + poison + "(&cs, sizeof(cs));\n"
                      "  x = 1;\n"
                      "}\n");
    // A declaration it cannot read stops the build, naming the file and the declaration.
    CHECK(transform("  __shared__ Pair<int, int> p;\n", copy) != 0);
    CHECK(copy.find("in.cu") != std::string::npos);
    CHECK(copy.find("__shared__ Pair<int,") != std::string::npos);  // cmake folds its message's lines
    CHECK(copy.find("not a plain declaration") != std::string::npos);
  }

  TEST_CASE("with poisoning on, a cached device block comes back as NaN bytes, without a kernel launch") {
    auto& be = gs::kernels::backend(gs::Device::cuda);
    const std::size_t bytes = 4096;
    gs::release_cached_memory(gs::Device::cuda);
    void* a = gs::allocate(gs::Device::cuda, bytes);
    be.fill(gs::DType::f32, bytes / 4, 2.5, a);
    gs::release(gs::Device::cuda, a, bytes);
    gs::cuda_emulator::record_launches(true);
    void* again = gs::allocate(gs::Device::cuda, bytes);  // tests/main.cpp turned the poisoning on
    const auto launched = gs::cuda_emulator::recorded_launches();
    gs::cuda_emulator::record_launches(false);
    REQUIRE(again == a);
    CHECK(launched.empty());
    const std::vector<float> v = to_host(static_cast<float*>(again), bytes / 4);
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return std::isnan(x); }));
    gs::release(gs::Device::cuda, again, bytes);
    gs::release_cached_memory(gs::Device::cuda);
  }

  // A full device with cached blocks of other sizes: they go back and the allocation is made, and
  // the failed cudaMalloc is not reported again by the next launch.
  TEST_CASE("when the device is full, the allocator hands its cached blocks back and tries once more") {
    auto& be = gs::kernels::backend(gs::Device::cuda);
    constexpr std::size_t mb = std::size_t(1) << 20;
    gs::release_cached_memory(gs::Device::cuda);
    gs::cuda_emulator::set_memory_limit(gs::cuda_emulator::memory_in_use() + 64 * mb);
    for (std::size_t bytes : {16 * mb, 20 * mb, 24 * mb}) gs::release(gs::Device::cuda, gs::allocate(gs::Device::cuda, bytes), bytes);
    CHECK(gs::cached_bytes(gs::Device::cuda) == 60 * mb);
    void* p = gs::allocate(gs::Device::cuda, 32 * mb);  // fits only once the 60 MB are back
    CHECK(gs::cached_bytes(gs::Device::cuda) == 0);
    be.fill(gs::DType::f32, static_cast<std::int64_t>(32 * mb / 4), 1.5, p);  // its launch check sees no stale error
    CHECK(to_host(static_cast<float*>(p), 4) == std::vector<float>(4, 1.5f));
    // More than the device has even with the cache handed back: refused, and the cache is empty.
    gs::release(gs::Device::cuda, p, 32 * mb);
    CHECK_THROWS_WITH_AS(gs::allocate(gs::Device::cuda, 100 * mb), doctest::Contains("out of memory"), gs::Error);
    CHECK(gs::cached_bytes(gs::Device::cuda) == 0);
    gs::cuda_emulator::set_memory_limit(0);
  }

  TEST_CASE("two blocks run at once, so blocks that share scratch memory meet each other's writes") {
    const int blocks = 6;
    float* scratch = device_array<float>(block_threads);
    float* y = device_array<float>(blocks * block_threads);
    launch("shared scratch", blocks * block_threads, blocks, block_threads, shared_scratch_kernel, scratch, y);
    std::vector<float> v = to_host(y, blocks * block_threads);
    int wrong = 0;
    for (int b = 0; b < blocks; ++b) wrong += v[b * block_threads] != static_cast<float>(b);
    CHECK(wrong > 0);
    // Each block's shared memory stays its own while the other block runs.
    launch("own shared", blocks * block_threads, blocks, block_threads, own_shared_kernel, y);
    v = to_host(y, blocks * block_threads);
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < block_threads; ++t) {
        CAPTURE(b);
        CAPTURE(t);
        CHECK(v[b * block_threads + t] == static_cast<float>(b * 1000 + (t + 3) % block_threads));
      }
    cudaFree(scratch);
    cudaFree(y);
  }

  TEST_CASE("a kernel's fault is sticky, as on a GPU: every later call returns it") {
    const i64 n = 64;
    float* dx = device_array<float>(n);
    float* dy = device_array<float>(n);
    struct Clear {
      ~Clear() { gs::cuda_emulator::clear_fault(); }
    } clear;
    gs::cuda_emulator::inject_fault(1);  // the second kernel from now
    CHECK(error_of([&] { launch("accumulate", n, 1, block_threads, accumulate_kernel, n, dx, dy); }) == "");
    const std::string e = error_of([&] { launch("accumulate", n, 1, block_threads, accumulate_kernel, n, dx, dy); });
    CHECK(e.find("an illegal memory access was encountered in accumulate (injected by a test)") != std::string::npos);
    void* p = nullptr;
    CHECK(cudaMalloc(&p, 64) == cudaErrorIllegalAddress);
    CHECK(cudaMemset(dy, 0, 4) == cudaErrorIllegalAddress);
    CHECK(cudaGetLastError() == cudaErrorIllegalAddress);
    CHECK(cudaGetLastError() == cudaErrorIllegalAddress);  // it cannot be cleared
    CHECK(error_of([&] { launch("accumulate", n, 1, block_threads, accumulate_kernel, n, dx, dy); }) != "");
    CHECK(cudaFree(dx) == cudaErrorIllegalAddress);  // freed all the same (leak checkers see nothing)
    CHECK_FALSE(gs::cuda_emulator::is_device_pointer(dx));
    gs::cuda_emulator::clear_fault();
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);
    CHECK(cudaFree(p) == cudaSuccess);
    CHECK(cudaFree(dy) == cudaSuccess);
  }

  TEST_CASE("a kernel launched to overlap the one before it must wait for it in every thread first") {
    const i64 n = 2 * block_threads;
    float* dy = device_array<float>(n);
    const std::vector<float> ones(n, 1.0f);
    auto run = [&](const char* what, auto kernel) {
      return error_of([&] { launch(what, n, 2, block_threads, kernel, dy); });
    };
    // Launched the plain way, a kernel need not wait.
    CHECK(run("never waits, plain launch", waiting_kernel<WaitAt::never>) == "");
    CHECK(to_host(dy, n) == ones);
    OverlappedLaunches overlapped;
    CHECK(run("waits first", waiting_kernel<WaitAt::first>) == "");
    CHECK(to_host(dy, n) == ones);
    using Kernel = void (*)(float*);
    for (auto [what, kernel] : {std::pair<const char*, Kernel>{"waits after a barrier", waiting_kernel<WaitAt::after_barrier>},
                                {"only thread 0 waits", waiting_kernel<WaitAt::thread_0_only>},
                                {"some threads return before waiting", waiting_kernel<WaitAt::after_early_return>},
                                {"never waits", waiting_kernel<WaitAt::never>}}) {
      INFO(std::string(what));
      const std::string e = run(what, kernel);
      CHECK(e.find(what) != std::string::npos);
      CHECK(e.find("without waiting for that kernel") != std::string::npos);
      CHECK(e.find("begin_after_preceding_kernels()") != std::string::npos);
    }
    // A captured launch keeps its overlap, and its replay is checked too.
    {
      const CapturedGraph g([&] { launch("never waits, captured", n, 2, block_threads, waiting_kernel<WaitAt::never>, dy); });
      CHECK(g.replay() == cudaErrorLaunchFailure);
      CHECK(std::string(cudaGetErrorString(cudaErrorLaunchFailure)).find("never waits, captured") != std::string::npos);
      (void)cudaGetLastError();
    }
    cudaFree(dy);
  }

  // On a GPU an overlapped kernel may begin while its predecessor still runs: anything it reads or
  // writes before its wait races with that kernel. So every kernel must wait first of all.
  TEST_CASE("every kernel in kernels/cuda begins by waiting for the kernels before it") {
    int kernels = 0;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(GROKSCOPE_SOURCE_DIR) / "kernels/cuda")) {
      const std::string ext = entry.path().extension().string();
      if (ext != ".cu" && ext != ".cuh") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      const std::string source = text.str();
      for (std::size_t at = source.find("__global__"); at != std::string::npos; at = source.find("__global__", at + 1)) {
        const std::size_t open = source.find('{', at);
        REQUIRE(open != std::string::npos);
        const std::size_t first = source.find_first_not_of(" \t\n", open + 1);
        const std::string header = source.substr(at, open - at);
        INFO(entry.path().filename().string() << ": " << header);
        const std::string wait = "begin_after_preceding_kernels();";
        CHECK(source.compare(first, wait.size(), wait) == 0);
        ++kernels;
      }
    }
    CHECK(kernels >= 40);
  }

  TEST_CASE("a kernel handed a host pointer is refused, naming the argument") {
    std::vector<float> host(block_threads, 1.0f);
    float* dy = device_array<float>(block_threads);
    const std::string e =
        error_of([&] { launch("reverse", block_threads, 1, block_threads, reverse_kernel<true>, host.data(), dy); });
    CHECK(e.find("argument 0 is not a device pointer") != std::string::npos);
    CHECK(e.find("reverse") != std::string::npos);
    cudaFree(dy);
  }

  TEST_CASE("launches outside CUDA's limits fail as on a GPU") {
    float* dy = device_array<float>(block_threads);
    for (auto [grid, block] : std::vector<std::pair<dim3, dim3>>{{dim3(0), dim3(256)}, {dim3(1), dim3(2048)},
                                                                 {dim3(1), dim3(0)}, {dim3(1, 70000), dim3(1)}}) {
      const std::string e = error_of([&] { launch("oversized", 1, grid, block, divergent_barrier_kernel, 0, dy); });
      CHECK(e.find("outside CUDA's limits") != std::string::npos);
    }
    cudaFree(dy);
  }

  TEST_CASE("fresh device memory is NaN, and copies must go the way they say") {
    float* d = device_array<float>(1000);
    for (float v : to_host(d, 1000)) CHECK(std::isnan(v));
    std::vector<float> host(1000);
    CHECK(cudaMemcpy(host.data(), d, 4000, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d, host.data(), 4000, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(host.data(), d, 4004, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // past its end
    CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)).find("cudaMemcpy") != std::string::npos);
    CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
    cudaFree(d);
  }

  TEST_CASE("a queued copy into pinned memory lands when the host waits, and its pinned source must hold until then") {
    float* d = device_array<float>(4);
    const std::vector<float> values{1, 2, 3, 4};
    REQUIRE(cudaMemcpy(d, values.data(), 16, cudaMemcpyHostToDevice) == cudaSuccess);
    cudaStream_t s = nullptr;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    void* p = nullptr;
    REQUIRE(cudaMallocHost(&p, 16) == cudaSuccess);
    auto* h = static_cast<float*>(p);
    // To the host: NaN until the wait, then the values.
    REQUIRE(cudaMemcpyAsync(h, d, 16, cudaMemcpyDeviceToHost, s) == cudaSuccess);
    CHECK(std::isnan(h[0]));
    CHECK(cudaFreeHost(p) == cudaErrorIllegalState);  // still in flight
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(std::vector<float>(h, h + 4) == values);
    // To the device: the copy is made, and a source changed before the wait is an error there.
    for (int i = 0; i < 4; ++i) h[i] = static_cast<float>(10 + i);
    REQUIRE(cudaMemcpyAsync(d, h, 16, cudaMemcpyHostToDevice, s) == cudaSuccess);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);  // unchanged: fine
    REQUIRE(cudaMemcpyAsync(d, h, 16, cudaMemcpyHostToDevice, s) == cudaSuccess);
    h[2] = 99;
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalState);
    CHECK(std::string(cudaGetErrorString(cudaErrorIllegalState)).find("changed before the copy was waited for") !=
          std::string::npos);
    (void)cudaGetLastError();
    CHECK(to_host(d, 4) == std::vector<float>{10, 11, 12, 13});
    // A synchronous copy waits too: a queued result is there after it.
    REQUIRE(cudaMemcpyAsync(h, d, 16, cudaMemcpyDeviceToHost, s) == cudaSuccess);
    std::vector<float> other(4);
    REQUIRE(cudaMemcpy(other.data(), d, 16, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(std::vector<float>(h, h + 4) == other);
    CHECK(cudaFreeHost(p) == cudaSuccess);
    cudaStreamDestroy(s);
    cudaFree(d);
  }

  TEST_CASE("host code that dereferences a device pointer crashes, as on a GPU") {
    float* d = device_array<float>(16);
    const int status = status_of_child([&] {
      volatile float* p = d;
      p[0] = 1;
    });
    CHECK(status != 0);
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(status == 128 + SIGSEGV);  // under ASan its handler reports the fault and exits instead
#endif
    cudaFree(d);
  }

#if defined(__SANITIZE_ADDRESS__)
  TEST_CASE("a kernel writing past its allocation is reported by AddressSanitizer") {
    float* d = device_array<float>(100);
    const int status = status_of_child([&] { launch("past the end", 1, 1, 32, write_past_end_kernel, i64{100}, d); });
    CHECK(status != 0);
    cudaFree(d);
  }
#endif

  TEST_CASE("work on a stream being captured is recorded, not run, and every replay runs it on the data of the moment") {
    const i64 n = 300;  // two blocks, the second partial
    std::vector<float> x(n), zeros(n, 0.0f);
    for (i64 i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = 1.0f + static_cast<float>(i);
    float* dx = device_array<float>(n);
    float* dy = device_array<float>(n);
    float* dz = device_array<float>(n);
    to_device(dx, x);
    to_device(dy, zeros);
    to_device(dz, zeros);
    cudaStream_t s = gs::kernels::cuda::stream();
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureStatus status{};
    REQUIRE(cudaStreamIsCapturing(s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusActive);
    launch("accumulate", n, 2, block_threads, accumulate_kernel, n, dx, dy);
    REQUIRE(cudaMemcpyAsync(dz, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, s) == cudaSuccess);
    std::string why;
    cudaGraph_t graph = end_capture(why);
    REQUIRE(graph != nullptr);
    CHECK(why == "");
    std::size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 2);
    CHECK(to_host(dy, n) == zeros);  // recorded, not run
    CHECK(to_host(dz, n) == zeros);
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(to_host(dy, n) == x);
    CHECK(to_host(dz, n) == x);  // the copy ran after the kernel, in capture order
    // A replay reads what its buffers hold now: new inputs copied in between steps are used.
    std::vector<float> x2(n), want(n);
    for (i64 i = 0; i < n; ++i) {
      x2[static_cast<std::size_t>(i)] = -0.5f * static_cast<float>(i);
      want[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(i)] + x2[static_cast<std::size_t>(i)];
    }
    to_device(dx, x2);
    REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(to_host(dy, n) == want);
    CHECK(to_host(dz, n) == want);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    for (float* p : {dx, dy, dz}) cudaFree(p);
  }

  TEST_CASE("a capture-unsafe call fails and invalidates the capture, naming the call") {
    float* d = device_array<float>(64);
    std::vector<float> host(64, 1.0f);
    cudaStream_t s = gs::kernels::cuda::stream();
    const std::vector<std::pair<std::string, std::function<cudaError_t()>>> unsafe = {
        {"cudaMemcpy", [&] { return cudaMemcpy(d, host.data(), 256, cudaMemcpyHostToDevice); }},
        {"cudaMemcpyAsync", [&] { return cudaMemcpyAsync(host.data(), d, 256, cudaMemcpyDeviceToHost, s); }},
        {"cudaMalloc", [&] {
           void* p = nullptr;
           return cudaMalloc(&p, 64);
         }},
        {"cudaFree", [&] { return cudaFree(d); }},
        {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); }},
        {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); }},
        {"legacy stream", [&] {
           gs::cuda_emulator::launch("accumulate", dim3(1), dim3(64), nullptr, [] {}, {});
           return cudaGetLastError();
         }},
    };
    for (const auto& [call, f] : unsafe) {
      CAPTURE(call);
      REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
      CHECK(f() == cudaErrorStreamCaptureUnsupported);
      std::string why;
      CHECK(end_capture(why) == nullptr);
      CHECK(why.find(call) != std::string::npos);
      CHECK(why.find("invalidated") != std::string::npos);
    }
    CHECK(gs::cuda_emulator::is_device_pointer(d));  // the refused cudaFree freed nothing
    // A thread that says so may allocate during capture (the caching allocator does); a capture
    // by another thread's rules does not stop this one.
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    void* p = nullptr;
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);
    cudaThreadExchangeStreamCaptureMode(&mode);
    CHECK(mode == cudaStreamCaptureModeRelaxed);
    std::string why;
    cudaGraph_t graph = end_capture(why);
    CHECK(graph != nullptr);
    cudaGraphDestroy(graph);
    cudaFree(p);
    cudaFree(d);
  }

  TEST_CASE("a replay that would touch memory freed since its capture fails as an illegal address") {
    const i64 n = 64;
    float* dx = device_array<float>(n);
    float* dy = device_array<float>(n);
    {
      const CapturedGraph g([&] { launch("accumulate", n, 1, block_threads, accumulate_kernel, n, dx, dy); });
      CHECK(g.replay() == cudaSuccess);
      cudaFree(dy);
      CHECK(g.replay() == cudaErrorIllegalAddress);
      CHECK(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("freed since the capture") != std::string::npos);
      (void)cudaGetLastError();
    }
    cudaFree(dx);
  }

  // What makes a step capturable as one CUDA graph, and keeps eager steps from stalling on the
  // host: no copy across the host boundary between the batch's upload and the loss read-back,
  // and no host value that changes from step to step baked into a launch (Adam's step count was).
  TEST_CASE("a training step on the device makes no round trip to the host, and launches what the next one does") {
    for (const char* loss_kind : {"mse", "ce"})
      for (bool cnn : {false, true}) {
        CAPTURE(loss_kind);
        CAPTURE(cnn);
        gs::Generator gen(5);
        auto net = cnn ? gs::models::make_cnn({}, gen) : gs::models::make_mlp({.widths = {784, 64, 10}}, gen);
        net->to(gs::Device::cuda);
        gs::optim::Adam opt(net->parameters(), {}, /*decoupled_weight_decay=*/true);
        const std::int64_t n = 8;
        gs::Tensor x = gs::Tensor::full(cnn ? gs::Shape{n, 1, 28, 28} : gs::Shape{n, 784}, 0.5, gs::DType::f32, gs::Device::cuda);
        std::vector<std::int32_t> y(n);
        for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
        gs::Tensor labels = gs::Tensor::from(y, gs::Shape{n}, gs::Device::cuda);
        auto step = [&] {
          opt.zero_grad();
          gs::Tensor loss = gs::experiments::recipe_loss(loss_kind, net->forward(x), labels, 10);
          loss.backward();
          opt.step();
          return loss;
        };
        step();  // the first step creates the optimizer state
        const auto before = gs::cuda_emulator::copy_counts();
        gs::Tensor loss = step();
        const auto after = gs::cuda_emulator::copy_counts();
        CHECK(after.host_to_device == before.host_to_device);
        CHECK(after.device_to_host == before.device_to_host);
        CHECK(std::isfinite(loss.item()));
        CHECK(gs::cuda_emulator::copy_counts().device_to_host == after.device_to_host + 1);  // the counter counts

        gs::cuda_emulator::record_launches(true);
        step();
        const auto third = gs::cuda_emulator::recorded_launches();
        gs::cuda_emulator::record_launches(true);
        step();
        const auto fourth = gs::cuda_emulator::recorded_launches();
        gs::cuda_emulator::record_launches(false);
        // A step's worth. The MLP 784-64-10 has 7, with MSE or cross-entropy: two GEMMs (the
        // first, 784 deep with one column of tiles, split along its depth and then summed: two
        // launches), the loss (which also writes backward()'s seed and the gradient for it), two
        // layer backward passes and AdamW.
        const bool mse = std::string(loss_kind) == "mse";
        if (cnn)
          CHECK(third.size() >= 7);
        else
          CHECK(third.size() == 7u);
        CHECK(third == fourth);
        auto launched = [&](const std::string& kernel) {
          return std::count_if(third.begin(), third.end(), [&](const std::string& l) {
            return l.rfind(kernel + "(", 0) == 0 || l.rfind(kernel + " (", 0) == 0;  // "gemm (64 × 64 tiles)(…)"
          });
        };
        // Each dense layer's backward pass is one launch: no separate GEMM, ReLU derivative or bias sum.
        CHECK(launched("dense_backward") == 2);
        if (!cnn) {  // each Linear + ReLU is one GEMM that adds the bias and applies the ReLU as it stores
          CHECK(launched("gemm_bias_act") == 3);
          CHECK(launched("gemm_bias_act (64 × 64 tiles, split along the depth)") == 1);
          CHECK(launched("gemm_bias_act (sum of splits, bias, activation)") == 1);
          CHECK(launched("broadcast_rows") == 0);
          CHECK(launched("unary") == 0);
          CHECK(launched("gemm") == 0);
          CHECK(launched("unary_backward") == 0);
          CHECK(launched("sum_rows") == 0);
        }
        // A batch's loss is a one-block sum; the MSE reads the labels, with no one-hot targets stored;
        // the cross-entropy takes its log-softmax in the same launch. Neither launches a backward.
        CHECK(launched(mse ? "mse_one_hot" : "cross_entropy") == 1);
        CHECK(launched("log_softmax") == 0);
        CHECK(launched("mse_one_hot_backward") == 0);
        CHECK(launched("nll_backward") == 0);
        CHECK(launched("log_softmax_backward") == 0);
        CHECK(launched("one_hot") == 0);
        CHECK(launched("fill") == 0);  // backward()'s seed is written by the loss's launch
        CHECK(launched("adam_steps") == 1);  // every parameter in one launch, which also counts the step
        CHECK(launched("adam_advance") == 0);
      }
  }

  // Probes never leave the device: from factors held there, the streamed probe's companions
  // (each layer's trace kernel, the alignment's numerator, the output Gram) copy back their n × n
  // results and sums, never the n·C-row factors they are computed from.
  TEST_CASE("the NTK probe's companions from device factors copy back results, not factors") {
    gs::Generator gen(7);
    auto net = gs::models::make_mlp({.widths = {30, 40, 40, 10}}, gen);
    net->to(gs::Device::cuda);
    const std::int64_t n = 12;
    gs::Tensor x = gs::Tensor::full(gs::Shape{n, 30}, 0.25, gs::DType::f32, gs::Device::cuda);
    const auto factors = gs::probe::kernel_factors(*net, x);
    std::int64_t factor_bytes = 0;
    for (const auto& l : factors.layers)
      if (l.signals.defined()) factor_bytes += l.signals.numel() * 4;
    std::vector<std::int32_t> y;
    for (std::int64_t i = 0; i < n; ++i) y.push_back(static_cast<std::int32_t>(i % 10));
    const gs::Tensor labels = gs::Tensor::from(y, gs::Shape{n});
    const auto before = gs::cuda_emulator::copy_counts();
    const auto traces = gs::probe::layer_trace_kernels(factors);
    const double quadratic = gs::probe::target_quadratic_form(factors, labels);
    const gs::Tensor output = gs::probe::output_gram(factors);
    const auto after = gs::cuda_emulator::copy_counts();
    CHECK(std::isfinite(quadratic));
    // f64 trace kernels, the f32 output Gram (made f64 on the host), a sum per layer.
    const auto layers = static_cast<std::int64_t>(traces.size());
    const std::int64_t results = layers * n * n * 8 + n * n * 4, sums = layers * 8;
    CHECK(after.device_to_host_bytes - before.device_to_host_bytes <= results + sums);
    CHECK(after.device_to_host_bytes - before.device_to_host_bytes >= results);  // the counter counts bytes
    CHECK(factor_bytes > 4 * results);  // the factors themselves would not have fit the bound
    CHECK(after.host_to_device_bytes - before.host_to_device_bytes == n * 10 * 8);  // the labels, as Y
  }

  // Large tiles once a product has at least two of them per multiprocessor (the emulator reports
  // an H200's 132), unless a tiling is pinned; the launch names the tiling it ran.
  TEST_CASE("a GEMM's tiling follows its shape unless one is pinned") {
    using gs::kernels::GemmTiling;
    struct Unpin {
      ~Unpin() {
        gs::kernels::set_gemm_tiling(GemmTiling::by_shape);
        gs::cuda_emulator::record_launches(false);
      }
    } unpin;
    auto& be = gs::kernels::backend(gs::Device::cuda);
    const i64 m = 17 * 128, n = 16 * 128;  // 272 large tiles ≥ 264; one row of tiles fewer is 256
    gs::Tensor a = gs::Tensor::full(gs::Shape{m}, 1.0, gs::DType::f32, gs::Device::cuda);
    gs::Tensor b = gs::Tensor::full(gs::Shape{n}, 1.0, gs::DType::f32, gs::Device::cuda);
    gs::Tensor c = gs::Tensor::empty(gs::Shape{m * n}, gs::DType::f32, gs::Device::cuda);
    auto tiling_of = [&](i64 rows, GemmTiling pinned) {  // an outer product a bᵀ over `rows` rows
      gs::kernels::set_gemm_tiling(pinned);
      gs::cuda_emulator::record_launches(true);
      be.gemm(gs::DType::f32, {false, false, rows, n, 1, 1, n, n}, 1.0, a.raw(), b.raw(), 0.0, c.raw());
      const auto launches = gs::cuda_emulator::recorded_launches();
      REQUIRE(launches.size() == 1);
      return launches[0].substr(0, launches[0].find(')') + 1);
    };
    CHECK(tiling_of(m, GemmTiling::by_shape) == "gemm (128 × 128 tiles)");
    CHECK(tiling_of(m - 128, GemmTiling::by_shape) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(200, GemmTiling::by_shape) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(m, GemmTiling::small_tiles) == "gemm (64 × 64 tiles)");
    CHECK(tiling_of(200, GemmTiling::large_tiles) == "gemm (128 × 128 tiles)");
    CHECK(c.to_vector()[0] == 1.0);
  }

  // nvcc fuses a·b + c into one rounding (--fmad=true, its default); so do the emulated kernels
  // where the CPU has FMA (the top-level CMakeLists.txt). A DGEMM of −1·1 + a·a with a = 1 + 2⁻³⁰
  // tells the two apart: fused, a·a keeps its 2⁻⁶⁰ and the sum is 2⁻²⁹ + 2⁻⁶⁰; rounded first, 2⁻²⁹.
  TEST_CASE("the emulated kernels fuse multiply-adds as nvcc does") {
#if !defined(GROKSCOPE_EMULATED_FMA)
    MESSAGE("skipped: this CPU has no FMA, so the emulated kernels round every product");
#else
    const double a = 1 + std::ldexp(1.0, -30);
    gs::Tensor x = gs::Tensor::from(std::vector<double>{-1, a}, gs::Shape{2}, gs::DType::f64, gs::Device::cuda);
    gs::Tensor y = gs::Tensor::from(std::vector<double>{1, a}, gs::Shape{2}, gs::DType::f64, gs::Device::cuda);
    gs::Tensor out = gs::Tensor::empty(gs::Shape{1}, gs::DType::f64, gs::Device::cuda);
    gs::kernels::backend(gs::Device::cuda).gemm(gs::DType::f64, {false, false, 1, 1, 2, 2, 1, 1}, 1.0, x.raw(), y.raw(), 0.0,
                                                 out.raw());
    CHECK(out.to_vector()[0] == std::ldexp(1.0, -29) + std::ldexp(1.0, -60));
#endif
  }

  // The device's tanh (like exp, log and erf) may be off by an ulp or two; the emulated kernels'
  // is the host's moved by an ulp for about two arguments in three (cuda_runtime.h), so that no
  // test leans on the CPU's libm. Through a kernel: within an ulp of the host's, and not always on it.
  TEST_CASE("the emulated kernels' tanh is within an ulp of the host's, as the device's need not equal it") {
    const i64 n = 1000;
    std::vector<double> values(static_cast<std::size_t>(n));
    for (i64 i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = -3.0 + 6.0 * static_cast<double>(i) / static_cast<double>(n - 1);
    gs::Tensor x = gs::Tensor::from(values, gs::Shape{n}, gs::DType::f32, gs::Device::cuda);
    gs::Tensor y = gs::Tensor::empty(gs::Shape{n}, gs::DType::f32, gs::Device::cuda);
    gs::kernels::backend(gs::Device::cuda).unary(gs::kernels::Unary::tanh, gs::DType::f32, n, x.raw(), y.raw());
    const auto xs = x.to_vector(), ys = y.to_vector();
    i64 moved = 0, farther = 0;
    for (i64 i = 0; i < n; ++i) {
      const float host = std::tanh(static_cast<float>(xs[static_cast<std::size_t>(i)]));
      const float device = static_cast<float>(ys[static_cast<std::size_t>(i)]);
      moved += device != host;
      farther += device != host && device != std::nextafter(host, -INFINITY) && device != std::nextafter(host, INFINITY);
    }
    CHECK(farther == 0);
    CHECK(moved > n / 2);
    CHECK(moved < n);
  }

  // CUDA's __float_to_tf32 is PTX's cvt.rna.tf32.f32: to the nearest value with 10 bits of
  // mantissa, ties away from zero. 1 + 2⁻¹¹ is a tie: away gives 1 + 2⁻¹⁰, to even would give 1.
  TEST_CASE("the emulated TF32 conversion rounds to nearest, ties away from zero, as PTX's cvt.rna") {
    using nvcuda::wmma::__float_to_tf32;
    const float tie = 1.0f + std::ldexp(1.0f, -11), ulp = std::ldexp(1.0f, -10);
    CHECK(__float_to_tf32(tie) == 1.0f + ulp);
    CHECK(__float_to_tf32(-tie) == -(1.0f + ulp));
    CHECK(__float_to_tf32(std::nextafter(tie, 0.0f)) == 1.0f);
    CHECK(__float_to_tf32(1.0f + 3 * std::ldexp(1.0f, -11)) == 1.0f + 2 * ulp);  // a tie, away from zero
    CHECK(__float_to_tf32(1.0f + ulp) == 1.0f + ulp);                               // already TF32
    CHECK(__float_to_tf32(std::ldexp(1.0f, -130)) == std::ldexp(1.0f, -130));      // subnormal, in TF32 too
    CHECK(__float_to_tf32(std::ldexp(1.0f, -140)) == 0.0f);  // under half TF32's smallest subnormal, 2⁻¹³⁶
    CHECK(std::isinf(__float_to_tf32(INFINITY)));
    CHECK(std::isnan(__float_to_tf32(NAN)));
    // Into the exponent: the largest mantissa rounds up to the next power of two.
    CHECK(__float_to_tf32(std::nextafter(2.0f, 0.0f)) == 2.0f);
    // And as the tests' own rounding (tests/helpers.h, in double arithmetic) on floats of every
    // exponent, subnormals included.
    std::uint64_t state = 12345;
    int disagree = 0;
    for (int i = 0; i < 200000; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      auto bits = static_cast<std::uint32_t>(state >> 32);
      if ((bits & 0x7F800000u) == 0x7F800000u) continue;  // infinity and NaN: above
      float x;
      std::memcpy(&x, &bits, sizeof x);
      disagree += static_cast<double>(__float_to_tf32(x)) != gs::test::tf32(x);
    }
    CHECK(disagree == 0);
  }

  // The tensor-core product: exact products of TF32 values summed in FP32; and what a device
  // refuses (misaligned fragments, unconverted operands, a block of partial warps) is a sticky fault.
  TEST_CASE("emulated TF32 fragments multiply as a tensor core, and fault where a device would") {
    struct Clear {
      ~Clear() { gs::cuda_emulator::clear_fault(); }
    } clear;
    std::vector<float> a(16 * 8 + 1), b(8 * 16);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.25f * static_cast<float>(static_cast<int>(i % 7) - 3) + 1.0f / 1024;
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.5f * static_cast<float>(static_cast<int>(i % 5) - 2) + std::ldexp(1.0f, -13);
    float* da = device_array<float>(a.size());
    float* db = device_array<float>(b.size());
    float* dc = device_array<float>(16 * 16);
    REQUIRE(cudaMemcpy(da, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(db, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(error_of([&] { launch("tf32_product", 256, 1, 32, tf32_product_kernel, 0, true, da, db, dc); }) == "");
    const auto c = to_host(dc, 16 * 16);
    // Beside b's nonzero values (0.5 and 1 in magnitude) its 2⁻¹³ is below half of TF32's ulp and
    // rounds away; where b is 2⁻¹³ alone it stays. a's 2⁻¹⁰ stays, as TF32 holds it at a's
    // magnitudes below 1. Each product is then exact.
    double worst = 0;
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        double want = 0;
        for (int p = 0; p < 8; ++p) {
          const double bv = 0.5 * (((p * 16 + j) % 5) - 2) + (((p * 16 + j) % 5) == 2 ? std::ldexp(1.0, -13) : 0.0);
          want += static_cast<double>(a[static_cast<std::size_t>(i * 8 + p)]) * bv;
        }
        worst = std::max(worst, std::abs(c[static_cast<std::size_t>(i * 16 + j)] - want));
      }
    CHECK(worst <= 8 * std::ldexp(1.0, -21));  // 8 FP32 roundings of sums below 8; b unrounded would be 2⁻¹³ off

    auto fault_of = [&](int shift, bool convert, unsigned threads) {
      const std::string e = error_of([&] { launch("tf32_product", 256, 1, threads, tf32_product_kernel, shift, convert, da, db, dc); });
      gs::cuda_emulator::clear_fault();
      return e;
    };
    const std::string misaligned = fault_of(1, true, 32);
    CHECK(misaligned.find("load_matrix_sync: the pointer must be 256-bit aligned") != std::string::npos);
    CHECK(misaligned.find("in tf32_product") != std::string::npos);
    CHECK(fault_of(0, false, 32).find("did not pass __float_to_tf32") != std::string::npos);
    CHECK(fault_of(0, true, 48).find("not whole warps") != std::string::npos);
    CHECK(fault_of(0, true, 64) == "");
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
  }
}
