#pragma once
// Shared by every kernel family interface: the integer type for sizes and the error raised when a
// backend lacks an entry point (so a missing CUDA kernel is a readable error, never a link error).
#include <cstdint>

#include "engine/dtype.h"

// For the few helpers that one definition serves to the CPU backend and to CUDA kernels
// (GS_SHARED_INLINE for free functions). The emulated kernels are compiled to round as the device
// does (fused multiply-adds, CMakeLists.txt) and the CPU backend is not, so there each emulated
// file keeps its own copy (static): otherwise the linker would keep one of the two out-of-line
// copies for both sides, and hand one of them the other's rounding.
#if defined(__CUDACC__)
#define GS_HOST_DEVICE __host__ __device__
#define GS_SHARED_INLINE __host__ __device__ inline
#elif defined(GROKSCOPE_CUDA_EMULATED)
#define GS_HOST_DEVICE
#define GS_SHARED_INLINE static inline
#else
#define GS_HOST_DEVICE
#define GS_SHARED_INLINE inline
#endif

namespace gs::kernels {

using i64 = std::int64_t;

[[noreturn]] void missing_kernel(const char* backend, const char* entry_point);

}  // namespace gs::kernels
