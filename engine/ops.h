#pragma once
// The public ops. Each checks its operands (naming itself and their shapes when they do not fit),
// computes its forward on the operands' backend, and records its backward on the tape.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "kernels/elementwise.h"

namespace gs::ops {

// Dense algebra. matmul: [m, k] × [k, n]. linear: x [n, in], weight [out, in], bias [out] or
// undefined -> x weightᵀ + bias, as torch.nn.functional.linear.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
// act(linear(x, weight, bias)) for act relu, tanh or sigmoid, in one GEMM that applies the bias
// and the activation as it stores its output (one kernel on CUDA); the same values as the two
// ops. Its backward keeps only the output, from which these three activations differentiate.
Tensor linear_activation(const Tensor& x, const Tensor& weight, const Tensor& bias, kernels::Unary act);

// Elementwise with NumPy broadcasting (shapes aligned on the right; size-1 dimensions stretch).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, double factor);

Tensor relu(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor gelu(const Tensor& x);

// x [n, c, h, w], weight [co, c, kh, kw], bias [co] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride = 1,
              std::int64_t padding = 0);
Tensor max_pool2d(const Tensor& x, std::int64_t kernel, std::int64_t stride);

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& dims);  // one dimension may be -1
Tensor flatten(const Tensor& x);                      // [n, ...] -> [n, rest]
// Rows of x [n, ...] by i32 indices [m], on x's device: [m, ...]; any dtype, not differentiable
// (a batch taken from a dataset where it lives). Host indices are checked; device indices out of
// range give rows of NaN (−1 for i32).
Tensor gather_rows(const Tensor& x, const Tensor& indices);

Tensor sum(const Tensor& x);   // all elements -> one-element tensor of shape []
Tensor mean(const Tensor& x);

Tensor log_softmax(const Tensor& x);  // along the last dimension of [rows, classes]
// logits [n, classes], labels i32 [n] in [0, classes): mean over the batch of −log softmax.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// Mean over all elements of (prediction − target)², as torch.nn.MSELoss(). target is constant.
Tensor mse_loss(const Tensor& prediction, const Tensor& target);
// mse_loss(prediction, one_hot(labels, classes)) with prediction [n, classes], the same value and
// gradient without the targets stored (one launch on a GPU instead of two).
Tensor mse_one_hot_loss(const Tensor& prediction, const Tensor& labels);

// Not differentiable.
Tensor argmax(const Tensor& x);  // [rows, cols] -> i32 [rows]
double accuracy(const Tensor& logits, const Tensor& labels);
Tensor one_hot(const Tensor& labels, std::int64_t classes, DType dtype = DType::f32);

}  // namespace gs::ops

namespace gs {
inline Tensor operator+(const Tensor& a, const Tensor& b) { return ops::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return ops::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return ops::mul(a, b); }
inline Tensor operator*(const Tensor& a, double k) { return ops::scale(a, k); }
inline Tensor operator*(double k, const Tensor& a) { return ops::scale(a, k); }
}  // namespace gs
