#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels::cpu {

namespace {

template <class T>
T gelu(T x) {
  // The exact (erf) GELU, torch.nn.GELU()'s default.
  return T(0.5) * x * (T(1) + std::erf(x * T(M_SQRT1_2)));
}

template <class T>
T gelu_derivative(T x) {
  T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
  T pdf = std::exp(T(-0.5) * x * x) * T(0.5 * M_2_SQRTPI * M_SQRT1_2);
  return cdf + x * pdf;
}

template <class T, class F>
void map(i64 n, const T* x, T* y, F f) {
#pragma omp parallel for if (n > parallel_grain)
  for (i64 i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class T, class F>
void binary_typed(const Broadcast& b, const T* x, const T* y, T* out, F f) {
  const i64 n = b.numel();
  const auto& as = b.a_stride;
  const auto& bs = b.b_stride;
  // Contiguous operands of equal shape: the common case, one flat loop.
  bool a_dense = as[3] == 1 && as[2] == b.out[3] && as[1] == b.out[2] * b.out[3] &&
                 as[0] == b.out[1] * b.out[2] * b.out[3];
  bool b_dense = bs[3] == 1 && bs[2] == b.out[3] && bs[1] == b.out[2] * b.out[3] &&
                 bs[0] == b.out[1] * b.out[2] * b.out[3];
  if (a_dense && b_dense) {
#pragma omp parallel for if (n > parallel_grain)
    for (i64 i = 0; i < n; ++i) out[i] = f(x[i], y[i]);
    return;
  }
  // Trailing dimensions of extent 1 moved to the front, so that the innermost loop runs over a
  // real dimension (a convolution's bias, [n, c, pixels, 1], adds along the pixels).
  std::array<i64, 4> extent = b.out, sa = as, sb = bs;
  for (int shift = 0; shift < 3 && extent[3] == 1; ++shift) {
    extent = {1, extent[0], extent[1], extent[2]};
    sa = {0, sa[0], sa[1], sa[2]};
    sb = {0, sb[0], sb[1], sb[2]};
  }
  const i64 d1 = extent[1], d2 = extent[2], d3 = extent[3];
#pragma omp parallel for collapse(2) if (n > parallel_grain)
  for (i64 i0 = 0; i0 < extent[0]; ++i0)
    for (i64 i1 = 0; i1 < d1; ++i1)
      for (i64 i2 = 0; i2 < d2; ++i2) {
        const T* xr = x + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
        const T* yr = y + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        T* o = out + ((i0 * d1 + i1) * d2 + i2) * d3;
        if (sa[3] == 1 && sb[3] == 0) {  // a row of x with one value of y: vectorizes
          const T q = yr[0];
          for (i64 i3 = 0; i3 < d3; ++i3) o[i3] = f(xr[i3], q);
        } else {
          for (i64 i3 = 0; i3 < d3; ++i3) o[i3] = f(xr[i3 * sa[3]], yr[i3 * sb[3]]);
        }
      }
}

}  // namespace

void CpuBackend::unary(Unary op, DType dtype, i64 n, const void* xv, void* yv) {
  with_float_type(dtype, "unary", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<T*>(yv);
    switch (op) {
      case Unary::relu: map(n, x, y, [](T v) { return v > T(0) ? v : (v != v ? v : T(0)); }); break;
      case Unary::tanh: map(n, x, y, [](T v) { return std::tanh(v); }); break;
      case Unary::sigmoid: map(n, x, y, [](T v) { return T(1) / (T(1) + std::exp(-v)); }); break;
      case Unary::gelu: map(n, x, y, [](T v) { return gelu(v); }); break;
    }
  });
}

void CpuBackend::unary_backward(Unary op, DType dtype, i64 n, const void* xv, const void* yv,
                                const void* gyv, void* gxv) {
  with_float_type(dtype, "unary_backward", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<const T*>(yv);
    auto gy = static_cast<const T*>(gyv);
    auto gx = static_cast<T*>(gxv);
    switch (op) {
      case Unary::relu:
#pragma omp parallel for if (n > parallel_grain)
        for (i64 i = 0; i < n; ++i) {
          const T g = gy[i];  // read unconditionally: the choice becomes a blend and the loop vectorizes
          gx[i] = x[i] <= T(0) ? T(0) : g;  // NaN passes gy, as torch
        }
        break;
      case Unary::tanh:
#pragma omp parallel for if (n > parallel_grain)
        for (i64 i = 0; i < n; ++i) gx[i] = gy[i] * (T(1) - y[i] * y[i]);
        break;
      case Unary::sigmoid:
#pragma omp parallel for if (n > parallel_grain)
        for (i64 i = 0; i < n; ++i) gx[i] = gy[i] * y[i] * (T(1) - y[i]);
        break;
      case Unary::gelu:
#pragma omp parallel for if (n > parallel_grain)
        for (i64 i = 0; i < n; ++i) gx[i] = gy[i] * gelu_derivative(x[i]);
        break;
    }
  });
}

void CpuBackend::binary(Binary op, DType dtype, const Broadcast& b, const void* xv, const void* yv,
                        void* outv) {
  with_float_type(dtype, "binary", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<const T*>(yv);
    auto out = static_cast<T*>(outv);
    switch (op) {
      case Binary::add: binary_typed(b, x, y, out, [](T p, T q) { return p + q; }); break;
      case Binary::sub: binary_typed(b, x, y, out, [](T p, T q) { return p - q; }); break;
      case Binary::mul: binary_typed(b, x, y, out, [](T p, T q) { return p * q; }); break;
    }
  });
}

void CpuBackend::reduce_to_operand(DType dtype, const Broadcast& b,
                                   const std::array<i64, 4>& operand_stride, i64 operand_numel,
                                   double scale, const void* g_outv,
                                   const std::array<i64, 4>& other_stride, const void* otherv,
                                   void* g_operandv) {
  with_float_type(dtype, "reduce_to_operand", [&]<class T>() {
    auto g_out = static_cast<const T*>(g_outv);
    auto other = static_cast<const T*>(otherv);
    auto g = static_cast<T*>(g_operandv);
    // A per-channel sum ([n, c, pixels, 1] onto [c], a convolution's bias gradient): each
    // channel's sum in the order of the serial pass below (images, then pixels), four channels'
    // chains interleaved and the channels spread over the threads. The same sums, bit for bit.
    const i64 n = b.out[0], channels = b.out[1], pixels = b.out[2];
    if (!other && scale == 1.0 && b.out[3] == 1 && operand_stride == std::array<i64, 4>{0, 1, 0, 0} &&
        operand_numel == channels) {
      constexpr i64 lanes = 4;
#pragma omp parallel for if (n * channels * pixels > parallel_grain)
      for (i64 c0 = 0; c0 < channels; c0 += lanes) {
        const i64 width = std::min(lanes, channels - c0);
        T acc[lanes] = {T(0), T(0), T(0), T(0)};
        for (i64 i = 0; i < n; ++i) {
          const T* rows = g_out + (i * channels + c0) * pixels;
          if (width == lanes) {
            for (i64 p = 0; p < pixels; ++p) {
              acc[0] += rows[p];
              acc[1] += rows[pixels + p];
              acc[2] += rows[2 * pixels + p];
              acc[3] += rows[3 * pixels + p];
            }
          } else {
            for (i64 l = 0; l < width; ++l)
              for (i64 p = 0; p < pixels; ++p) acc[l] += rows[l * pixels + p];
          }
        }
        for (i64 l = 0; l < width; ++l) g[c0 + l] = acc[l];
      }
      return;
    }
    std::fill_n(g, operand_numel, T(0));
    // One serial pass in output order: the sums come out the same on every run.
    i64 flat = 0;
    for (i64 i0 = 0; i0 < b.out[0]; ++i0)
      for (i64 i1 = 0; i1 < b.out[1]; ++i1)
        for (i64 i2 = 0; i2 < b.out[2]; ++i2)
          for (i64 i3 = 0; i3 < b.out[3]; ++i3, ++flat) {
            i64 at = i0 * operand_stride[0] + i1 * operand_stride[1] + i2 * operand_stride[2] +
                     i3 * operand_stride[3];
            T v = g_out[flat];
            if (other)
              v *= other[i0 * other_stride[0] + i1 * other_stride[1] + i2 * other_stride[2] +
                         i3 * other_stride[3]];
            g[at] += v;
          }
    if (scale != 1.0)
      for (i64 i = 0; i < operand_numel; ++i) g[i] *= static_cast<T>(scale);
  });
}

void CpuBackend::axpby(DType dtype, i64 n, double alpha, const void* xv, double beta, void* yv) {
  with_float_type(dtype, "axpby", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<T*>(yv);
    const T a = static_cast<T>(alpha), c = static_cast<T>(beta);
    if (beta == 0.0) {
#pragma omp parallel for if (n > parallel_grain)
      for (i64 i = 0; i < n; ++i) y[i] = a * x[i];
    } else {
#pragma omp parallel for if (n > parallel_grain)
      for (i64 i = 0; i < n; ++i) y[i] = a * x[i] + c * y[i];
    }
  });
}

void CpuBackend::broadcast_rows(DType dtype, i64 rows, i64 cols, const void* rowv, void* yv) {
  with_float_type(dtype, "broadcast_rows", [&]<class T>() {
    auto row = static_cast<const T*>(rowv);
    auto y = static_cast<T*>(yv);
    for (i64 r = 0; r < rows; ++r) std::copy_n(row, cols, y + r * cols);
  });
}

void CpuBackend::sum_rows(DType dtype, i64 rows, i64 cols, const void* xv, void* yv) {
  with_float_type(dtype, "sum_rows", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<T*>(yv);
    std::fill_n(y, cols, T(0));
    for (i64 r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      for (i64 c = 0; c < cols; ++c) y[c] += xr[c];
    }
  });
}

void CpuBackend::sum(DType dtype, i64 n, const void* xv, void* yv) {
  with_float_type(dtype, "sum", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    double total = 0;
    for (i64 i = 0; i < n; ++i) total += static_cast<double>(x[i]);
    *static_cast<T*>(yv) = static_cast<T>(total);
  });
}

}  // namespace gs::kernels::cpu
