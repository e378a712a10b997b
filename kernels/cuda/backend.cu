// The CUDA backend. This file holds device memory and the elementwise kernels; the other kernel
// families are still to be written and report themselves missing when called (never silently).
#include <cmath>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_check.h"

namespace gs::kernels {

namespace {

constexpr int threads = 256;
int blocks_for(i64 n) { return static_cast<int>((n + threads - 1) / threads); }

template <class T>
__global__ void fill_kernel(i64 n, T value, T* y) {
  i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = value;
}

template <class To, class From>
__global__ void convert_kernel(i64 n, const From* x, To* y) {
  i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = static_cast<To>(x[i]);
}

template <class T>
__global__ void axpby_kernel(i64 n, T alpha, const T* x, T beta, T* y) {
  i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = beta == T(0) ? alpha * x[i] : alpha * x[i] + beta * y[i];
}

template <class T>
__global__ void unary_kernel(Unary op, i64 n, const T* x, T* y) {
  i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T v = x[i];
  switch (op) {
    case Unary::relu: y[i] = v > T(0) ? v : (v != v ? v : T(0)); break;
    case Unary::tanh: y[i] = tanh(v); break;
    case Unary::sigmoid: y[i] = T(1) / (T(1) + exp(-v)); break;
    case Unary::gelu: y[i] = T(0.5) * v * (T(1) + erf(v * T(0.70710678118654752440))); break;
  }
}

template <class F>
void with_float(DType dtype, const char* what, F&& f) {
  if (dtype == DType::f32) return f.template operator()<float>();
  if (dtype == DType::f64) return f.template operator()<double>();
  throw Error(std::string(what) + " works on f32 or f64 tensors, got " + dtype_name(dtype));
}

template <class To>
void convert_to(DType from, i64 n, const void* x, To* y) {
  switch (from) {
    case DType::f32: convert_kernel<<<blocks_for(n), threads>>>(n, static_cast<const float*>(x), y); break;
    case DType::f64: convert_kernel<<<blocks_for(n), threads>>>(n, static_cast<const double*>(x), y); break;
    case DType::i32: convert_kernel<<<blocks_for(n), threads>>>(n, static_cast<const std::int32_t*>(x), y); break;
  }
}

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    GS_CUDA_CHECK(cudaMalloc(&p, bytes), std::to_string(bytes) + " bytes");
    return p;
  }
  void release(void* ptr) override { GS_CUDA_CHECK(cudaFree(ptr), "freeing a block"); }
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override {
    GS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), std::to_string(bytes) + " bytes to the device");
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    GS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), std::to_string(bytes) + " bytes to the host");
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    GS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), std::to_string(bytes) + " bytes on the device");
  }
  void fill(DType dtype, i64 n, double value, void* y) override {
    if (n == 0) return;
    switch (dtype) {
      case DType::f32: fill_kernel<<<blocks_for(n), threads>>>(n, static_cast<float>(value), static_cast<float*>(y)); break;
      case DType::f64: fill_kernel<<<blocks_for(n), threads>>>(n, value, static_cast<double*>(y)); break;
      case DType::i32:
        fill_kernel<<<blocks_for(n), threads>>>(n, static_cast<std::int32_t>(value), static_cast<std::int32_t*>(y));
        break;
    }
    GS_CUDA_LAUNCH_CHECK("fill", n);
  }
  void convert(DType from, DType to, i64 n, const void* x, void* y) override {
    if (n == 0) return;
    switch (to) {
      case DType::f32: convert_to(from, n, x, static_cast<float*>(y)); break;
      case DType::f64: convert_to(from, n, x, static_cast<double*>(y)); break;
      case DType::i32: convert_to(from, n, x, static_cast<std::int32_t*>(y)); break;
    }
    GS_CUDA_LAUNCH_CHECK("convert", n);
  }

  void gemm(DType, const GemmShape&, double, const void*, const void*, double, void*) override {
    missing_kernel("cuda", "gemm");
  }

  void unary(Unary op, DType dtype, i64 n, const void* x, void* y) override {
    if (n == 0) return;
    with_float(dtype, "unary", [&]<class T>() {
      unary_kernel<<<blocks_for(n), threads>>>(op, n, static_cast<const T*>(x), static_cast<T*>(y));
    });
    GS_CUDA_LAUNCH_CHECK("unary", n);
  }
  void unary_backward(Unary, DType, i64, const void*, const void*, const void*, void*) override {
    missing_kernel("cuda", "unary_backward");
  }
  void binary(Binary, DType, const Broadcast&, const void*, const void*, void*) override {
    missing_kernel("cuda", "binary");
  }
  void reduce_to_operand(DType, const Broadcast&, const std::array<i64, 4>&, i64, double, const void*,
                         const std::array<i64, 4>&, const void*, void*) override {
    missing_kernel("cuda", "reduce_to_operand");
  }
  void axpby(DType dtype, i64 n, double alpha, const void* x, double beta, void* y) override {
    if (n == 0) return;
    with_float(dtype, "axpby", [&]<class T>() {
      axpby_kernel<<<blocks_for(n), threads>>>(n, static_cast<T>(alpha), static_cast<const T*>(x),
                                               static_cast<T>(beta), static_cast<T*>(y));
    });
    GS_CUDA_LAUNCH_CHECK("axpby", n);
  }
  void broadcast_rows(DType, i64, i64, const void*, void*) override { missing_kernel("cuda", "broadcast_rows"); }
  void sum_rows(DType, i64, i64, const void*, void*) override { missing_kernel("cuda", "sum_rows"); }
  void sum(DType, i64, const void*, void*) override { missing_kernel("cuda", "sum"); }

  void log_softmax(DType, i64, i64, const void*, void*) override { missing_kernel("cuda", "log_softmax"); }
  void log_softmax_backward(DType, i64, i64, const void*, const void*, void*) override {
    missing_kernel("cuda", "log_softmax_backward");
  }
  void nll(DType, i64, i64, const void*, const std::int32_t*, void*) override { missing_kernel("cuda", "nll"); }
  void nll_backward(DType, i64, i64, const std::int32_t*, const void*, void*) override {
    missing_kernel("cuda", "nll_backward");
  }
  void mse(DType, i64, const void*, const void*, void*) override { missing_kernel("cuda", "mse"); }
  void mse_backward(DType, i64, const void*, const void*, const void*, void*) override {
    missing_kernel("cuda", "mse_backward");
  }
  void argmax_rows(DType, i64, i64, const void*, std::int32_t*) override { missing_kernel("cuda", "argmax_rows"); }
  i64 count_equal(i64, const std::int32_t*, const std::int32_t*) override { missing_kernel("cuda", "count_equal"); }

  void im2col(DType, const ConvGeometry&, const void*, void*) override { missing_kernel("cuda", "im2col"); }
  void col2im(DType, const ConvGeometry&, const void*, void*) override { missing_kernel("cuda", "col2im"); }
  void max_pool2d(DType, const PoolGeometry&, const void*, void*, std::int32_t*) override {
    missing_kernel("cuda", "max_pool2d");
  }
  void max_pool2d_backward(DType, const PoolGeometry&, const void*, const std::int32_t*, void*) override {
    missing_kernel("cuda", "max_pool2d_backward");
  }

  void sgd_step(DType, i64, void*, const void*, void*, const SgdStep&) override { missing_kernel("cuda", "sgd_step"); }
  void adam_step(DType, i64, void*, const void*, void*, void*, const AdamStep&) override {
    missing_kernel("cuda", "adam_step");
  }
};

}  // namespace

Backend* cuda_backend_or_null(const char** reason) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    *reason = status != cudaSuccess ? cudaGetErrorString(status) : "no CUDA device is present";
    return nullptr;
  }
  static CudaBackend instance;
  return &instance;
}

}  // namespace gs::kernels
