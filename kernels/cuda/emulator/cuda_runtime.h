#pragma once
// A CPU stand-in for the part of the CUDA runtime that kernels/cuda/*.cu uses, so that the very
// same kernel source builds with g++ and runs on a machine without a GPU (the cuda_emulated
// tests). It is found instead of the real <cuda_runtime.h> by include order only.
//
// What it models, because a GPU would punish it:
//   - kernels become plain functions; every thread of a block runs as a fiber on the calling
//     thread, and __syncthreads() switches fibers, in a different order after every barrier, so
//     a missing barrier shows up as a wrong result instead of passing by luck;
//   - a barrier reached by some threads of a block and not others is a launch failure;
//   - the blocks of a launch run ascending, descending or shuffled, in turn from one launch to
//     the next, so that a block that depends on another block of its launch fails under one;
//     and two at a time, a barrier phase of each in turn (their shared memory set aside and
//     restored), so that two blocks that use the same global scratch meet each other's writes;
//   - fresh device memory holds NaN bytes (all ones) until written;
//   - device memory lives in one reserved region that is inaccessible (PROT_NONE) except while a
//     kernel or a cudaMemcpy runs: host code that dereferences a device pointer crashes here as
//     it would on a GPU, and a kernel handed a host pointer is refused at launch;
//   - launch configurations outside CUDA's limits fail as cudaErrorInvalidConfiguration;
//   - cudaMemcpy checks that its direction matches where the pointers live;
//   - a test may give the device a memory size, past which cudaMalloc fails as on a full GPU;
//   - in an AddressSanitizer build, a kernel that reads or writes past its allocation, or memory
//     already freed, is reported as ASan reports a heap overflow;
//   - a kernel's fault (injected by a test) is sticky, as on a GPU: later calls return it;
//   - a kernel launched to overlap the one before it (programmatic dependent launch) must wait
//     for it in every thread before that thread's first barrier or end, or the launch fails;
//   - streams and graphs: work issued to a stream that is being captured is recorded, not run,
//     and cudaGraphLaunch runs the recording again; a capture-unsafe call made while a capture
//     is active (cudaMalloc, cudaFree, a synchronous copy, a wait for the device, a copy from
//     host memory, any work on the legacy stream) fails and invalidates the capture, and a
//     replayed kernel whose memory was freed since its capture fails as an illegal address;
//   - a block's shared memory starts as NaN bytes, as garbage would on a GPU (the build copies
//     the kernels with a poison_shared call after each __shared__ declaration);
//   - the kernels fuse a·b + c into one rounding, as nvcc does by default, where the CPU has FMA
//     (the build compiles them with -mfma -ffp-contract=fast; the compiler's choice of which
//     products to fuse need not be nvcc's, so the rounding is alike in kind, not bit for bit);
//   - the kernels' exp, log, tanh and erf are off the host's by an ulp for most arguments, as the
//     device's may be (below);
//   - warp matrix functions (TF32 tensor-core fragments) in mma.h, each thread holding a whole
//     tile, with the alignment and conversion rules a device enforces;
// What it does not model: timing, warps otherwise (no other warp-synchronous code is used), and
// concurrency between streams (every stream is one in-order queue).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A static is the running block's shared memory: launches are serialized, and of the two blocks
// that run at once, the one not running has its shared variables set aside (blocks.cpp).
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorIllegalState = 401,
  cudaErrorIllegalAddress = 700,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureWrongThread = 908,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
constexpr unsigned cudaStreamDefault = 0x00;
constexpr unsigned cudaStreamNonBlocking = 0x01;
// As in CUDA: opaque handles; a null stream is the legacy default stream.
typedef struct CUstream_st* cudaStream_t;
typedef struct CUgraph_st* cudaGraph_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;
typedef struct CUgraphNode_st* cudaGraphNode_t;

cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** ptr, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
// Page-locked host memory: plain host memory here (the emulator's copies are memmoves either way).
cudaError_t cudaMallocHost(void** ptr, std::size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream);
cudaError_t cudaGetDeviceCount(int* count);
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
// The emulated device reports an H200's 132 multiprocessors, so that choices made by the
// device's size (the GEMM tiling) go here as they go on the GPU the study targets.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t status);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

// Device code calls the math functions unqualified on float or double; the float overloads must
// be found, as the device's are.
using std::erf;
using std::exp;
using std::fabs;
using std::log;
using std::pow;
using std::sqrt;
using std::tanh;

// The device's exp, log, tanh and erf are not the host's: CUDA's guide allows them errors of 1
// to 2 ulp ("Mathematical Functions" appendix). In the kernels' namespace (where their
// unqualified calls find these first) each returns the host's value moved by an ulp up, down or
// not at all, chosen by a hash of the argument's bits: the same argument gives the same result,
// as on a device, and a test whose tolerance holds only because the CPU backend shares the
// host's libm fails here. Exact cases stay exact (an argument of 0, results 0 and ±1).
namespace gs::cuda_emulator {
template <class T>
T moved_by_an_ulp(T value, T argument) {
  if (argument == 0 || value == 0 || std::fabs(value) == 1 || !std::isfinite(value)) return value;
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits bits;
  std::memcpy(&bits, &argument, sizeof bits);
  std::uint64_t h = static_cast<std::uint64_t>(bits) * 0x9E3779B97F4A7C15ULL;  // Fibonacci hashing
  switch ((h >> 40) % 3) {
    case 0: return std::nextafter(value, T(-INFINITY));
    case 1: return std::nextafter(value, T(INFINITY));
    default: return value;
  }
}
}  // namespace gs::cuda_emulator
namespace gs::kernels::cuda {
inline float exp(float x) { return cuda_emulator::moved_by_an_ulp(std::exp(x), x); }
inline double exp(double x) { return cuda_emulator::moved_by_an_ulp(std::exp(x), x); }
inline float log(float x) { return cuda_emulator::moved_by_an_ulp(std::log(x), x); }
inline double log(double x) { return cuda_emulator::moved_by_an_ulp(std::log(x), x); }
inline float tanh(float x) { return cuda_emulator::moved_by_an_ulp(std::tanh(x), x); }
inline double tanh(double x) { return cuda_emulator::moved_by_an_ulp(std::tanh(x), x); }
inline float erf(float x) { return cuda_emulator::moved_by_an_ulp(std::erf(x), x); }
inline double erf(double x) { return cuda_emulator::moved_by_an_ulp(std::erf(x), x); }
}  // namespace gs::kernels::cuda

namespace gs::cuda_emulator {

struct ThreadContext {
  uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
  dim3 block_dim, grid_dim;
};
ThreadContext& context();

void sync_threads();

// Runs body once per thread of the grid, or records it when `stream` is being captured;
// failures are left for cudaGetLastError, as a launch. `pointers` are the kernel's device
// pointers: a replay checks that they still point into live memory. An overlapped launch (a
// programmatic dependent launch on a GPU) fails unless every thread calls
// waited_for_preceding_kernels() before its first barrier and before it ends.
void launch(const char* kernel, dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> body,
            std::vector<const void*> pointers, bool overlapped = false);
// What begin_after_preceding_kernels() does here: no kernel runs alongside another, so only the
// call itself is noted, for the check above.
void waited_for_preceding_kernels();

template <class P>
void note_pointer(std::vector<const void*>& pointers, const P& value) {
  if constexpr (std::is_pointer_v<P>)
    if (value != nullptr) pointers.push_back(value);
  (void)pointers, (void)value;
}

// Copies across the host boundary since the process started, and their bytes: a training step
// that makes none can run as one captured graph, and a test can tell; a probe that keeps its
// work on the device copies back only its results.
struct CopyCounts {
  std::int64_t host_to_device = 0, device_to_host = 0;
  std::int64_t host_to_device_bytes = 0, device_to_host_bytes = 0;
};
CopyCounts copy_counts();

// While recording, every launch is logged as its kernel's name and its arithmetic arguments
// (pointers and structs left out: addresses move from step to step until a graph pins them).
// Two training steps whose logs differ bake a changing host value into a launch, which a
// replayed graph would repeat.
void record_launches(bool on);
bool recording_launches();
std::vector<std::string> recorded_launches();
void note_launch(const char* kernel, std::string arguments);

template <class P>
void describe_argument(std::string& out, const P& value) {
  if constexpr (std::is_arithmetic_v<P> || std::is_enum_v<P>) {
    char bytes[sizeof(P)];
    std::memcpy(bytes, &value, sizeof(P));
    for (char b : bytes) out += "0123456789abcdef"[(b >> 4) & 15], out += "0123456789abcdef"[b & 15];
    out += ' ';
  } else {
    out += "_ ";
  }
}

// Fills a __shared__ variable with NaN bytes (all ones) the first time a thread of the running
// block reaches its declaration; a no-op after that, within that block. The emulated build's
// copies of kernels/cuda/*.cu call it after every __shared__ declaration (poison_shared.cmake).
void poison_shared(void* variable, std::size_t bytes);

// Tests: the kernel that would run n launches from now (0: the next) faults instead, with an
// illegal memory access that, as on a GPU, the calls after it report and every later call
// returns again. clear_fault() makes the device usable again (on a GPU only a new process does).
void inject_fault(std::int64_t n);
void clear_fault();
// A fault found inside a kernel (mma.h's misaligned fragment loads): sticky as the above, unless
// the device has one already.
void device_fault(cudaError_t code, std::string message);

// Tests: the device's memory. memory_in_use() is what the live allocations take (each rounded up
// to cudaMalloc's alignment); past set_memory_limit's bytes (0: no limit, the default) cudaMalloc
// fails with cudaErrorMemoryAllocation, as on a GPU whose memory is full.
std::size_t memory_in_use();
void set_memory_limit(std::size_t bytes);

// True for a pointer inside a live device allocation.
bool is_device_pointer(const void* ptr);
// Records cudaErrorInvalidValue for the next cudaGetLastError, with a message naming the kernel.
void refuse_launch(const char* kernel, const char* why);

template <class P>
bool argument_ok(const char* kernel, int index, const P& value) {
  if constexpr (std::is_pointer_v<P>) {
    if (value != nullptr && !is_device_pointer(value)) {
      static thread_local char why[96];
      std::snprintf(why, sizeof why, "argument %d is not a device pointer", index);
      refuse_launch(kernel, why);
      return false;
    }
  }
  (void)kernel, (void)index, (void)value;
  return true;
}

}  // namespace gs::cuda_emulator

#define threadIdx (::gs::cuda_emulator::context().thread_idx)
#define blockIdx (::gs::cuda_emulator::context().block_idx)
#define blockDim (::gs::cuda_emulator::context().block_dim)
#define gridDim (::gs::cuda_emulator::context().grid_dim)

inline void __syncthreads() { ::gs::cuda_emulator::sync_threads(); }
// Threads switch only at barriers (and blocks only between their phases), so an atomic is a plain
// read-modify-write here and every write is already visible.
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address = old + value;
  return old;
}
inline void __threadfence() {}
