#pragma once
// The slow float64 truth that every backend is held against. Written for clarity, not speed, and
// by a different route where one exists (direct convolution, not im2col + GEMM), so that a
// shared mistake is unlikely. Arrays are row-major std::vector<double>.
#include <cstdint>
#include <vector>

#include "kernels/elementwise.h"

namespace gs::reference {

using Array = std::vector<double>;
using i64 = std::int64_t;

// C[m×n] = op(A) op(B), op(A) m×k, op(B) k×n.
Array matmul(const Array& a, const Array& b, i64 m, i64 n, i64 k, bool transpose_a = false,
             bool transpose_b = false);
double unary(kernels::Unary op, double x);
double unary_derivative(kernels::Unary op, double x);

// x [n, c, h, w], w [co, c, kh, kw], bias [co] (may be empty) -> [n, co, oh, ow]
Array conv2d(const Array& x, const Array& w, const Array& bias, i64 n, i64 c, i64 h, i64 width,
             i64 co, i64 kh, i64 kw, i64 stride, i64 padding);
// The gradients of conv2d's ⟨gy, y⟩, gy [n, co, oh, ow]: with respect to x -> [n, c, h, w], and
// with respect to w -> [co, c, kh, kw]. Direct sums over the pixels each entry touches.
Array conv2d_input_grad(const Array& gy, const Array& w, i64 n, i64 c, i64 h, i64 width, i64 co, i64 kh, i64 kw,
                        i64 stride, i64 padding);
Array conv2d_weight_grad(const Array& x, const Array& gy, i64 n, i64 c, i64 h, i64 width, i64 co, i64 kh, i64 kw,
                         i64 stride, i64 padding);
// x [planes, h, w] -> [planes, oh, ow]
Array max_pool2d(const Array& x, i64 planes, i64 h, i64 w, i64 kernel, i64 stride);
Array log_softmax(const Array& x, i64 rows, i64 cols);
double cross_entropy(const Array& logits, const std::vector<std::int32_t>& labels, i64 rows, i64 cols);
double mse(const Array& a, const Array& b);

// One dense layer's block of the NTK, rows of samples [i0, i0 + ni), columns [j0, j0 + nj):
// each row (i, a) materializes its parameter gradient d_(i,a) [h_i, 1]ᵀ (weight, then bias)
// and the entries are their dot products. d [n·c, out], h [n, in]; returns [ni·c, nj·c].
Array dense_layer_kernel_tile(const Array& d, const Array& h, i64 c, i64 out, i64 in, i64 i0, i64 ni, i64 j0, i64 nj);

// min_{z ≥ 0} ½ zᵀG z − bᵀz (G = AᵀA, b = Aᵀy: non-negative least squares up to a constant) by
// brute force: the unconstrained optimum on every support whose Gram block is invertible (by
// Gaussian elimination with partial pivoting), the best of the feasible ones. 2^m supports: for
// m up to about 12. G is m × m, row-major.
double nnls_objective(const Array& gram, const Array& b, const Array& z);
Array nnls_by_supports(const Array& gram, const Array& b, i64 m);

// The R of a = Q R with a non-negative diagonal, a [rows, cols] row-major with rows ≥ cols of full
// column rank, by Gram–Schmidt with every column orthogonalized twice (not Householder, the
// backends' route). Row-major [cols, cols].
Array qr_r(const Array& a, i64 rows, i64 cols);

}  // namespace gs::reference
