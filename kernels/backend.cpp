#include "kernels/backend.h"

#include <atomic>

#include "engine/error.h"
#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels {

// kernels/cuda/memory.cu. Without nvcc's build it is weak: absent, unless a binary links the CPU
// emulation of the CUDA backend (the gpu_emulated tests do).
#ifdef GROKSCOPE_WITH_CUDA
Backend* cuda_backend_or_null(const char** reason);
#else
[[gnu::weak]] Backend* cuda_backend_or_null(const char** reason);
#endif

namespace {
std::atomic<GemmTiling> pinned_gemm_tiling{GemmTiling::by_shape};
std::atomic<GemmSplit> pinned_gemm_split{GemmSplit::by_shape};
std::atomic<GemmPrecision> pinned_gemm_precision{GemmPrecision::fp32};
std::atomic<bool> overlapped{false};
}  // namespace
void set_overlapped_launches(bool on) { overlapped = on; }
bool overlapped_launches() { return overlapped; }
void set_gemm_tiling(GemmTiling tiling) { pinned_gemm_tiling = tiling; }
GemmTiling gemm_tiling() { return pinned_gemm_tiling; }
void set_gemm_split(GemmSplit split) { pinned_gemm_split = split; }
GemmSplit gemm_split() { return pinned_gemm_split; }
void set_gemm_precision(GemmPrecision precision) { pinned_gemm_precision = precision; }
GemmPrecision gemm_precision() { return pinned_gemm_precision; }

void missing_kernel(const char* backend_name, const char* entry_point) {
  fail("{} has no {} implementation yet; run this op on the cpu device", entry_point, backend_name);
}

Backend& cpu_backend() {
  static cpu::CpuBackend instance;
  return instance;
}

namespace {
Backend* probe_cuda(const char** reason) {
#ifdef GROKSCOPE_WITH_CUDA
  return cuda_backend_or_null(reason);
#else
  if (cuda_backend_or_null) return cuda_backend_or_null(reason);
  *reason =
      "this grokscope was built without CUDA; configure it with `cmake --preset cuda` on a machine "
      "with nvcc to use the cuda device";
  return nullptr;
#endif
}

struct CudaProbe {
  const char* reason = "";
  Backend* backend = probe_cuda(&reason);
};

const CudaProbe& cuda_probe() {
  static CudaProbe probe;
  return probe;
}
}  // namespace

bool cuda_available() { return cuda_probe().backend != nullptr; }
const char* cuda_unavailable_reason() { return cuda_probe().reason; }

Backend& backend(Device device) {
  if (device == Device::cpu) return cpu_backend();
  const auto& probe = cuda_probe();
  if (!probe.backend) fail("the cuda device is not available: {}", probe.reason);
  return *probe.backend;
}

}  // namespace gs::kernels
