#pragma once
// Helpers shared by the op files: operand checks with messages that name the op and the shapes.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/backend.h"

namespace gs::ops::detail {

inline void check_defined(const char* op, const Tensor& t, const char* role) {
  GS_CHECK(t.defined(), "{}: the {} is an undefined tensor", op, role);
}

inline void check_float(const char* op, const Tensor& t, const char* role) {
  check_defined(op, t, role);
  GS_CHECK(t.dtype() != DType::i32, "{}: the {} is {}, but {} needs f32 or f64", op, role, t.describe(), op);
}

// Both operands share a dtype and a device.
inline void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  check_float(op, a, "first operand");
  check_float(op, b, "second operand");
  GS_CHECK(a.dtype() == b.dtype(), "{}: dtype mismatch between {} and {}; convert one with .to(DType)", op,
           a.describe(), b.describe());
  GS_CHECK(a.device() == b.device(), "{}: device mismatch between {} and {}; move one with .to(Device)", op,
           a.describe(), b.describe());
}

inline kernels::Backend& backend_of(const Tensor& t) { return kernels::backend(t.device()); }

inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

}  // namespace gs::ops::detail
