// The emulator's memory calls: cudaMalloc and cudaFree, page-locked host memory, copies and
// memsets. Every copy runs at once, in order with the one queue; a queued copy into pinned host
// memory lands only when the host next waits for the device.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kernels/cuda/emulator/device_memory.h"
#include "kernels/cuda/emulator/runtime_state.h"

namespace gs::cuda_emulator {

namespace {

// Page-locked host memory, and the queued copies to or from it still "in flight". The emulator
// runs every copy at once, but a queued copy into pinned memory lands only when the host next
// waits for the device (its bytes read NaN until then), and pinned memory that a queued copy to
// the device read must not change before then: host code that reads a result too early, or
// reuses a buffer too soon, fails here as it would race on a GPU.
struct InFlight {
  char* host;
  std::vector<char> bytes;  // to the host: what lands; to the device: what was read
  bool to_host;
};
std::map<const char*, std::size_t>& pinned_blocks() {
  static std::map<const char*, std::size_t> blocks;  // start → size
  return blocks;
}
std::vector<InFlight>& in_flight() {
  static std::vector<InFlight> copies;
  return copies;
}
bool pinned(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = pinned_blocks().upper_bound(c);
  if (it == pinned_blocks().begin()) return false;
  --it;
  return c + bytes <= it->first + it->second;
}
}  // namespace

cudaError_t land_copies(const char* at) {
  auto& copies = in_flight();
  std::string changed;
  for (const auto& c : copies) {
    if (c.to_host)
      std::memcpy(c.host, c.bytes.data(), c.bytes.size());
    else if (std::memcmp(c.host, c.bytes.data(), c.bytes.size()) != 0)
      changed = std::to_string(c.bytes.size()) + "-byte";
  }
  copies.clear();
  if (!changed.empty())
    return fail(cudaErrorIllegalState, "the pinned host memory of a queued " + changed +
                                           " copy to the device changed before the copy was waited for (" + at + ")");
  return cudaSuccess;
}

void copy_now(void* dst, const void* src, std::size_t bytes, bool dst_device, bool src_device) {
  if (src_device != dst_device) {
    ++(dst_device ? counts.host_to_device : counts.device_to_host);
    (dst_device ? counts.host_to_device_bytes : counts.device_to_host_bytes) += static_cast<std::int64_t>(bytes);
  }
  DeviceMemory::Open open(memory());
  std::memmove(dst, src, bytes);
}

}  // namespace gs::cuda_emulator

// The runtime calls below are CUDA's, at global scope, on the emulator's state (runtime_state.h).
using namespace gs::cuda_emulator;

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMalloc");
  if (unsafe_during_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  *ptr = memory().allocate(bytes);
  if (!*ptr) return fail(cudaErrorMemoryAllocation, "out of memory for cudaMalloc of " + std::to_string(bytes) + " bytes");
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (unsafe_during_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
  if (!memory().release(ptr)) return fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  return sticky ? broken("cudaFree") : cudaSuccess;  // freed here all the same, so leak checkers stay quiet
}

cudaError_t cudaMallocHost(void** ptr, std::size_t bytes) {
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMallocHost");
  if (unsafe_during_capture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
  *ptr = std::malloc(bytes == 0 ? 1 : bytes);
  if (!*ptr) return fail(cudaErrorMemoryAllocation, "cudaMallocHost of " + std::to_string(bytes) + " bytes");
  pinned_blocks()[static_cast<const char*>(*ptr)] = bytes == 0 ? 1 : bytes;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::lock_guard lock(device_queue());
  if (unsafe_during_capture("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
  const auto block = pinned_blocks().find(static_cast<const char*>(ptr));
  if (block != pinned_blocks().end()) {
    auto& copies = in_flight();
    const auto into_block = [&](const InFlight& c) { return c.host >= block->first && c.host < block->first + block->second; };
    if (sticky)  // a faulted device runs nothing more: the block's queued copies never land
      copies.erase(std::remove_if(copies.begin(), copies.end(), into_block), copies.end());
    else if (std::any_of(copies.begin(), copies.end(), into_block))
      return fail(cudaErrorIllegalState, "cudaFreeHost of pinned memory a queued copy has not finished with");
    pinned_blocks().erase(block);
  }
  std::free(ptr);
  return sticky ? broken("cudaFreeHost") : cudaSuccess;
}

namespace {

// Checks a copy's pointers against its direction; on success says which side is device memory.
cudaError_t check_copy(const char* call, void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                       bool& dst_device, bool& src_device) {
  auto& m = memory();
  dst_device = m.holds(dst, bytes);
  src_device = m.holds(src, bytes);
  const bool dst_ok = (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) ? dst_device
                      : kind == cudaMemcpyDefault                                        ? true
                                                                                        : !m.contains(dst);
  const bool src_ok = (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) ? src_device
                      : kind == cudaMemcpyDefault                                        ? true
                                                                                        : !m.contains(src);
  if (!dst_ok || !src_ok)
    return fail(cudaErrorInvalidValue, std::string(call) + " of " + std::to_string(bytes) + " bytes: the " +
                                           (dst_ok ? "source" : "destination") +
                                           " is not where the copy's direction says (or runs past its allocation)");
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemcpy");
  if (unsafe_during_capture("a synchronous cudaMemcpy")) return cudaErrorStreamCaptureUnsupported;
  // It waits for the work queued before it (every stream here is a blocking one).
  if (const cudaError_t e = land_copies("cudaMemcpy")) return e;
  bool dst_device = false, src_device = false;
  if (const cudaError_t e = check_copy("cudaMemcpy", dst, src, bytes, kind, dst_device, src_device)) return e;
  copy_now(dst, src, bytes, dst_device, src_device);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemcpyAsync");
  if (!stream && unsafe_during_capture("a cudaMemcpyAsync on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  bool dst_device = false, src_device = false;
  if (const cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind, dst_device, src_device)) return e;
  if (stream && stream->capturing) {
    // A graph may copy between device buffers only: host memory that is not pinned cannot be.
    if (!dst_device || !src_device) {
      if (!stream->invalidated) {
        stream->invalidated = true;
        stream->why_invalidated = "a cudaMemcpyAsync between host and device memory while the stream was being captured";
      }
      return fail(cudaErrorStreamCaptureUnsupported, "cudaMemcpyAsync from or to host memory during stream capture");
    }
    stream->operations.push_back({"device-to-device copy", dim3(), dim3(), {}, {dst, src}, dst, src, bytes});
    return cudaSuccess;
  }
  if (stream && !dst_device && src_device && pinned(dst, bytes)) {  // lands at the next wait
    InFlight c{static_cast<char*>(dst), std::vector<char>(bytes), true};
    copy_now(c.bytes.data(), src, bytes, false, true);
    std::memset(dst, 0xff, bytes);
    in_flight().push_back(std::move(c));
    return cudaSuccess;
  }
  if (stream && dst_device && !src_device && pinned(src, bytes)) {  // its source must hold until then
    const char* host = static_cast<const char*>(src);
    in_flight().push_back({const_cast<char*>(host), std::vector<char>(host, host + bytes), false});
  }
  copy_now(dst, src, bytes, dst_device, src_device);
  return cudaSuccess;
}

namespace {

cudaError_t memset_now(const char* call, void* ptr, int value, std::size_t bytes) {
  if (!memory().holds(ptr, bytes)) return fail(cudaErrorInvalidValue, std::string(call) + " outside a device allocation");
  gs::cuda_emulator::DeviceMemory::Open open(memory());
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemset");
  if (unsafe_during_capture("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  return memset_now("cudaMemset", ptr, value, bytes);
}

// In order with the queue, so done at once. Not emulated while the stream is being captured (a
// GPU would record a memset node); nothing here needs it.
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  std::lock_guard lock(device_queue());
  if (sticky) return broken("cudaMemsetAsync");
  if (!stream && unsafe_during_capture("a cudaMemsetAsync on the legacy stream")) return cudaErrorStreamCaptureUnsupported;
  if (stream && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cudaMemsetAsync during a capture is not emulated");
  return memset_now("cudaMemsetAsync", ptr, value, bytes);
}
