// Capturing the backend's stream as a CUDA graph, and replaying it.
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels {

struct CapturedWork {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  i64 operations = 0;
};

namespace cuda {

bool CudaBackend::begin_capture(std::string& why_not) {
  // Thread-local: a capture-unsafe call from this thread (a synchronous copy, a wait) ends the
  // capture invalidated, and other threads, which never use this device meanwhile, are left alone.
  const cudaError_t status = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal);
  if (status == cudaSuccess) return true;
  (void)cudaGetLastError();
  why_not = std::string("cudaStreamBeginCapture failed: ") + cudaGetErrorString(status);
  return false;
}

CapturedWork* CudaBackend::end_capture(std::string& why_not) {
  cudaGraph_t graph = nullptr;
  const cudaError_t status = cudaStreamEndCapture(stream(), &graph);
  if (status != cudaSuccess || !graph) {
    why_not = std::string("the capture failed: ") + cudaGetErrorString(status);
    (void)cudaGetLastError();  // the failed call must not be reported by the next launch check
    if (graph) cudaGraphDestroy(graph);
    return nullptr;
  }
  auto* work = new CapturedWork{graph, nullptr, 0};
  std::size_t nodes = 0;
  GS_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes), "counting a captured graph's nodes");
  work->operations = static_cast<i64>(nodes);
  const cudaError_t made = cudaGraphInstantiate(&work->exec, graph, 0);
  if (made != cudaSuccess) {
    why_not = std::string("cudaGraphInstantiate failed: ") + cudaGetErrorString(made);
    (void)cudaGetLastError();
    cudaGraphDestroy(graph);
    delete work;
    return nullptr;
  }
  return work;
}

void CudaBackend::replay(CapturedWork* work) {
  GS_CUDA_CHECK(cudaGraphLaunch(work->exec, stream()),
                "replaying a captured graph of " + std::to_string(work->operations) + " operations");
}

void CudaBackend::destroy(CapturedWork* work) {
  if (!work) return;
  cudaGraphExecDestroy(work->exec);
  cudaGraphDestroy(work->graph);
  delete work;
}

i64 CudaBackend::recorded_operations(const CapturedWork* work) const { return work ? work->operations : 0; }

}  // namespace cuda

}  // namespace gs::kernels
