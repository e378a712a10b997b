#pragma once
// Shared by every kernel family interface: the integer type for sizes and the error raised when a
// backend lacks an entry point (so a missing CUDA kernel is a readable error, never a link error).
#include <cstdint>

#include "engine/dtype.h"

// For the few helpers that one definition serves to the CPU backend and to CUDA kernels.
#if defined(__CUDACC__)
#define GS_HOST_DEVICE __host__ __device__
#else
#define GS_HOST_DEVICE
#endif

namespace gs::kernels {

using i64 = std::int64_t;

[[noreturn]] void missing_kernel(const char* backend, const char* entry_point);

}  // namespace gs::kernels
