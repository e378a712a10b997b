#pragma once
// What the emulator's parts share, all of it used under the device queue's lock: the errors and
// the sticky fault (emulator.cpp), the running of kernels (blocks.cpp), copies (memory_calls.cpp)
// and the work a stream records while it is captured (streams.cpp). The kernels see none of it:
// cuda_runtime.h is theirs.
#include "kernels/cuda/emulator/cuda_runtime.h"

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gs::cuda_emulator {

// ---- errors ----------------------------------------------------------------------------------

// What cudaGetLastError returns next, and the detail of the most recent failure, which
// cudaGetErrorString returns for its code.
extern thread_local cudaError_t last_error;
extern thread_local cudaError_t detail_code;
extern thread_local std::string detail_message;
// Records a failure for cudaGetLastError and returns its code.
cudaError_t fail(cudaError_t code, std::string message);

// A kernel's fault on a GPU is sticky: the context is unusable, and every later call returns the
// error until the process ends. Tests inject one (inject_fault) to see a run report it.
extern cudaError_t sticky;
extern std::string sticky_message;
// Fails `call` with the sticky fault.
cudaError_t broken(const char* call);

// One device, one in-order queue: every runtime call holds this, so launches and copies from
// different host threads run one after the other (the shared-memory statics are the device's).
std::recursive_mutex& device_queue();

extern CopyCounts counts;

// ---- kernels and copies ----------------------------------------------------------------------

// Runs a kernel whose configuration was checked (blocks.cpp).
void run_kernel(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& kernel_body, bool overlapped);

// Copies between checked pointers at once, counting the copies across the host boundary.
void copy_now(void* dst, const void* src, std::size_t bytes, bool dst_device, bool src_device);
// The host waits for the device (`at`): every queued copy into pinned memory lands
// (memory_calls.cpp).
cudaError_t land_copies(const char* at);

// ---- streams and graphs ----------------------------------------------------------------------

// A recorded kernel launch (body set) or device-to-device copy (body empty).
struct Operation {
  std::string kernel;
  dim3 grid, block;
  std::function<void()> body;
  std::vector<const void*> pointers;
  void* dst;
  const void* src;
  std::size_t bytes;
  bool overlapped = false;  // launched to overlap the kernel before it
};

// A call that is unsafe while a capture is active (CUDA's "potentially unsafe API calls"): if it
// conflicts with the capture in progress, the capture is invalidated and the call must fail with
// cudaErrorStreamCaptureUnsupported (true). Relaxed captures, or a relaxed calling thread, allow
// it (streams.cpp).
bool unsafe_during_capture(const char* call);

}  // namespace gs::cuda_emulator

struct CUstream_st {
  bool capturing = false, invalidated = false;
  std::string why_invalidated;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  std::vector<gs::cuda_emulator::Operation> operations;
};
struct CUgraph_st {
  std::vector<gs::cuda_emulator::Operation> operations;
};
struct CUgraphExec_st {
  std::vector<gs::cuda_emulator::Operation> operations;
};
