// Matrix products, dense layers, convolution and pooling.
#include <optional>

#include "engine/ops_common.h"

namespace gs::ops {

using namespace detail;
using kernels::GemmShape;

namespace {

// C = op(A) op(B) with all three row-major and dense; beta = 1 adds onto C.
void gemm_raw(const Tensor& like, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
              const void* a, const void* b, double beta, void* c) {
  GemmShape s;
  s.transpose_a = ta;
  s.transpose_b = tb;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = ta ? m : k;
  s.ldb = tb ? k : n;
  s.ldc = n;
  backend_of(like).gemm(like.dtype(), s, 1.0, a, b, beta, c);
}

void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double beta = 0.0) {
  const std::int64_t m = ta ? a.size(1) : a.size(0), k = ta ? a.size(0) : a.size(1);
  const std::int64_t n = tb ? b.size(0) : b.size(1);
  gemm_raw(a, ta, tb, m, n, k, a.raw(), b.raw(), beta, c.raw());
}

void check_rank(const char* op, const Tensor& t, int rank, const char* role, const char* layout) {
  GS_CHECK(t.rank() == rank, "{}: the {} must be {}-D {}, got {}", op, role, rank, layout, t.describe());
}

// The input, weight and bias gradients of conv2d. `patches`: the forward pass's im2col matrices
// where the backend keeps them (the cpu), else undefined (CUDA gathers them again on the fly).
std::vector<Tensor> conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& patches,
                                    const kernels::ConvGeometry& geo, const Tensor& g, const std::vector<bool>& needs) {
  auto& be = backend_of(g);
  const std::int64_t n = x.size(0), co = w.size(0), pixels = geo.out_h() * geo.out_w();
  std::vector<Tensor> grads(3);
  if (needs[1]) {
    grads[1] = empty_like(w);
    be.conv2d_backward_weight(g.dtype(), geo, n, co, x.raw(), g.raw(), patches.defined() ? patches.raw() : nullptr,
                              grads[1].raw());
  }
  if (needs[0]) {
    grads[0] = empty_like(x);
    be.conv2d_backward_data(g.dtype(), geo, n, co, g.raw(), w.raw(), grads[0].raw());
  }
  if (needs[2]) {
    grads[2] = Tensor::empty(Shape{co}, g.dtype(), g.device());
    kernels::Broadcast b;
    b.out = {n, co, pixels, 1};
    be.reduce_to_operand(g.dtype(), b, {0, 1, 0, 0}, co, 1.0, g.raw(), {}, nullptr, grads[2].raw());
  }
  return grads;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_pair("matmul", a, b);
  check_rank("matmul", a, 2, "first operand", "[m, k]");
  check_rank("matmul", b, 2, "second operand", "[k, n]");
  GS_CHECK(a.size(1) == b.size(0), "matmul: inner dimensions differ: {} × {}", a.shape().str(), b.shape().str());
  Tensor c = Tensor::empty(Shape{a.size(0), b.size(1)}, a.dtype(), a.device());
  gemm(a, false, b, false, c);
  return record(c, "matmul", {a, b}, [a, b](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(2);
    if (needs[0]) {
      grads[0] = empty_like(a);
      gemm(g, false, b, true, grads[0]);  // gA = g Bᵀ
    }
    if (needs[1]) {
      grads[1] = empty_like(b);
      gemm(a, true, g, false, grads[1]);  // gB = Aᵀ g
    }
    return grads;
  });
}

namespace {

void check_linear(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_pair(op, x, w);
  check_rank(op, x, 2, "input", "[batch, in_features]");
  check_rank(op, w, 2, "weight", "[out_features, in_features]");
  GS_CHECK(x.size(1) == w.size(1), "{}: the input {} has {} features but the weight {} expects {}", op, x.shape().str(),
           x.size(1), w.shape().str(), w.size(1));
  if (bias.defined()) {
    check_pair(op, x, bias);
    GS_CHECK(bias.rank() == 1 && bias.size(0) == w.size(0), "{}: the bias must be [{}], got {}", op, w.size(0),
             bias.describe());
  }
}

// y = act(x Wᵀ + b) in one GEMM that applies bias and activation as it stores y.
Tensor dense_forward(const Tensor& x, const Tensor& w, const Tensor& bias, std::optional<kernels::Unary> act) {
  Tensor y = Tensor::empty(Shape{x.size(0), w.size(0)}, x.dtype(), x.device());
  const std::int64_t m = x.size(0), n = w.size(0), k = x.size(1);
  backend_of(x).gemm_bias_act(x.dtype(), {false, true, m, n, k, k, k, n}, x.raw(), w.raw(),
                              bias.defined() ? bias.raw() : nullptr, act, y.raw());
  return y;
}

// The gradients of y = act(x Wᵀ + b) (act: none, relu, tanh or sigmoid) given y's gradient g, in
// one backend call (one launch on CUDA). `y` is needed only with an activation.
std::vector<Tensor> dense_backward(const Tensor& x, const Tensor& w, const Tensor& y, std::optional<kernels::Unary> act,
                                   const Tensor& g, const std::vector<bool>& needs) {
  std::vector<Tensor> grads(3);
  if (needs[0]) grads[0] = empty_like(x);
  if (needs[1]) grads[1] = empty_like(w);
  if (needs[2]) grads[2] = Tensor::empty(Shape{w.size(0)}, g.dtype(), g.device());
  if (!needs[0] && !needs[1] && !needs[2]) return grads;
  Tensor gz_scratch = act ? empty_like(g) : Tensor();
  auto raw = [](Tensor& t) { return t.defined() ? t.raw() : nullptr; };
  backend_of(g).dense_backward(g.dtype(), {x.size(0), x.size(1), w.size(0)}, act, x.raw(), w.raw(),
                               y.defined() ? y.raw() : nullptr, g.raw(), raw(gz_scratch), raw(grads[0]), raw(grads[1]),
                               raw(grads[2]));
  return grads;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_linear("linear", x, w, bias);
  Tensor y = dense_forward(x, w, bias, std::nullopt);
  return record(y, "linear", {x, w, bias}, [x, w](const Tensor& g, const std::vector<bool>& needs) {
    return dense_backward(x, w, Tensor(), std::nullopt, g, needs);
  });
}

Tensor linear_activation(const Tensor& x, const Tensor& w, const Tensor& bias, kernels::Unary act) {
  check_linear("linear_activation", x, w, bias);
  GS_CHECK(act != kernels::Unary::gelu,
           "linear_activation: gelu's derivative needs its input, which this op does not keep; use linear, then gelu");
  Tensor y = dense_forward(x, w, bias, act);
  // relu, tanh and sigmoid differentiate from their output: relu'(z) is y > 0 as well as z > 0.
  Tensor out = y.detach();
  return record(y, "linear_activation", {x, w, bias}, [x, w, out, act](const Tensor& g, const std::vector<bool>& needs) {
    return dense_backward(x, w, out, act, g, needs);
  });
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::int64_t stride, std::int64_t padding) {
  check_pair("conv2d", x, w);
  check_rank("conv2d", x, 4, "input", "[batch, channels, height, width]");
  check_rank("conv2d", w, 4, "weight", "[out_channels, in_channels, kernel_h, kernel_w]");
  GS_CHECK(x.size(1) == w.size(1), "conv2d: the input {} has {} channels but the weight {} expects {}",
           x.shape().str(), x.size(1), w.shape().str(), w.size(1));
  GS_CHECK(stride >= 1 && padding >= 0, "conv2d: stride must be ≥ 1 and padding ≥ 0, got {} and {}", stride,
           padding);
  kernels::ConvGeometry geo;
  geo.channels = x.size(1);
  geo.height = x.size(2);
  geo.width = x.size(3);
  geo.kernel_h = w.size(2);
  geo.kernel_w = w.size(3);
  geo.stride = stride;
  geo.padding = padding;
  GS_CHECK(geo.height + 2 * padding >= geo.kernel_h && geo.width + 2 * padding >= geo.kernel_w,
           "conv2d: the kernel {} is larger than the padded input {}", w.shape().str(), x.shape().str());
  const bool has_bias = bias.defined();
  if (has_bias) {
    check_pair("conv2d", x, bias);
    GS_CHECK(bias.rank() == 1 && bias.size(0) == w.size(0), "conv2d: the bias must be [{}], got {}", w.size(0),
             bias.describe());
  }
  const std::int64_t n = x.size(0), co = w.size(0), oh = geo.out_h(), ow = geo.out_w(), pixels = oh * ow;
  auto& be = backend_of(x);
  Tensor y = Tensor::empty(Shape{n, co, oh, ow}, x.dtype(), x.device());
  // Kept for the weight gradient where the backend builds them anyway, and a gradient will be taken.
  Tensor patches;
  if (be.conv2d_keeps_patches() && grad_enabled() && w.requires_grad())
    patches = Tensor::empty(Shape{n, geo.patch_size(), pixels}, x.dtype(), x.device());
  if (y.numel() > 0)
    be.conv2d_forward(x.dtype(), geo, n, co, x.raw(), w.raw(), y.raw(), patches.defined() ? patches.raw() : nullptr);
  if (has_bias && y.numel() > 0) {
    kernels::Broadcast b;
    b.out = {n, co, pixels, 1};
    b.a_stride = {co * pixels, pixels, 1, 0};
    b.b_stride = {0, 1, 0, 0};
    be.binary(kernels::Binary::add, x.dtype(), b, y.raw(), bias.raw(), y.raw());
  }
  return record(y, "conv2d", {x, w, bias}, [x, w, patches, geo](const Tensor& g, const std::vector<bool>& needs) {
    return conv2d_backward(x, w, patches, geo, g, needs);
  });
}

Tensor max_pool2d(const Tensor& x, std::int64_t kernel, std::int64_t stride) {
  check_float("max_pool2d", x, "input");
  check_rank("max_pool2d", x, 4, "input", "[batch, channels, height, width]");
  GS_CHECK(kernel >= 1 && stride >= 1, "max_pool2d: kernel and stride must be ≥ 1, got {} and {}", kernel, stride);
  GS_CHECK(x.size(2) >= kernel && x.size(3) >= kernel, "max_pool2d: the window {} is larger than the input {}",
           kernel, x.shape().str());
  kernels::PoolGeometry geo;
  geo.planes = x.size(0) * x.size(1);
  geo.height = x.size(2);
  geo.width = x.size(3);
  geo.kernel = kernel;
  geo.stride = stride;
  Tensor y = Tensor::empty(Shape{x.size(0), x.size(1), geo.out_h(), geo.out_w()}, x.dtype(), x.device());
  Tensor winners = Tensor::empty(y.shape(), DType::i32, x.device());
  backend_of(x).max_pool2d(x.dtype(), geo, x.raw(), y.raw(), static_cast<std::int32_t*>(winners.raw()));
  Shape in_shape = x.shape();
  return record(y, "max_pool2d", {x}, [geo, winners, in_shape](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(in_shape, g.dtype(), g.device());
    backend_of(g).max_pool2d_backward(g.dtype(), geo, g.raw(), static_cast<const std::int32_t*>(winners.raw()),
                                      gx.raw());
    return std::vector<Tensor>{gx};
  });
}

}  // namespace gs::ops
