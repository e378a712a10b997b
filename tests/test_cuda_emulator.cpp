// The CPU emulation of the CUDA runtime (kernels/cuda/emulator/) must catch what a GPU would
// punish, or the gpu_emulated run of the gpu suite proves less than it seems. Each case here
// runs a small kernel that is wrong in one way and checks that the emulator notices. This file:
// threads and blocks (barriers, indexing, the blocks' order, shared memory, overlapped launches,
// launch limits); test_cuda_emulator_memory.cpp, _graphs.cpp and _arithmetic.cpp the rest.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda_emulator_tools.h"
#include "temp_dir.h"

namespace {

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
}
