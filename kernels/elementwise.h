#pragma once
// Elementwise arithmetic: activations and their derivatives, broadcasting binary ops, the sum
// back to a broadcast operand's shape, and y = αx + βy (scaling, gradient accumulation).
#include <array>

#include "kernels/family.h"

namespace gs::kernels {

enum class Unary { relu, tanh, sigmoid, gelu };
enum class Binary { add, sub, mul };

// A binary op's operands padded to rank 4 on the left; stride 0 marks a broadcast dimension.
struct Broadcast {
  std::array<i64, 4> out{1, 1, 1, 1};
  std::array<i64, 4> a_stride{0, 0, 0, 0};
  std::array<i64, 4> b_stride{0, 0, 0, 0};
  constexpr i64 numel() const { return out[0] * out[1] * out[2] * out[3]; }
};

class ElementwiseKernels {
 public:
  virtual ~ElementwiseKernels() = default;
  virtual void unary(Unary op, DType dtype, i64 n, const void* x, void* y) = 0;
  // gx = gy * f'(x); relu uses x (f'(0) = 0, as PyTorch), tanh and sigmoid use y = f(x), gelu x.
  virtual void unary_backward(Unary op, DType dtype, i64 n, const void* x, const void* y,
                              const void* gy, void* gx) = 0;
  virtual void binary(Binary op, DType dtype, const Broadcast& b, const void* x, const void* y,
                      void* out) = 0;
  // g_operand = Σ over the broadcast dimensions of scale * g_out [* other], for the operand whose
  // strides are `operand_stride`; `other` (may be null) multiplies elementwise, for mul's backward.
  virtual void reduce_to_operand(DType dtype, const Broadcast& b, const std::array<i64, 4>& operand_stride,
                                 i64 operand_numel, double scale, const void* g_out,
                                 const std::array<i64, 4>& other_stride, const void* other,
                                 void* g_operand) = 0;
  // y = alpha * x + beta * y; beta = 0 overwrites y (NaN in the old y does not leak).
  virtual void axpby(DType dtype, i64 n, double alpha, const void* x, double beta, void* y) = 0;
  // y[r, :] = row for every r: the bias term of a dense layer before the GEMM adds into it.
  virtual void broadcast_rows(DType dtype, i64 rows, i64 cols, const void* row, void* y) = 0;
  // y[c] = Σ_r x[r, c]: the bias gradient of a dense layer.
  virtual void sum_rows(DType dtype, i64 rows, i64 cols, const void* x, void* y) = 0;
  // y[0] = Σ x, accumulated in f64 in a fixed order.
  virtual void sum(DType dtype, i64 n, const void* x, void* y) = 0;
};

}  // namespace gs::kernels
