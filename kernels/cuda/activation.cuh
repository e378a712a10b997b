#pragma once
// The activations on the device, one definition for the elementwise kernels and the GEMM that
// applies a dense layer's activation as it stores (kernels/cuda/gemm.cu). Formulas as in
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

}  // namespace gs::kernels::cuda
