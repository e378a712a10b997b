#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels::cpu {

namespace {
// Element c of a one-hot row for `label`, as one_hot writes it.
template <class T>
T one_hot_value(std::int32_t label, i64 c, i64 cols) {
  return label >= 0 && label < cols ? T(c == label) : std::numeric_limits<T>::quiet_NaN();
}

// log Σ exp over a row: log_softmax and cross_entropy share it, so their outputs are equal bit for
// bit. The sum is in f64, exact to f32 rounding even for thousands of classes.
template <class T>
T log_sum_exp(const T* xr, i64 cols) {
  T m = -std::numeric_limits<T>::infinity();
  for (i64 c = 0; c < cols; ++c) m = (xr[c] > m || xr[c] != xr[c]) ? xr[c] : m;
  double s = 0;
  for (i64 c = 0; c < cols; ++c) s += std::exp(static_cast<double>(xr[c] - m));
  return m + static_cast<T>(std::log(s));
}

// The log-softmax gradient gy - exp(y) Σ_row gy, one entry; shared as log_sum_exp is.
template <class T>
T log_softmax_gradient(T gy, T y, double row_sum) {
  return gy - std::exp(y) * static_cast<T>(row_sum);
}
}  // namespace

void CpuBackend::log_softmax(DType dtype, i64 rows, i64 cols, const void* xv, void* yv) {
  with_float_type(dtype, "log_softmax", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<T*>(yv);
#pragma omp parallel for if (rows * cols > parallel_grain)
    for (i64 r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      const T lse = log_sum_exp(xr, cols);
      for (i64 c = 0; c < cols; ++c) yr[c] = xr[c] - lse;
    }
  });
}

void CpuBackend::log_softmax_backward(DType dtype, i64 rows, i64 cols, const void* yv,
                                      const void* gyv, void* gxv) {
  with_float_type(dtype, "log_softmax_backward", [&]<class T>() {
    auto y = static_cast<const T*>(yv);
    auto gy = static_cast<const T*>(gyv);
    auto gx = static_cast<T*>(gxv);
#pragma omp parallel for if (rows * cols > parallel_grain)
    for (i64 r = 0; r < rows; ++r) {
      const T* yr = y + r * cols;
      const T* gr = gy + r * cols;
      double s = 0;
      for (i64 c = 0; c < cols; ++c) s += gr[c];
      for (i64 c = 0; c < cols; ++c) gx[r * cols + c] = log_softmax_gradient(gr[c], yr[c], s);
    }
  });
}

void CpuBackend::cross_entropy(DType dtype, i64 rows, i64 cols, const void* xv, const std::int32_t* labels, void* logpv,
                               void* outv, void* one, void* gradv) {
  with_float_type(dtype, "cross_entropy", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto logp = static_cast<T*>(logpv);
    auto grad = static_cast<T*>(gradv);
    // Each row's log-probability at its label (NaN for a label out of range), summed after the
    // rows in row order, as nll sums them.
    std::vector<double> picked(static_cast<std::size_t>(rows));
    const T unit = -T(1) / static_cast<T>(rows);  // nll_backward's value for g_out = 1
#pragma omp parallel for if (rows * cols > parallel_grain)
    for (i64 r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      const T lse = log_sum_exp(xr, cols);
      const std::int32_t label = labels[r];
      const bool valid = label >= 0 && label < cols;
      const double row_sum = valid ? static_cast<double>(unit) : 0.0;  // Σ_row of nll_backward's row
      picked[static_cast<std::size_t>(r)] = valid ? static_cast<double>(xr[label] - lse) : std::nan("");
      for (i64 c = 0; c < cols; ++c) {
        const T y = xr[c] - lse;
        if (logp) logp[r * cols + c] = y;
        if (grad) grad[r * cols + c] = log_softmax_gradient(c == label ? unit : T(0), y, row_sum);
      }
    }
    double s = 0;
    for (i64 r = 0; r < rows; ++r) s += picked[static_cast<std::size_t>(r)];
    *static_cast<T*>(outv) = static_cast<T>(-s / static_cast<double>(rows));
    if (one) *static_cast<T*>(one) = T(1);
  });
}

void CpuBackend::one_hot(DType dtype, i64 rows, i64 classes, const std::int32_t* labels, void* yv) {
  with_float_type(dtype, "one_hot", [&]<class T>() {
    auto y = static_cast<T*>(yv);
    for (i64 r = 0; r < rows; ++r)
      for (i64 c = 0; c < classes; ++c) y[r * classes + c] = one_hot_value<T>(labels[r], c, classes);
  });
}

void CpuBackend::nll_backward(DType dtype, i64 rows, i64 cols, const std::int32_t* labels,
                              const void* g_outv, void* gv) {
  with_float_type(dtype, "nll_backward", [&]<class T>() {
    auto g = static_cast<T*>(gv);
    const T v = -*static_cast<const T*>(g_outv) / static_cast<T>(rows);
    std::fill_n(g, rows * cols, T(0));
    for (i64 r = 0; r < rows; ++r)
      if (labels[r] >= 0 && labels[r] < cols) g[r * cols + labels[r]] = v;
  });
}

void CpuBackend::mse(DType dtype, i64 n, const void* av, const void* bv, void* outv, void* one) {
  with_float_type(dtype, "mse", [&]<class T>() {
    auto a = static_cast<const T*>(av);
    auto b = static_cast<const T*>(bv);
    double s = 0;
    for (i64 i = 0; i < n; ++i) {
      double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      s += d * d;
    }
    *static_cast<T*>(outv) = static_cast<T>(s / static_cast<double>(n));
    if (one) *static_cast<T*>(one) = T(1);
  });
}

void CpuBackend::mse_backward(DType dtype, i64 n, const void* av, const void* bv, const void* g_outv,
                              void* gav) {
  with_float_type(dtype, "mse_backward", [&]<class T>() {
    auto a = static_cast<const T*>(av);
    auto b = static_cast<const T*>(bv);
    auto ga = static_cast<T*>(gav);
    const T k = T(2) * *static_cast<const T*>(g_outv) / static_cast<T>(n);
#pragma omp parallel for if (n > parallel_grain)
    for (i64 i = 0; i < n; ++i) ga[i] = k * (a[i] - b[i]);
  });
}

void CpuBackend::mse_one_hot(DType dtype, i64 rows, i64 cols, const void* xv, const std::int32_t* labels, void* outv,
                             void* one, void* gradv) {
  with_float_type(dtype, "mse_one_hot", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto grad = static_cast<T*>(gradv);
    const T unit = T(2) * T(1) / static_cast<T>(rows * cols);  // mse_one_hot_backward's factor for g_out = 1
    double s = 0;
    for (i64 r = 0; r < rows; ++r)
      for (i64 c = 0; c < cols; ++c) {
        const T target = one_hot_value<T>(labels[r], c, cols);
        const double d = static_cast<double>(x[r * cols + c]) - static_cast<double>(target);
        s += d * d;
        if (grad) grad[r * cols + c] = unit * (x[r * cols + c] - target);
      }
    *static_cast<T*>(outv) = static_cast<T>(s / static_cast<double>(rows * cols));
    if (one) *static_cast<T*>(one) = T(1);
  });
}

void CpuBackend::mse_one_hot_backward(DType dtype, i64 rows, i64 cols, const void* xv, const std::int32_t* labels,
                                      const void* g_outv, void* gxv) {
  with_float_type(dtype, "mse_one_hot_backward", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto gx = static_cast<T*>(gxv);
    const T k = T(2) * *static_cast<const T*>(g_outv) / static_cast<T>(rows * cols);
    for (i64 r = 0; r < rows; ++r)
      for (i64 c = 0; c < cols; ++c) gx[r * cols + c] = k * (x[r * cols + c] - one_hot_value<T>(labels[r], c, cols));
  });
}

void CpuBackend::argmax_rows(DType dtype, i64 rows, i64 cols, const void* xv, std::int32_t* out) {
  with_float_type(dtype, "argmax_rows", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    for (i64 r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      i64 best = 0;
      for (i64 c = 1; c < cols; ++c) {
        if (xr[best] != xr[best]) break;  // a NaN wins and stays
        if (xr[c] > xr[best] || xr[c] != xr[c]) best = c;
      }
      out[r] = static_cast<std::int32_t>(best);
    }
  });
}

i64 CpuBackend::count_equal(i64 n, const std::int32_t* a, const std::int32_t* b) {
  i64 count = 0;
  for (i64 i = 0; i < n; ++i) count += a[i] == b[i];
  return count;
}

}  // namespace gs::kernels::cpu
