#pragma once
// The activations and their derivatives on the device, one definition for the elementwise kernels
// and the GEMMs of a dense layer, which apply the activation as they store y (forward) and its
// derivative as they read y's gradient (backward; kernels/cuda/gemm.cu). Formulas as in
// kernels/cpu/elementwise.cpp.
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

template <class T>
__device__ inline T activate(Unary op, T v) {
  switch (op) {
    case Unary::relu: return v > T(0) ? v : (v != v ? v : T(0));
    case Unary::tanh: return tanh(v);
    case Unary::sigmoid: return T(1) / (T(1) + exp(-v));
    case Unary::gelu: return T(0.5) * v * (T(1) + erf(v * T(0.70710678118654752440)));
  }
  return v;
}

template <class T>
__device__ inline T gelu_derivative(T x) {
  const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
  const T pdf = exp(T(-0.5) * x * x) * T(0.39894228040143267794);  // 1/√(2π)
  return cdf + x * pdf;
}

// gy ⊙ op'(x), for x the activation's input and y = op(x) its output; relu, tanh and sigmoid
// read only what they can differentiate from (relu: x, where y > 0 iff x > 0 so either serves;
// tanh and sigmoid: y), gelu reads x.
template <class T>
__device__ inline T activation_backward(Unary op, T x, T y, T gy) {
  switch (op) {
    case Unary::relu: return x <= T(0) ? T(0) : gy;  // NaN passes gy, as torch
    case Unary::tanh: return gy * (T(1) - y * y);
    case Unary::sigmoid: return gy * y * (T(1) - y);
    case Unary::gelu: return gy * gelu_derivative(x);
  }
  return gy;
}

}  // namespace gs::kernels::cuda
