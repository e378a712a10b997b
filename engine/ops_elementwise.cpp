// Broadcasting arithmetic, activations, reshapes and reductions.
#include <fmt/ranges.h>

#include <array>

#include "engine/ops_common.h"

namespace gs::ops {

using namespace detail;
using kernels::Binary;
using kernels::Broadcast;
using kernels::Unary;
using Strides = std::array<std::int64_t, 4>;

namespace {

// Right-aligned NumPy broadcasting of a against b, padded to rank 4.
struct BroadcastPlan {
  Broadcast kernel;
  Shape out;
  int out_rank = 0;
};

std::array<std::int64_t, 4> padded(const Shape& s) {
  std::array<std::int64_t, 4> d{1, 1, 1, 1};
  for (int i = 0; i < s.rank(); ++i) d[4 - s.rank() + i] = s[i];
  return d;
}

Strides broadcast_strides(const std::array<std::int64_t, 4>& dims, const std::array<std::int64_t, 4>& out) {
  Strides st{};
  std::int64_t running = 1;
  for (int i = 3; i >= 0; --i) {
    st[i] = (dims[i] == 1 && out[i] != 1) ? 0 : running;
    running *= dims[i];
  }
  return st;
}

BroadcastPlan plan(const char* op, const Tensor& a, const Tensor& b) {
  auto da = padded(a.shape()), db = padded(b.shape());
  BroadcastPlan p;
  p.out_rank = std::max(a.rank(), b.rank());
  for (int i = 0; i < 4; ++i) {
    GS_CHECK(da[i] == db[i] || da[i] == 1 || db[i] == 1,
             "{}: shapes {} and {} do not broadcast (dimension {} from the right: {} vs {})", op,
             a.shape().str(), b.shape().str(), 4 - i, da[i], db[i]);
    p.kernel.out[i] = da[i] == 1 ? db[i] : da[i];  // so that 0 against 1 stays empty
  }
  p.kernel.a_stride = broadcast_strides(da, p.kernel.out);
  p.kernel.b_stride = broadcast_strides(db, p.kernel.out);
  p.out = Shape::of(p.kernel.out.data() + (4 - p.out_rank), p.out_rank);
  return p;
}

// The gradient of an operand of `shape` (strides `stride` in the broadcast) from the output's g,
// optionally multiplied by `other` (strides `other_stride`) first.
Tensor operand_grad(const Tensor& g, const Broadcast& b, const Tensor& operand, const Strides& stride,
                    double factor, const Tensor& other = Tensor(), const Strides& other_stride = {}) {
  auto& be = backend_of(g);
  const bool same_shape = operand.shape() == g.shape();
  if (same_shape && !other.defined()) {
    if (factor == 1.0) return g;
    Tensor out = empty_like(g);
    be.axpby(g.dtype(), g.numel(), factor, g.raw(), 0.0, out.raw());
    return out;
  }
  Tensor out = empty_like(operand);
  if (same_shape && other.shape() == g.shape() && factor == 1.0) {
    be.binary(Binary::mul, g.dtype(), b, g.raw(), other.raw(), out.raw());
    return out;
  }
  be.reduce_to_operand(g.dtype(), b, stride, operand.numel(), factor, g.raw(), other_stride,
                       other.defined() ? other.raw() : nullptr, out.raw());
  return out;
}

Tensor binary_op(const char* name, Binary op, const Tensor& a, const Tensor& b) {
  check_pair(name, a, b);
  BroadcastPlan p = plan(name, a, b);
  Tensor out = Tensor::empty(p.out, a.dtype(), a.device());
  if (out.numel() > 0) backend_of(a).binary(op, a.dtype(), p.kernel, a.raw(), b.raw(), out.raw());
  auto k = p.kernel;
  return record(out, name, {a, b}, [op, k, a, b](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(2);
    switch (op) {
      case Binary::add:
        if (needs[0]) grads[0] = operand_grad(g, k, a, k.a_stride, 1.0);
        if (needs[1]) grads[1] = operand_grad(g, k, b, k.b_stride, 1.0);
        break;
      case Binary::sub:
        if (needs[0]) grads[0] = operand_grad(g, k, a, k.a_stride, 1.0);
        if (needs[1]) grads[1] = operand_grad(g, k, b, k.b_stride, -1.0);
        break;
      case Binary::mul:
        if (needs[0]) grads[0] = operand_grad(g, k, a, k.a_stride, 1.0, b, k.b_stride);
        if (needs[1]) grads[1] = operand_grad(g, k, b, k.b_stride, 1.0, a, k.a_stride);
        break;
    }
    return grads;
  });
}

Tensor unary_op(const char* name, Unary op, const Tensor& x) {
  check_float(name, x, "input");
  Tensor y = empty_like(x);
  backend_of(x).unary(op, x.dtype(), x.numel(), x.raw(), y.raw());
  // relu and gelu differentiate from x, tanh and sigmoid from y: save only the one needed.
  const bool from_input = op == Unary::relu || op == Unary::gelu;
  Tensor saved = from_input ? x.detach() : y.detach();
  return record(y, name, {x}, [op, saved, from_input](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = empty_like(g);
    backend_of(g).unary_backward(op, g.dtype(), g.numel(), from_input ? saved.raw() : nullptr,
                                 from_input ? nullptr : saved.raw(), g.raw(), gx.raw());
    return std::vector<Tensor>{gx};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op("add", Binary::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op("sub", Binary::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op("mul", Binary::mul, a, b); }

Tensor scale(const Tensor& a, double factor) {
  check_float("scale", a, "input");
  Tensor out = empty_like(a);
  backend_of(a).axpby(a.dtype(), a.numel(), factor, a.raw(), 0.0, out.raw());
  return record(out, "scale", {a}, [factor](const Tensor& g, const std::vector<bool>&) {
    Tensor ga = empty_like(g);
    backend_of(g).axpby(g.dtype(), g.numel(), factor, g.raw(), 0.0, ga.raw());
    return std::vector<Tensor>{ga};
  });
}

Tensor relu(const Tensor& x) { return unary_op("relu", Unary::relu, x); }
Tensor tanh(const Tensor& x) { return unary_op("tanh", Unary::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op("sigmoid", Unary::sigmoid, x); }
Tensor gelu(const Tensor& x) { return unary_op("gelu", Unary::gelu, x); }

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape) {
  check_defined("reshape", x, "input");
  GS_CHECK(shape.size() <= Shape::max_rank, "reshape: at most {} dimensions, got {}", Shape::max_rank, shape.size());
  std::int64_t dims[Shape::max_rank];
  int inferred = -1;
  std::int64_t known = 1;
  const int rank = static_cast<int>(shape.size());
  for (int i = 0; i < rank; ++i) {
    dims[i] = shape[i];
    if (dims[i] == -1) {
      GS_CHECK(inferred < 0, "reshape: at most one dimension may be -1, got {}", fmt::join(shape, ", "));
      inferred = i;
    } else {
      known *= dims[i];
    }
  }
  if (inferred >= 0) {
    GS_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot reshape {} into [{}]", x.describe(),
             fmt::join(shape, ", "));
    dims[inferred] = x.numel() / known;
  }
  Shape target = Shape::of(dims, rank);
  GS_CHECK(target.numel() == x.numel(), "reshape: cannot reshape {} ({} elements) into {} ({} elements)",
           x.describe(), x.numel(), target.str(), target.numel());
  Tensor out = x.view(target);
  Shape from = x.shape();
  return record(out, "reshape", {x}, [from](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.view(from)};
  });
}

Tensor flatten(const Tensor& x) {
  check_defined("flatten", x, "input");
  GS_CHECK(x.rank() >= 1, "flatten: needs a batch dimension, got {}", x.describe());
  const std::int64_t n = x.size(0);
  return reshape(x, {n, n == 0 ? 0 : x.numel() / n});
}

Tensor gather_rows(const Tensor& x, const Tensor& indices) {
  check_defined("gather_rows", x, "input");
  check_defined("gather_rows", indices, "indices");
  GS_CHECK(x.rank() >= 1, "gather_rows: needs rows to take, got {}", x.describe());
  GS_CHECK(indices.dtype() == DType::i32 && indices.rank() == 1, "gather_rows: indices must be i32[m], got {}",
           indices.describe());
  GS_CHECK(x.device() == indices.device(), "gather_rows: {} and the indices {} are on different devices; move one with .to(Device)",
           x.describe(), indices.describe());
  const std::int64_t rows = x.size(0);
  if (indices.device() == Device::cpu) {
    const auto* p = static_cast<const std::int32_t*>(indices.raw());
    for (std::int64_t i = 0; i < indices.numel(); ++i)
      GS_CHECK(p[i] >= 0 && p[i] < rows, "gather_rows: index {} at position {} is out of range for {} rows", p[i], i, rows);
  }
  std::int64_t dims[Shape::max_rank], row_elements = 1;
  dims[0] = indices.size(0);
  for (int i = 1; i < x.rank(); ++i) row_elements *= dims[i] = x.size(i);
  Tensor out = Tensor::empty(Shape::of(dims, x.rank()), x.dtype(), x.device());
  backend_of(x).gather_rows(x.dtype(), indices.size(0), row_elements, rows, x.raw(),
                            static_cast<const std::int32_t*>(indices.raw()), out.raw());
  return out;
}

Tensor sum(const Tensor& x) {
  check_float("sum", x, "input");
  Tensor out = Tensor::empty(Shape{}, x.dtype(), x.device());
  backend_of(x).sum(x.dtype(), x.numel(), x.raw(), out.raw());
  Shape from = x.shape();
  return record(out, "sum", {x}, [from](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(from, g.dtype(), g.device());
    backend_of(g).broadcast_rows(g.dtype(), gx.numel(), 1, g.raw(), gx.raw());
    return std::vector<Tensor>{gx};
  });
}

Tensor mean(const Tensor& x) {
  check_float("mean", x, "input");
  // An empty mean is NaN, as torch.mean: 0 * (1/0) would be the silent alternative.
  return scale(sum(x), x.numel() == 0 ? std::nan("") : 1.0 / static_cast<double>(x.numel()));
}

}  // namespace gs::ops
