#include "kernels/reference/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace gs::reference {

Array matmul(const Array& a, const Array& b, i64 m, i64 n, i64 k, bool ta, bool tb) {
  Array c(static_cast<std::size_t>(m * n), 0.0);
  for (i64 i = 0; i < m; ++i)
    for (i64 j = 0; j < n; ++j) {
      double s = 0;
      for (i64 p = 0; p < k; ++p) {
        double av = ta ? a[p * m + i] : a[i * k + p];
        double bv = tb ? b[j * k + p] : b[p * n + j];
        s += av * bv;
      }
      c[i * n + j] = s;
    }
  return c;
}

double unary(kernels::Unary op, double x) {
  switch (op) {
    case kernels::Unary::relu: return x > 0 ? x : 0;
    case kernels::Unary::tanh: return std::tanh(x);
    case kernels::Unary::sigmoid: return 1 / (1 + std::exp(-x));
    case kernels::Unary::gelu: return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
  }
  return 0;
}

double unary_derivative(kernels::Unary op, double x) {
  switch (op) {
    case kernels::Unary::relu: return x > 0 ? 1 : 0;
    case kernels::Unary::tanh: return 1 - std::tanh(x) * std::tanh(x);
    case kernels::Unary::sigmoid: {
      double s = 1 / (1 + std::exp(-x));
      return s * (1 - s);
    }
    case kernels::Unary::gelu:
      return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-x * x / 2) / std::sqrt(2 * M_PI);
  }
  return 0;
}

Array conv2d(const Array& x, const Array& w, const Array& bias, i64 n, i64 c, i64 h, i64 width,
             i64 co, i64 kh, i64 kw, i64 stride, i64 padding) {
  const i64 oh = (h + 2 * padding - kh) / stride + 1, ow = (width + 2 * padding - kw) / stride + 1;
  Array y(static_cast<std::size_t>(n * co * oh * ow), 0.0);
  for (i64 b = 0; b < n; ++b)
    for (i64 o = 0; o < co; ++o)
      for (i64 oy = 0; oy < oh; ++oy)
        for (i64 ox = 0; ox < ow; ++ox) {
          double s = bias.empty() ? 0.0 : bias[o];
          for (i64 ci = 0; ci < c; ++ci)
            for (i64 ky = 0; ky < kh; ++ky)
              for (i64 kx = 0; kx < kw; ++kx) {
                i64 iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= width) continue;
                s += x[((b * c + ci) * h + iy) * width + ix] * w[((o * c + ci) * kh + ky) * kw + kx];
              }
          y[((b * co + o) * oh + oy) * ow + ox] = s;
        }
  return y;
}

Array conv2d_input_grad(const Array& gy, const Array& w, i64 n, i64 c, i64 h, i64 width, i64 co, i64 kh, i64 kw,
                        i64 stride, i64 padding) {
  const i64 oh = (h + 2 * padding - kh) / stride + 1, ow = (width + 2 * padding - kw) / stride + 1;
  Array gx(static_cast<std::size_t>(n * c * h * width), 0.0);
  // Each input pixel (iy, ix) gathers the outputs whose window covers it: oy·stride − padding + ky = iy.
  for (i64 b = 0; b < n; ++b)
    for (i64 ci = 0; ci < c; ++ci)
      for (i64 iy = 0; iy < h; ++iy)
        for (i64 ix = 0; ix < width; ++ix) {
          double s = 0;
          for (i64 o = 0; o < co; ++o)
            for (i64 oy = 0; oy < oh; ++oy)
              for (i64 ox = 0; ox < ow; ++ox) {
                const i64 ky = iy + padding - oy * stride, kx = ix + padding - ox * stride;
                if (ky < 0 || ky >= kh || kx < 0 || kx >= kw) continue;
                s += gy[((b * co + o) * oh + oy) * ow + ox] * w[((o * c + ci) * kh + ky) * kw + kx];
              }
          gx[((b * c + ci) * h + iy) * width + ix] = s;
        }
  return gx;
}

Array conv2d_weight_grad(const Array& x, const Array& gy, i64 n, i64 c, i64 h, i64 width, i64 co, i64 kh, i64 kw,
                         i64 stride, i64 padding) {
  const i64 oh = (h + 2 * padding - kh) / stride + 1, ow = (width + 2 * padding - kw) / stride + 1;
  Array gw(static_cast<std::size_t>(co * c * kh * kw), 0.0);
  for (i64 o = 0; o < co; ++o)
    for (i64 ci = 0; ci < c; ++ci)
      for (i64 ky = 0; ky < kh; ++ky)
        for (i64 kx = 0; kx < kw; ++kx) {
          double s = 0;
          for (i64 b = 0; b < n; ++b)
            for (i64 oy = 0; oy < oh; ++oy)
              for (i64 ox = 0; ox < ow; ++ox) {
                const i64 iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= width) continue;
                s += gy[((b * co + o) * oh + oy) * ow + ox] * x[((b * c + ci) * h + iy) * width + ix];
              }
          gw[((o * c + ci) * kh + ky) * kw + kx] = s;
        }
  return gw;
}

Array max_pool2d(const Array& x, i64 planes, i64 h, i64 w, i64 kernel, i64 stride) {
  const i64 oh = (h - kernel) / stride + 1, ow = (w - kernel) / stride + 1;
  Array y(static_cast<std::size_t>(planes * oh * ow));
  for (i64 p = 0; p < planes; ++p)
    for (i64 oy = 0; oy < oh; ++oy)
      for (i64 ox = 0; ox < ow; ++ox) {
        double best = -std::numeric_limits<double>::infinity();
        for (i64 ky = 0; ky < kernel; ++ky)
          for (i64 kx = 0; kx < kernel; ++kx)
            best = std::max(best, x[(p * h + oy * stride + ky) * w + ox * stride + kx]);
        y[(p * oh + oy) * ow + ox] = best;
      }
  return y;
}

Array log_softmax(const Array& x, i64 rows, i64 cols) {
  Array y(x.size());
  for (i64 r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (i64 c = 0; c < cols; ++c) m = std::max(m, x[r * cols + c]);
    double s = 0;
    for (i64 c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - m);
    for (i64 c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] - m - std::log(s);
  }
  return y;
}

double cross_entropy(const Array& logits, const std::vector<std::int32_t>& labels, i64 rows, i64 cols) {
  Array lp = log_softmax(logits, rows, cols);
  double s = 0;
  for (i64 r = 0; r < rows; ++r) s -= lp[r * cols + labels[r]];
  return s / static_cast<double>(rows);
}

double mse(const Array& a, const Array& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

Array dense_layer_kernel_tile(const Array& d, const Array& h, i64 c, i64 out, i64 in, i64 i0, i64 ni, i64 j0, i64 nj) {
  auto gradient = [&](i64 i, i64 a) {  // vec(d hᵀ) then d: the layer's weight and bias gradients
    Array g;
    const double* di = d.data() + (i * c + a) * out;
    for (i64 o = 0; o < out; ++o)
      for (i64 p = 0; p < in; ++p) g.push_back(di[o] * h[static_cast<std::size_t>(i * in + p)]);
    for (i64 o = 0; o < out; ++o) g.push_back(di[o]);
    return g;
  };
  Array k(static_cast<std::size_t>(ni * c * nj * c));
  for (i64 i = 0; i < ni; ++i)
    for (i64 a = 0; a < c; ++a) {
      const Array gi = gradient(i0 + i, a);
      for (i64 j = 0; j < nj; ++j)
        for (i64 b = 0; b < c; ++b) {
          const Array gj = gradient(j0 + j, b);
          double s = 0;
          for (std::size_t q = 0; q < gi.size(); ++q) s += gi[q] * gj[q];
          k[static_cast<std::size_t>((i * c + a) * nj * c + j * c + b)] = s;
        }
    }
  return k;
}

double nnls_objective(const Array& gram, const Array& b, const Array& z) {
  const i64 m = static_cast<i64>(z.size());
  double f = 0;
  for (i64 i = 0; i < m; ++i) {
    double gz = 0;
    for (i64 j = 0; j < m; ++j) gz += gram[i * m + j] * z[j];
    f += z[i] * (0.5 * gz - b[i]);
  }
  return f;
}

Array nnls_by_supports(const Array& gram, const Array& b, i64 m) {
  GS_CHECK(m >= 0 && m <= 20, "nnls_by_supports: {} points is too many to try every support", m);
  Array best(static_cast<std::size_t>(m), 0.0);
  double best_f = 0;  // z = 0
  for (i64 mask = 1; mask < (i64(1) << m); ++mask) {
    std::vector<i64> p;
    for (i64 i = 0; i < m; ++i)
      if (mask >> i & 1) p.push_back(i);
    // [G_PP | b_P], reduced to the identity on the left.
    const i64 k = static_cast<i64>(p.size()), w = k + 1;
    Array a(static_cast<std::size_t>(k * w));
    for (i64 i = 0; i < k; ++i) {
      for (i64 j = 0; j < k; ++j) a[i * w + j] = gram[p[i] * m + p[j]];
      a[i * w + k] = b[p[i]];
    }
    bool invertible = true;
    for (i64 c = 0; c < k && invertible; ++c) {
      i64 pivot = c;
      for (i64 r = c; r < k; ++r)
        if (std::abs(a[r * w + c]) > std::abs(a[pivot * w + c])) pivot = r;
      if (std::abs(a[pivot * w + c]) < 1e-12) {
        invertible = false;
        break;
      }
      for (i64 j = 0; j < w; ++j) std::swap(a[c * w + j], a[pivot * w + j]);
      for (i64 r = 0; r < k; ++r)
        if (r != c) {
          const double f = a[r * w + c] / a[c * w + c];
          for (i64 j = 0; j < w; ++j) a[r * w + j] -= f * a[c * w + j];
        }
    }
    if (!invertible) continue;
    Array z(static_cast<std::size_t>(m), 0.0);
    bool feasible = true;
    for (i64 i = 0; i < k; ++i) {
      z[p[i]] = a[i * w + k] / a[i * w + i];
      feasible = feasible && z[p[i]] >= 0;
    }
    if (!feasible) continue;
    const double f = nnls_objective(gram, b, z);
    if (f < best_f) {
      best_f = f;
      best = z;
    }
  }
  return best;
}

Array qr_r(const Array& a, i64 rows, i64 cols) {
  Array q(static_cast<std::size_t>(rows * cols)), r(static_cast<std::size_t>(cols * cols), 0.0);
  for (i64 j = 0; j < cols; ++j) {
    Array v(static_cast<std::size_t>(rows));
    for (i64 i = 0; i < rows; ++i) v[i] = a[i * cols + j];
    for (int pass = 0; pass < 2; ++pass)
      for (i64 k = 0; k < j; ++k) {
        double d = 0;
        for (i64 i = 0; i < rows; ++i) d += q[i * cols + k] * v[i];
        for (i64 i = 0; i < rows; ++i) v[i] -= d * q[i * cols + k];
        r[k * cols + j] += d;
      }
    double norm = 0;
    for (double x : v) norm += x * x;
    norm = std::sqrt(norm);
    r[j * cols + j] = norm;
    for (i64 i = 0; i < rows; ++i) q[i * cols + j] = v[i] / norm;
  }
  return r;
}

}  // namespace gs::reference
