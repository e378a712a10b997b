// The emulator's device memory (test_cuda_emulator.cpp says why these exist): fresh memory is
// NaN, copies go the way they say, pinned memory's queued copies land when the host waits, the
// caching allocator's blocks are poisoned and handed back when the device is full, a fault is
// sticky, host code cannot read device memory, and a kernel cannot write past its allocation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <csignal>

#include "cuda_emulator_tools.h"
#include "engine/allocator.h"

namespace {

#if defined(__SANITIZE_ADDRESS__)
__global__ void write_past_end_kernel(i64 n, float* y) {
  if (threadIdx.x == 0) y[n] = 1;  // one element past the allocation
}
#endif

}  // namespace

TEST_SUITE("cuda_emulator") {
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
}
