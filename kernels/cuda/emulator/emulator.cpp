// The CPU emulation of the CUDA runtime declared in cuda_runtime.h: a single device with one
// in-order queue, on which every launch and copy completes before it returns. This file holds
// the errors, the device's description and the tests' hooks; the device memory is in
// device_memory.cpp, the running of kernels in blocks.cpp, the memory calls and copies in
// memory_calls.cpp, streams and graphs in streams.cpp.
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/emulator/device_memory.h"
#include "kernels/cuda/emulator/runtime_state.h"

namespace gs::cuda_emulator {

thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t detail_code = cudaSuccess;
thread_local std::string detail_message;

cudaError_t fail(cudaError_t code, std::string message) {
  last_error = code;
  detail_code = code;
  detail_message = std::move(message) + " [cuda emulator]";
  return code;
}

cudaError_t sticky = cudaSuccess;
std::string sticky_message;

cudaError_t broken(const char* call) { return fail(sticky, std::string(call) + ": " + sticky_message); }

std::recursive_mutex& device_queue() {
  static std::recursive_mutex m;
  return m;
}

CopyCounts counts;

namespace {

bool recording = false;
std::vector<std::string> launch_log;

}  // namespace

void record_launches(bool on) {
  std::lock_guard lock(device_queue());
  recording = on;
  launch_log.clear();
}

bool recording_launches() {
  std::lock_guard lock(device_queue());
  return recording;
}

std::vector<std::string> recorded_launches() {
  std::lock_guard lock(device_queue());
  return launch_log;
}

void note_launch(const char* kernel, std::string arguments) {
  std::lock_guard lock(device_queue());
  launch_log.push_back(std::string(kernel) + "(" + arguments + ")");
}

CopyCounts copy_counts() {
  std::lock_guard lock(device_queue());
  return counts;
}

bool is_device_pointer(const void* ptr) {
  std::lock_guard lock(device_queue());
  return memory().holds(ptr, 1);
}

std::size_t memory_in_use() {
  std::lock_guard lock(device_queue());
  return memory().in_use();
}

void set_memory_limit(std::size_t bytes) {
  std::lock_guard lock(device_queue());
  memory().set_limit(bytes);
}

void refuse_launch(const char* kernel, const char* why) { fail(cudaErrorInvalidValue, std::string(kernel) + ": " + why); }

}  // namespace gs::cuda_emulator

// The runtime calls below are CUDA's, at global scope, on the emulator's state (runtime_state.h).
using namespace gs::cuda_emulator;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: the emulator has one device, 0");
  if (attr != cudaDevAttrMultiProcessorCount) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  *value = 132;
  return cudaSuccess;
}

// A sticky error is returned again and again: it cannot be cleared.
cudaError_t cudaGetLastError() {
  if (sticky) return broken("the device");
  const cudaError_t e = gs::cuda_emulator::last_error;
  gs::cuda_emulator::last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return sticky ? broken("the device") : gs::cuda_emulator::last_error; }

const char* cudaGetErrorString(cudaError_t status) {
  if (status == gs::cuda_emulator::detail_code && !gs::cuda_emulator::detail_message.empty())
    return gs::cuda_emulator::detail_message.c_str();
  switch (status) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}
