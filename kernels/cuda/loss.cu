// Log-softmax, NLL, MSE, argmax and counts. The study's logits have 10 or 47 classes, so a row
// is one thread's work, in the CPU backend's order; sums over rows or elements are the
// deterministic two-pass reduction, in f64 as on the CPU.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reduce.cuh"

namespace gs::kernels::cuda {

namespace {

__device__ inline i64 global_index() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }

// log Σ exp over a row, the sum in f64: log_softmax and cross_entropy share it, so that their
// outputs are equal bit for bit.
template <class T>
__device__ T log_sum_exp(const T* xr, i64 cols) {
  T m = -INFINITY;
  for (i64 c = 0; c < cols; ++c) m = (xr[c] > m || xr[c] != xr[c]) ? xr[c] : m;
  double s = 0;
  for (i64 c = 0; c < cols; ++c) s += exp(static_cast<double>(xr[c] - m));
  return m + static_cast<T>(log(s));
}

// The log-softmax gradient gy - exp(y) Σ_row gy, one entry; shared as log_sum_exp is. The
// multiply-add is written as one fma: ptxas may fuse a PTX mul and sub or not, depending on the
// code around them, and the two kernels that call this must round it the same way.
template <class T>
__device__ T log_softmax_gradient(T gy, T y, double row_sum) {
  return fma(-exp(y), static_cast<T>(row_sum), gy);
}

template <class T>
__global__ void log_softmax_kernel(i64 rows, i64 cols, const T* x, T* y) {
  begin_after_preceding_kernels();
  const i64 r = global_index();
  if (r >= rows) return;
  const T* xr = x + r * cols;
  const T lse = log_sum_exp(xr, cols);
  for (i64 c = 0; c < cols; ++c) y[r * cols + c] = xr[c] - lse;
}

template <class T>
__global__ void log_softmax_backward_kernel(i64 rows, i64 cols, const T* y, const T* gy, T* gx) {
  begin_after_preceding_kernels();
  const i64 r = global_index();
  if (r >= rows) return;
  double s = 0;
  for (i64 c = 0; c < cols; ++c) s += gy[r * cols + c];
  for (i64 c = 0; c < cols; ++c) gx[r * cols + c] = log_softmax_gradient(gy[r * cols + c], y[r * cols + c], s);
}

// One row of the cross-entropy, as a term of the loss's sum: its log-softmax (stored where logp is
// not null), its gradient for a unit cotangent (where grad is not null; nll_backward's row, then
// log_softmax_backward's), and its log-probability at the label, NaN for an invalid label.
template <class T>
struct CrossEntropyRow {
  const T* x;
  const std::int32_t* labels;
  i64 rows, cols;
  T* logp;
  T* grad;
  __device__ double operator()(i64 r) const {
    const T* xr = x + r * cols;
    const T lse = log_sum_exp(xr, cols);
    const std::int32_t label = labels[r];
    const bool valid = label >= 0 && label < cols;
    const T unit = -T(1) / static_cast<T>(rows);                        // nll_backward's value for g_out = 1
    const double row_sum = valid ? static_cast<double>(unit) : 0.0;  // the sum of nll_backward's row
    for (i64 c = 0; c < cols; ++c) {
      const T y = xr[c] - lse;
      if (logp) logp[r * cols + c] = y;
      if (grad) grad[r * cols + c] = log_softmax_gradient(c == label ? unit : T(0), y, row_sum);
    }
    return valid ? static_cast<double>(xr[label] - lse) : NAN;  // an invalid label: a NaN loss
  }
};

// Element i of the row-major one-hot targets of `labels`, NaN in the row of an invalid label.
template <class T>
__device__ T one_hot_at(i64 i, i64 classes, const std::int32_t* labels) {
  const i64 label = labels[i / classes];
  return label >= 0 && label < classes ? T(i % classes == label) : T(NAN);
}

template <class T>
__global__ void one_hot_kernel(i64 rows, i64 classes, const std::int32_t* labels, T* y) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i < rows * classes) y[i] = one_hot_at<T>(i, classes, labels);
}

template <class T>
__global__ void nll_backward_kernel(i64 rows, i64 cols, const std::int32_t* labels, const T* g_out, T* g) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= rows * cols) return;
  const i64 r = i / cols, c = i % cols;
  g[i] = c == labels[r] ? -*g_out / static_cast<T>(rows) : T(0);
}

template <class T>
struct SquaredDifference {
  const T* a;
  const T* b;
  __device__ double operator()(i64 i) const {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    return d * d;
  }
};
// SquaredDifference against one_hot's targets, computed where they are needed; where grad is not
// null, also the gradient for a unit cotangent, as mse_one_hot_backward writes it for g_out = 1.
template <class T>
struct SquaredDifferenceToOneHot {
  const T* x;
  const std::int32_t* labels;
  i64 classes;
  T* grad;
  T unit;  // 2 / n, mse_one_hot_backward's factor for g_out = 1
  __device__ double operator()(i64 i) const {
    const T target = one_hot_at<T>(i, classes, labels);
    if (grad) grad[i] = unit * (x[i] - target);
    const double d = static_cast<double>(x[i]) - static_cast<double>(target);
    return d * d;
  }
};
// The loss, ±total / count, and backward()'s seed where asked for (kernels/loss.h).
template <class T>
struct StoreMean {
  T* out;
  double count;
  T* one;
  bool negate = false;
  __device__ void operator()(double total) const {
    *out = static_cast<T>((negate ? -total : total) / count);
    if (one) *one = T(1);
  }
};

template <class T>
__global__ void mse_backward_kernel(i64 n, const T* a, const T* b, const T* g_out, T* ga) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= n) return;
  const T k = T(2) * *g_out / static_cast<T>(n);
  ga[i] = k * (a[i] - b[i]);
}

template <class T>
__global__ void mse_one_hot_backward_kernel(i64 n, i64 classes, const T* x, const std::int32_t* labels, const T* g_out,
                                            T* gx) {
  begin_after_preceding_kernels();
  const i64 i = global_index();
  if (i >= n) return;
  const T k = T(2) * *g_out / static_cast<T>(n);
  gx[i] = k * (x[i] - one_hot_at<T>(i, classes, labels));
}

template <class T>
__global__ void argmax_rows_kernel(i64 rows, i64 cols, const T* x, std::int32_t* out) {
  begin_after_preceding_kernels();
  const i64 r = global_index();
  if (r >= rows) return;
  const T* xr = x + r * cols;
  i64 best = 0;
  for (i64 c = 1; c < cols; ++c) {
    if (xr[best] != xr[best]) break;  // a NaN wins and stays
    if (xr[c] > xr[best] || xr[c] != xr[c]) best = c;
  }
  out[r] = static_cast<std::int32_t>(best);
}

struct Equal {
  const std::int32_t* a;
  const std::int32_t* b;
  __device__ double operator()(i64 i) const { return a[i] == b[i] ? 1.0 : 0.0; }
};
struct StoreCount {
  double* out;
  __device__ void operator()(double total) const { *out = total; }
};

}  // namespace

void CudaBackend::log_softmax(DType dtype, i64 rows, i64 cols, const void* x, void* y) {
  if (rows * cols == 0) return;
  with_float(dtype, "log_softmax", [&]<class T>() {
    launch("log_softmax", rows * cols, blocks_for(rows), threads_per_block, log_softmax_kernel<T>, rows, cols,
           static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void CudaBackend::log_softmax_backward(DType dtype, i64 rows, i64 cols, const void* y, const void* gy, void* gx) {
  if (rows * cols == 0) return;
  with_float(dtype, "log_softmax_backward", [&]<class T>() {
    launch("log_softmax_backward", rows * cols, blocks_for(rows), threads_per_block, log_softmax_backward_kernel<T>,
           rows, cols, static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx));
  });
}

void CudaBackend::cross_entropy(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* logp,
                                void* out, void* one, void* grad) {
  with_float(dtype, "cross_entropy", [&]<class T>() {
    deterministic_sum("cross_entropy", rows,
                      CrossEntropyRow<T>{static_cast<const T*>(x), labels, rows, cols, static_cast<T*>(logp), static_cast<T*>(grad)},
                      StoreMean<T>{static_cast<T*>(out), static_cast<double>(rows), static_cast<T*>(one), true});
  });
}

void CudaBackend::nll_backward(DType dtype, i64 rows, i64 cols, const std::int32_t* labels, const void* g_out,
                               void* g_logp) {
  if (rows * cols == 0) return;
  with_float(dtype, "nll_backward", [&]<class T>() {
    launch("nll_backward", rows * cols, blocks_for(rows * cols), threads_per_block, nll_backward_kernel<T>, rows, cols,
           labels, static_cast<const T*>(g_out), static_cast<T*>(g_logp));
  });
}

void CudaBackend::one_hot(DType dtype, i64 rows, i64 classes, const std::int32_t* labels, void* y) {
  if (rows * classes == 0) return;
  with_float(dtype, "one_hot", [&]<class T>() {
    launch("one_hot", rows * classes, blocks_for(rows * classes), threads_per_block, one_hot_kernel<T>, rows, classes,
           labels, static_cast<T*>(y));
  });
}

void CudaBackend::mse(DType dtype, i64 n, const void* a, const void* b, void* out, void* one) {
  with_float(dtype, "mse", [&]<class T>() {
    deterministic_sum("mse", n, SquaredDifference<T>{static_cast<const T*>(a), static_cast<const T*>(b)},
                      StoreMean<T>{static_cast<T*>(out), static_cast<double>(n), static_cast<T*>(one)});
  });
}

void CudaBackend::mse_backward(DType dtype, i64 n, const void* a, const void* b, const void* g_out, void* ga) {
  if (n == 0) return;
  with_float(dtype, "mse_backward", [&]<class T>() {
    launch("mse_backward", n, blocks_for(n), threads_per_block, mse_backward_kernel<T>, n, static_cast<const T*>(a),
           static_cast<const T*>(b), static_cast<const T*>(g_out), static_cast<T*>(ga));
  });
}

void CudaBackend::mse_one_hot(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* out,
                              void* one, void* grad) {
  with_float(dtype, "mse_one_hot", [&]<class T>() {
    const T unit = T(2) * T(1) / static_cast<T>(rows * cols);
    deterministic_sum("mse_one_hot", rows * cols,
                      SquaredDifferenceToOneHot<T>{static_cast<const T*>(x), labels, cols, static_cast<T*>(grad), unit},
                      StoreMean<T>{static_cast<T*>(out), static_cast<double>(rows * cols), static_cast<T*>(one)});
  });
}

void CudaBackend::mse_one_hot_backward(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels,
                                       const void* g_out, void* gx) {
  const i64 n = rows * cols;
  if (n == 0) return;
  with_float(dtype, "mse_one_hot_backward", [&]<class T>() {
    launch("mse_one_hot_backward", n, blocks_for(n), threads_per_block, mse_one_hot_backward_kernel<T>, n, cols,
           static_cast<const T*>(x), labels, static_cast<const T*>(g_out), static_cast<T*>(gx));
  });
}

void CudaBackend::argmax_rows(DType dtype, i64 rows, i64 cols, const void* x, std::int32_t* out) {
  if (rows == 0) return;
  with_float(dtype, "argmax_rows", [&]<class T>() {
    launch("argmax_rows", rows * cols, blocks_for(rows), threads_per_block, argmax_rows_kernel<T>, rows, cols,
           static_cast<const T*>(x), out);
  });
}

i64 CudaBackend::count_equal(i64 n, const std::int32_t* a, const std::int32_t* b) {
  // Counts below 2^53 are exact in a double; the one value comes back to the host.
  double* total = sum_scratch() + max_sum_blocks;  // the slot after the partial sums
  deterministic_sum("count_equal", n, Equal{a, b}, StoreCount{total});
  double host = 0;
  GS_CUDA_CHECK(cudaMemcpy(&host, total, sizeof host, cudaMemcpyDeviceToHost), "the count back to the host");
  return static_cast<i64>(host);
}

}  // namespace gs::kernels::cuda
