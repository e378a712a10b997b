#pragma once
// What the emulator's own tests (test_cuda_emulator*.cpp) share: device arrays and copies that
// fail the test when the runtime refuses them, an error's text, a child process's exit status,
// and a captured graph. Only the emulated test binary includes it.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/error_type.h"
#include "kernels/cuda/cuda_backend.h"

using gs::Error;
using gs::kernels::i64;
using gs::kernels::cuda::launch;

namespace {

constexpr int block_threads = 256;

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

// y += x (the fault and graph tests' kernel; not every file that includes this uses it).
[[maybe_unused]] __global__ void accumulate_kernel(i64 n, const float* x, float* y) {
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

}  // namespace
