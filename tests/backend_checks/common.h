#pragma once
// What every backend check shares: tensors on a device from values, NaN-poisoned outputs, the
// tolerance of f32 against the float64 truth, and how a backend's products round.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "../helpers.h"
#include "kernels/backend.h"
#include "kernels/reference/reference.h"

namespace gs::test::backend_checks {

inline const double nan_value = std::numeric_limits<double>::quiet_NaN();

inline Tensor on(Device d, const std::vector<double>& v, DType dt) {
  return Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, dt, d);
}
inline Tensor poisoned(Device d, std::int64_t n, DType dt) { return Tensor::full(Shape{n}, nan_value, dt, d); }
inline Tensor labels_on(Device d, const std::vector<std::int32_t>& v) {
  return Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, d);
}
// f32 results against f64 truth: rounding of inputs and of k-term sums.
inline Tolerance tol(DType dt, double terms = 1) {
  return dt == DType::f32 ? Tolerance{2e-6 * terms, 2e-5} : Tolerance{1e-14 * terms, 1e-12};
}
// The inputs rounded to the dtype, as the backend sees them.
inline std::vector<double> rounded(const std::vector<double>& v, DType dt) {
  return dt == DType::f32 ? Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, DType::f32).to_vector() : v;
}

// How a backend's products round, for the checks of gemm, dense layers, their backward pass and
// convolutions: the inputs drawn (rounded as the backend sees them) and the tolerance of a sum of `terms`
// products. FP32 by default; tests/test_gpu.cpp also checks the tensor cores' TF32 products.
struct Products {
  std::vector<double> (*inputs)(const std::vector<double>&, DType) = rounded;
  Tolerance (*tolerance)(DType, double terms) = tol;
  std::vector<DType> dtypes{DType::f32, DType::f64};
};

}  // namespace gs::test::backend_checks
