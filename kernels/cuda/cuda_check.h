#pragma once
// Every CUDA call and launch is checked; the error names the call and the sizes involved.
#include <cuda_runtime.h>

#include <string>

#include "engine/error_type.h"

namespace gs::kernels {
[[noreturn]] inline void cuda_failed(const char* call, cudaError_t status, const std::string& detail) {
  throw Error(std::string(call) + " failed: " + cudaGetErrorString(status) + " (" + detail + ")");
}
}  // namespace gs::kernels

#define GS_CUDA_CHECK(call, detail)                                                \
  do {                                                                             \
    cudaError_t gs_status_ = (call);                                               \
    if (gs_status_ != cudaSuccess) ::gs::kernels::cuda_failed(#call, gs_status_, detail); \
  } while (0)

// After a launch: the kernel's name and its element count.
#define GS_CUDA_LAUNCH_CHECK(kernel, n) \
  GS_CUDA_CHECK(cudaGetLastError(), std::string("launch of ") + kernel + ", n = " + std::to_string(n))
