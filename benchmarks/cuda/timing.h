#pragma once
// How bench_cuda times and reports: CUDA-event and wall-clock medians, and one table's failure
// kept from stopping the others.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace gs::bench_cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median over 5 batches of the per-call time of f, in seconds, timed with CUDA events.
template <class F>
double median_seconds(F&& f, int calls_per_batch) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) f();  // warm-up
  std::vector<double> t;
  for (int batch = 0; batch < 5; ++batch) {
    check(cudaEventRecord(start), "record");
    for (int i = 0; i < calls_per_batch; ++i) f();
    check(cudaEventRecord(stop), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    t.push_back(ms * 1e-3 / calls_per_batch);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(t.begin(), t.end());
  return t[2];
}

// Wall-clock median over 5 batches of `calls` calls, for work that waits on the host (copies,
// read-backs); the first batch is a warm-up.
template <class F>
double wall_median_seconds(F&& f, int calls) {
  std::vector<double> t;
  for (int batch = 0; batch < 6; ++batch) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f();
    if (batch > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

// One table's failure (a refused launch, a missing library) is printed and the next still runs.
template <class F>
void section(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::printf("\n%s: failed: %s\n", what, e.what());
  }
}

}  // namespace gs::bench_cuda
