// The emulator's streams and graphs. One in-order queue serves every stream; work issued to a
// stream that is being captured is recorded instead of run, and cudaGraphLaunch runs the
// recording again, on the addresses it was captured with.
#include <string>
#include <thread>
#include <utility>

#include "kernels/cuda/emulator/device_memory.h"
#include "kernels/cuda/emulator/runtime_state.h"

namespace gs::cuda_emulator {

namespace {

CUstream_st* capture_in_progress = nullptr;  // one capture at a time, under the device queue's lock
thread_local cudaStreamCaptureMode thread_capture_mode = cudaStreamCaptureModeGlobal;

}  // namespace

bool unsafe_during_capture(const char* call) {
  CUstream_st* s = capture_in_progress;
  if (!s || s->mode == cudaStreamCaptureModeRelaxed || thread_capture_mode == cudaStreamCaptureModeRelaxed) return false;
  if (s->mode == cudaStreamCaptureModeThreadLocal && s->thread != std::this_thread::get_id()) return false;
  if (!s->invalidated) {
    s->invalidated = true;
    s->why_invalidated = std::string(call) + " while the stream was being captured";
  }
  fail(cudaErrorStreamCaptureUnsupported, std::string(call) + " is not allowed while a stream is being captured");
  return true;
}

}  // namespace gs::cuda_emulator

// The runtime calls below are CUDA's, at global scope, on the emulator's state (runtime_state.h).
using namespace gs::cuda_emulator;

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  (void)flags;  // one queue: blocking or not, every stream is ordered with every other
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamCreateWithFlags");
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard lock(device_queue());
  if (!stream || stream->capturing) return fail(cudaErrorInvalidValue, "cudaStreamDestroy of the legacy stream or of a stream being captured");
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamSynchronize");
  if (stream && stream->capturing) {
    if (!stream->invalidated) {
      stream->invalidated = true;
      stream->why_invalidated = "cudaStreamSynchronize of the stream being captured";
    }
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize of a stream being captured");
  }
  if (unsafe_during_capture("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return land_copies("cudaStreamSynchronize");
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaStreamBeginCapture");
  if (!stream) return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture on the legacy stream");
  if (capture_in_progress) return fail(cudaErrorIllegalState, "cudaStreamBeginCapture while another capture is in progress");
  stream->capturing = true;
  stream->invalidated = false;
  stream->why_invalidated.clear();
  stream->mode = mode;
  stream->thread = std::this_thread::get_id();
  stream->operations.clear();
  capture_in_progress = stream;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard lock(device_queue());
  *graph = nullptr;
  if (!stream || !stream->capturing) return fail(cudaErrorIllegalState, "cudaStreamEndCapture of a stream that is not being captured");
  if (stream->mode != cudaStreamCaptureModeRelaxed && stream->thread != std::this_thread::get_id())
    return fail(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture from another thread than the one that began it");
  stream->capturing = false;
  capture_in_progress = nullptr;
  auto operations = std::move(stream->operations);
  stream->operations.clear();
  if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by " + stream->why_invalidated);
  *graph = new CUgraph_st{std::move(operations)};
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard lock(device_queue());
  *status = !stream || !stream->capturing ? cudaStreamCaptureStatusNone
            : stream->invalidated         ? cudaStreamCaptureStatusInvalidated
                                          : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  std::swap(*mode, gs::cuda_emulator::thread_capture_mode);
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count) {
  if (!graph || nodes) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: the emulator only counts a graph's nodes");
  *count = graph->operations.size();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  (void)flags;
  if (!graph) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate of a null graph");
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaGraphInstantiate");
  *exec = new CUgraphExec_st{graph->operations};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch of a null graph");
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaGraphLaunch");
  if (stream && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a stream being captured");
  if (!stream && unsafe_during_capture("cudaGraphLaunch on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  for (const auto& op : exec->operations) {
    // A graph runs on the addresses it was captured with: memory freed since is an illegal access.
    for (const void* p : op.pointers)
      if (!memory().holds(p, 1))
        return fail(cudaErrorIllegalAddress, "graph replay: " + op.kernel + " uses device memory freed since the capture");
    if (!op.body) {
      if (!memory().holds(op.dst, op.bytes) || !memory().holds(op.src, op.bytes))
        return fail(cudaErrorIllegalAddress, "graph replay: a device-to-device copy runs past memory freed since the capture");
      copy_now(op.dst, op.src, op.bytes, true, true);
      continue;
    }
    gs::cuda_emulator::run_kernel(op.kernel.c_str(), op.grid, op.block, op.body, op.overlapped);
    if (sticky) return cudaSuccess;  // a fault: the calls after this one report it
    if (gs::cuda_emulator::last_error != cudaSuccess) return gs::cuda_emulator::last_error;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  std::lock_guard lock(device_queue());
  delete exec;
  return sticky ? broken("cudaGraphExecDestroy") : cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  std::lock_guard lock(device_queue());
  delete graph;
  return sticky ? broken("cudaGraphDestroy") : cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaDeviceSynchronize");
  if (unsafe_during_capture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return land_copies("cudaDeviceSynchronize");
}

