#pragma once
// Every CUDA call and launch is checked; the error names the call and the sizes involved.
#include <cuda_runtime.h>

#include "engine/error.h"

#define GS_CUDA_CHECK(call, ...)                                                              \
  do {                                                                                        \
    cudaError_t gs_status_ = (call);                                                          \
    if (gs_status_ != cudaSuccess)                                                            \
      ::gs::fail("{} failed: {} ({})", #call, cudaGetErrorString(gs_status_), fmt::format(__VA_ARGS__)); \
  } while (0)

#define GS_CUDA_LAUNCH_CHECK(kernel, ...) GS_CUDA_CHECK(cudaGetLastError(), "launch of " kernel ": " __VA_ARGS__)
