#include "engine/tensor.h"

#include <cstring>

#include "engine/allocator.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/backend.h"

namespace gs {

Storage::Storage(Device d, std::size_t n) : data(gs::allocate(d, n)), bytes(n), device(d) {}
Storage::~Storage() {
  // A device whose context an earlier fault broke fails cudaFree as well; that error, thrown from
  // a destructor while the first unwinds, would end the process before the first is reported.
  try {
    gs::release(device, data, bytes);
  } catch (...) {
  }
}

namespace {
std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(device, static_cast<std::size_t>(shape.numel()) * dtype_size(dtype));
  impl->shape = shape;
  impl->dtype = dtype;
  return impl;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor(make_impl(shape, dtype, device));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  kernels::backend(device).fill(dtype, t.numel(), value, t.raw());
  return t;
}

Tensor Tensor::from(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  GS_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(),
           "Tensor::from: {} values do not fill a tensor of shape {} ({} elements)", values.size(),
           shape.str(), shape.numel());
  Tensor host = empty(shape, DType::f64, Device::cpu);
  if (!values.empty()) std::memcpy(host.raw(), values.data(), values.size() * sizeof(double));
  Tensor typed = dtype == DType::f64 ? host : host.to(dtype);
  return device == Device::cpu ? typed : typed.to(device);
}

Tensor Tensor::from(const std::vector<float>& values, const Shape& shape, Device device) {
  GS_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(),
           "Tensor::from: {} values do not fill a tensor of shape {} ({} elements)", values.size(),
           shape.str(), shape.numel());
  Tensor host = empty(shape, DType::f32, Device::cpu);
  if (!values.empty()) std::memcpy(host.raw(), values.data(), values.size() * sizeof(float));
  return device == Device::cpu ? host : host.to(device);
}

Tensor Tensor::from(const std::vector<std::int32_t>& values, const Shape& shape, Device device) {
  GS_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(),
           "Tensor::from: {} values do not fill a tensor of shape {} ({} elements)", values.size(),
           shape.str(), shape.numel());
  Tensor host = empty(shape, DType::i32, Device::cpu);
  if (!values.empty()) std::memcpy(host.raw(), values.data(), values.size() * sizeof(std::int32_t));
  return device == Device::cpu ? host : host.to(device);
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full(Shape{}, value, dtype, device); }

const TensorImpl& Tensor::impl(const char* what) const {
  GS_CHECK(impl_ != nullptr, "{} on an undefined tensor", what);
  return *impl_;
}
TensorImpl& Tensor::impl(const char* what) {
  GS_CHECK(impl_ != nullptr, "{} on an undefined tensor", what);
  return *impl_;
}

const Shape& Tensor::shape() const { return impl("shape()").shape; }
DType Tensor::dtype() const { return impl("dtype()").dtype; }
Device Tensor::device() const { return impl("device()").storage->device; }

std::string Tensor::describe() const {
  if (!impl_) return "an undefined tensor";
  return fmt::format("{}{} on {}", dtype_name(dtype()), shape().str(), device_name(device()));
}

void* Tensor::raw() {
  auto& i = impl("raw()");
  return static_cast<char*>(i.storage->data) + i.offset * static_cast<std::int64_t>(dtype_size(i.dtype));
}
const void* Tensor::raw() const { return const_cast<Tensor*>(this)->raw(); }

Tensor Tensor::to(Device target) const {
  Tensor out = empty(shape(), dtype(), target);
  const std::size_t bytes = static_cast<std::size_t>(numel()) * dtype_size(dtype());
  if (device() == target) {
    kernels::backend(target).copy(out.raw(), raw(), bytes);
  } else if (target == Device::cpu) {
    kernels::backend(device()).copy_to_host(out.raw(), raw(), bytes);
  } else {
    kernels::backend(target).copy_from_host(out.raw(), raw(), bytes);
  }
  return out;
}

Tensor Tensor::to(DType target) const {
  Tensor out = empty(shape(), target, device());
  kernels::backend(device()).convert(dtype(), target, numel(), raw(), out.raw());
  return out;
}

Tensor Tensor::clone() const { return to(device()); }

std::vector<double> Tensor::to_vector() const {
  Tensor host = device() == Device::cpu ? *this : to(Device::cpu);
  if (host.dtype() != DType::f64) host = host.to(DType::f64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + numel());
}

std::vector<std::int32_t> Tensor::to_int_vector() const {
  Tensor host = device() == Device::cpu ? *this : to(Device::cpu);
  if (host.dtype() != DType::i32) host = host.to(DType::i32);
  const std::int32_t* p = host.data<std::int32_t>();
  return std::vector<std::int32_t>(p, p + numel());
}

double Tensor::item() const {
  GS_CHECK(numel() == 1, "item() needs a one-element tensor, got {}", describe());
  return to_vector()[0];
}

void Tensor::copy_(const Tensor& src) {
  GS_CHECK(src.shape() == shape() && src.dtype() == dtype(),
           "copy_: the source is {} but the destination is {}", src.describe(), describe());
  const std::size_t bytes = static_cast<std::size_t>(numel()) * dtype_size(dtype());
  if (src.device() == device())
    kernels::backend(device()).copy(raw(), src.raw(), bytes);
  else if (device() == Device::cpu)
    kernels::backend(src.device()).copy_to_host(raw(), src.raw(), bytes);
  else
    kernels::backend(device()).copy_from_host(raw(), src.raw(), bytes);
}

Tensor Tensor::view(const Shape& s) const {
  GS_CHECK(s.numel() == numel(), "view: cannot view {} as shape {} ({} elements)", describe(), s.str(),
           s.numel());
  auto v = std::make_shared<TensorImpl>(impl("view()"));
  v->shape = s;
  v->requires_grad = false;
  v->grad.reset();
  v->grad_fn.reset();
  return Tensor(v);
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  GS_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= size(0),
           "rows({}, {}) out of range for {}", begin, end, describe());
  std::int64_t dims[Shape::max_rank];
  for (int i = 0; i < rank(); ++i) dims[i] = size(i);
  dims[0] = end - begin;
  Shape s = Shape::of(dims, rank());
  Tensor v = view(shape());
  v.impl_->shape = s;
  v.impl_->offset += begin * (numel() / std::max<std::int64_t>(size(0), 1));
  return v;
}

bool Tensor::requires_grad() const { return impl("requires_grad()").requires_grad || impl_->grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool on) {
  auto& i = impl("set_requires_grad()");
  GS_CHECK(!i.grad_fn, "set_requires_grad() on a non-leaf tensor ({}); detach() it first", describe());
  GS_CHECK(!on || i.dtype != DType::i32, "an i32 tensor ({}) cannot require grad", describe());
  i.requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  auto& i = impl("grad()");
  return i.grad ? Tensor(i.grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  auto& i = impl("set_grad()");
  GS_CHECK(!g.defined() || (g.shape() == i.shape && g.dtype() == i.dtype),
           "set_grad: a {} gradient for {}", g.describe(), describe());
  i.grad = g.impl_;
}

void Tensor::accumulate_grad(const Tensor& g) const {
  auto& i = *impl_;
  Tensor next = i.grad ? ops::add(Tensor(i.grad), g) : g;
  i.grad = next.impl_;
}

void Tensor::zero_grad() { impl("zero_grad()").grad.reset(); }

std::shared_ptr<Node> Tensor::grad_fn() const { return impl("grad_fn()").grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<Node> node) { impl("set_grad_fn()").grad_fn = std::move(node); }

Tensor Tensor::detach() const { return view(shape()); }

void Tensor::backward(const Tensor& cotangent, bool retain_graph) const {
  run_backward(*this, cotangent, retain_graph);
}

bool Tensor::same_storage(const Tensor& other) const {
  return impl_ && other.impl_ && impl_->storage == other.impl_->storage;
}

}  // namespace gs
