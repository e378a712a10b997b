// Device memory, copies, fills and dtype conversion; the backend's entry point.
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reduce.cuh"

namespace gs::kernels {

namespace cuda {

namespace {

template <class T>
__global__ void fill_kernel(i64 n, T value, T* y) {
  begin_after_preceding_kernels();
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = value;
}

template <class To, class From>
__global__ void convert_kernel(i64 n, const From* x, To* y) {
  begin_after_preceding_kernels();
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = static_cast<To>(x[i]);
}

// One thread per value of y; a row whose index is out of range is filled with `missing`.
template <class T>
__global__ void gather_rows_kernel(i64 n, i64 row_elements, i64 source_rows, const T* x, const std::int32_t* indices,
                                   T* y, T missing) {
  begin_after_preceding_kernels();
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const i64 r = i / row_elements, from = indices[r];
  y[i] = from >= 0 && from < source_rows ? x[from * row_elements + i % row_elements] : missing;
}

template <class T>
void gather_typed(i64 rows, i64 row_elements, i64 source_rows, const void* x, const std::int32_t* indices, void* y,
                  T missing) {
  const i64 n = rows * row_elements;
  launch("gather_rows", n, blocks_for(n), threads_per_block, gather_rows_kernel<T>, n, row_elements, source_rows,
         static_cast<const T*>(x), indices, static_cast<T*>(y), missing);
}

template <class To>
void convert_to(DType from, i64 n, const void* x, To* y) {
  switch (from) {
    case DType::f32:
      launch("convert", n, blocks_for(n), threads_per_block, convert_kernel<To, float>, n, static_cast<const float*>(x),
             y);
      break;
    case DType::f64:
      launch("convert", n, blocks_for(n), threads_per_block, convert_kernel<To, double>, n,
             static_cast<const double*>(x), y);
      break;
    case DType::i32:
      launch("convert", n, blocks_for(n), threads_per_block, convert_kernel<To, std::int32_t>, n,
             static_cast<const std::int32_t*>(x), y);
      break;
  }
}

}  // namespace

double* sum_scratch() {
  static double* scratch = [] {
    double* p = nullptr;
    GS_CUDA_CHECK(cudaMalloc(&p, sizeof(double) * (max_sum_blocks + 1)), "the reduction scratch buffer");
    return p;
  }();
  return scratch;
}

void* split_scratch() {
  static void* scratch = [] {
    void* p = nullptr;
    GS_CUDA_CHECK(cudaMalloc(&p, split_scratch_bytes), "the buffer of split products' partial sums");
    return p;
  }();
  return scratch;
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    GS_CUDA_CHECK(cudaStreamCreate(&created), "the backend's stream");
    return created;
  }();
  return s;
}

void* CudaBackend::allocate(std::size_t bytes) {
  // cudaMalloc is not stream work, so a graph being captured may use it: the caching allocator
  // grows a graph's private pool this way. CUDA calls it unsafe during capture unless the thread
  // says so; this thread does, for this call only.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  GS_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode), "allowing cudaMalloc during capture");
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  GS_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode), "restoring the capture mode");
  // The caller may free cached blocks and try again: the failure must not be reported by the
  // next launch check too.
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    cuda_failed("cudaMalloc", status, std::to_string(bytes) + " bytes");
  }
  return p;
}
void CudaBackend::release(void* ptr) { GS_CUDA_CHECK(cudaFree(ptr), "freeing a block"); }
void CudaBackend::poison(void* ptr, std::size_t bytes) {
  GS_CUDA_CHECK(cudaMemsetAsync(ptr, 0xff, bytes, stream()), "poisoning " + std::to_string(bytes) + " bytes");
}
namespace {

// Copies between the host and the device pass through one page-locked staging buffer, which the
// copy engine reads and writes directly (a pageable buffer costs the driver a copy of its own).
// Larger copies go directly. While the stream is being captured a copy stays the synchronous
// cudaMemcpy, which ends the capture (the step then runs kernel by kernel and says why): a graph
// must never record a copy from a staging buffer that later copies overwrite.
constexpr std::size_t pinned_staging_bytes = std::size_t(4) << 20;

struct PinnedStaging {
  std::mutex lock;
  char* buffer = nullptr;
  PinnedStaging() {
    void* p = nullptr;
    GS_CUDA_CHECK(cudaMallocHost(&p, pinned_staging_bytes), "the pinned staging buffer for host copies");
    buffer = static_cast<char*>(p);
  }
};
PinnedStaging& pinned_staging() {
  static PinnedStaging staging;  // for the process's life, like the reduction scratch
  return staging;
}

bool staged(std::size_t bytes) {
  if (bytes > pinned_staging_bytes) return false;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  GS_CUDA_CHECK(cudaStreamIsCapturing(stream(), &capturing), "asking whether the stream is being captured");
  return capturing == cudaStreamCaptureStatusNone;
}

}  // namespace

void CudaBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) {
  const std::string what = std::to_string(bytes) + " bytes to the device";
  if (!staged(bytes)) {
    GS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
    return;
  }
  PinnedStaging& staging = pinned_staging();
  std::lock_guard hold(staging.lock);
  std::memcpy(staging.buffer, src, bytes);
  GS_CUDA_CHECK(cudaMemcpyAsync(dst, staging.buffer, bytes, cudaMemcpyHostToDevice, stream()), what);
  GS_CUDA_CHECK(cudaStreamSynchronize(stream()), what);  // the buffer is free again
}
void CudaBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  const std::string what = std::to_string(bytes) + " bytes to the host";
  if (!staged(bytes)) {
    GS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), what);
    return;
  }
  PinnedStaging& staging = pinned_staging();
  std::lock_guard hold(staging.lock);
  GS_CUDA_CHECK(cudaMemcpyAsync(staging.buffer, src, bytes, cudaMemcpyDeviceToHost, stream()), what);
  GS_CUDA_CHECK(cudaStreamSynchronize(stream()), what);
  std::memcpy(dst, staging.buffer, bytes);
}
void* CudaBackend::allocate_host(std::size_t bytes) {
  void* p = nullptr;
  GS_CUDA_CHECK(cudaMallocHost(&p, bytes), std::to_string(bytes) + " bytes of page-locked host memory");
  return p;
}
void CudaBackend::release_host(void* ptr) { GS_CUDA_CHECK(cudaFreeHost(ptr), "freeing page-locked host memory"); }

namespace {
// A queued copy recorded into a graph would replay from host memory the host has since reused.
void refuse_during_capture(const char* what) {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  GS_CUDA_CHECK(cudaStreamIsCapturing(stream(), &capturing), "asking whether the stream is being captured");
  if (capturing != cudaStreamCaptureStatusNone)
    throw Error(std::string(what) + ": a queued copy cannot be part of a captured graph");
}
}  // namespace

void CudaBackend::copy_from_host_queued(void* dst, const void* src, std::size_t bytes) {
  refuse_during_capture("copy_from_host_queued");
  GS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()),
                "queued copy of " + std::to_string(bytes) + " bytes to the device");
}
void CudaBackend::copy_to_host_queued(void* dst, const void* src, std::size_t bytes) {
  refuse_during_capture("copy_to_host_queued");
  GS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()),
                "queued copy of " + std::to_string(bytes) + " bytes to the host");
}
void CudaBackend::synchronize() { GS_CUDA_CHECK(cudaStreamSynchronize(stream()), "waiting for the device"); }

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  // Stream work, unlike a synchronous cudaMemcpy: a captured graph may hold it.
  GS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()),
                std::to_string(bytes) + " bytes on the device");
}

void CudaBackend::fill(DType dtype, i64 n, double value, void* y) {
  if (n == 0) return;
  switch (dtype) {
    case DType::f32:
      launch("fill", n, blocks_for(n), threads_per_block, fill_kernel<float>, n, static_cast<float>(value),
             static_cast<float*>(y));
      break;
    case DType::f64:
      launch("fill", n, blocks_for(n), threads_per_block, fill_kernel<double>, n, value, static_cast<double*>(y));
      break;
    case DType::i32:
      launch("fill", n, blocks_for(n), threads_per_block, fill_kernel<std::int32_t>, n,
             static_cast<std::int32_t>(value), static_cast<std::int32_t*>(y));
      break;
  }
}

void CudaBackend::convert(DType from, DType to, i64 n, const void* x, void* y) {
  if (n == 0) return;
  switch (to) {
    case DType::f32: convert_to(from, n, x, static_cast<float*>(y)); break;
    case DType::f64: convert_to(from, n, x, static_cast<double*>(y)); break;
    case DType::i32: convert_to(from, n, x, static_cast<std::int32_t*>(y)); break;
  }
}

void CudaBackend::gather_rows(DType dtype, i64 rows, i64 row_elements, i64 source_rows, const void* x,
                              const std::int32_t* indices, void* y) {
  if (rows == 0 || row_elements == 0) return;
  switch (dtype) {
    case DType::f32: gather_typed(rows, row_elements, source_rows, x, indices, y, std::numeric_limits<float>::quiet_NaN()); break;
    case DType::f64: gather_typed(rows, row_elements, source_rows, x, indices, y, std::numeric_limits<double>::quiet_NaN()); break;
    case DType::i32: gather_typed(rows, row_elements, source_rows, x, indices, y, std::int32_t{-1}); break;
  }
}

CudaBackend::CudaBackend() {
  GS_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, 0),
                "cudaDeviceGetAttribute(multiprocessor count)");
}

}  // namespace cuda

Backend* cuda_backend_or_null(const char** reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    *reason = status != cudaSuccess ? cudaGetErrorString(status) : "no CUDA device is present";
    return nullptr;
  }
  static cuda::CudaBackend instance;
  return &instance;
}

}  // namespace gs::kernels
