#pragma once
// What is measured on kernels: the trace kernel, norms, the kernel distance and the alignment
// with the labels. Sums run in f64 in fixed chunks, so results do not depend on the thread count.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace gs::probe {

// The trace kernel [n, n]: Σ_a K[(i,a),(j,a)].
Tensor trace_kernel(const Tensor& kernel, std::int64_t classes);
// d(K, K′) = 1 − ⟨K, K′⟩_F / (‖K‖_F ‖K′‖_F), as ½‖K/‖K‖ − K′/‖K′‖‖²_F in f64: accurate near 0.
// NaN where either kernel is zero (the part of a network whose units have all died): undefined.
double kernel_distance(const Tensor& a, const Tensor& b);
// The same with the norms given (frobenius_norm of each), for many comparisons of few kernels.
double kernel_distance(const Tensor& a, double norm_a, const Tensor& b, double norm_b);
// d for every pair of kernels of one shape and dtype, norms given: a count × count matrix (row
// major, zero diagonal, NaN in the row and column of a zero kernel), each entry equal bit for bit
// to kernel_distance of its pair. One pass
// over the kernels in blocks that stay in cache, where a call per pair reads both kernels again.
std::vector<double> kernel_distances(const std::vector<Tensor>& kernels, const std::vector<double>& norms);
// Kernel-target alignment ⟨K, Y Yᵀ⟩ / (‖K‖ ‖Y Yᵀ‖) with Y the centred one-hot labels, one entry
// per row (i, a): Y_(i,a) = [a = y_i] − 1/C.
// `kernel_norm`: ‖K‖_F when already known (computed here when negative).
double kernel_alignment(const Tensor& kernel, const Tensor& labels, std::int64_t classes, double kernel_norm = -1);
double frobenius_norm(const Tensor& t);  // in f64
double trace(const Tensor& square);      // in f64

}  // namespace gs::probe
