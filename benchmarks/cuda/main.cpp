// bench_cuda: the CUDA backend's kernels against the vendor libraries, in one process, as
// markdown tables: our GEMMs against cuBLAS (gemm.cpp), our convolutions against cuDNN
// (conv.cpp), the training steps eager and as graphs (training_step.cpp), and the geometry and
// NTK probes on the GPU (probes.cpp). cuBLAS and cuDNN are loaded at run time
// (vendor_libraries.h); without them the baseline columns say so.
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "benchmarks/cuda/tables.h"
#include "benchmarks/cuda/timing.h"
#include "kernels/backend.h"

using namespace gs;
using namespace gs::bench_cuda;

int main(int argc, char** argv) {
  // Line by line even into a file: stopped at gpu_check.sh's limit, it keeps every row printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (argc > 2 || (!mode.empty() && mode != "--replay-step")) {
    std::fprintf(stderr, "usage: bench_cuda [--replay-step]\n  (no argument: every table; --replay-step: only "
                         "3 replays of the MNIST MLP's training step, for a profiler)\n");
    return 2;
  }
  if (!kernels::cuda_available()) {
    std::printf("bench_cuda: no usable CUDA device: %s\n", kernels::cuda_unavailable_reason());
    return 77;
  }
  if (mode == "--replay-step") {
    replay_step_for_profiler();
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device properties");
  Cublas cublas;
  const bool have_cublas = cublas.load();
  std::printf("device: %s (sm_%d%d), cuBLAS: %s\n\n", prop.name, prop.major, prop.minor,
              have_cublas ? cublas.origin.c_str() : "not found (set LD_LIBRARY_PATH to a libcublas.so.13 or .12)");
  gemm_tables(have_cublas ? &cublas : nullptr);
  section("dense layer forward", bench_dense_forward);

  Cudnn cudnn;
  const bool have_cudnn = cudnn.load();
  std::printf("\ncuDNN: %s\n\n", have_cudnn ? "libcudnn.so.9" : "not found (set LD_LIBRARY_PATH to a libcudnn.so.9)");
  conv_tables(have_cudnn ? &cudnn : nullptr);
  training_step_tables();
  section("geometry probe", bench_geometry_layer);
  section("NTK probe", bench_ntk_probe);
  return 0;
}
