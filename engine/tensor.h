#pragma once
// Tensor: a handle (shared, like torch.Tensor) to a dtype, a device, a shape of rank ≤ 4 and a
// contiguous row-major window into reference-counted storage. Views (reshape, rows) share the
// storage. A tensor that requires grad carries its gradient and the tape node that produced it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"

namespace gs {

struct Node;

struct Storage {
  Storage(Device device, std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  std::size_t bytes = 0;
  Device device;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage; defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu);
  // Copies host values in; converts them to dtype.
  static Tensor from(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                     Device device = Device::cpu);
  static Tensor from(const std::vector<float>& values, const Shape& shape, Device device = Device::cpu);
  static Tensor from(const std::vector<std::int32_t>& values, const Shape& shape,
                     Device device = Device::cpu);
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  DType dtype() const;
  Device device() const;
  std::int64_t numel() const { return shape().numel(); }
  int rank() const { return shape().rank(); }
  std::int64_t size(int dim) const { return shape()[dim]; }
  std::string describe() const;  // "f32[200, 784] on cpu"

  // Raw element pointers (device memory for cuda tensors).
  void* raw();
  const void* raw() const;
  // Typed host access; checks the dtype and that the tensor lives on the cpu.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;

  // Copies: to another device or dtype (a no-op copy is still a copy), and to host doubles.
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  std::vector<double> to_vector() const;
  std::vector<std::int32_t> to_int_vector() const;
  double item() const;  // the value of a one-element tensor
  void copy_(const Tensor& source);  // in place, same shape and dtype; not recorded on the tape

  // Views: share storage; not recorded on the tape (ops::reshape is the differentiable one).
  Tensor view(const Shape& shape) const;
  Tensor rows(std::int64_t begin, std::int64_t end) const;  // [begin, end) along dimension 0

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);  // leaves only
  Tensor grad() const;                               // undefined before the first backward
  void set_grad(const Tensor& grad);
  void accumulate_grad(const Tensor& grad) const;  // grad = grad + g (out of place)
  void zero_grad();                                  // drops the gradient (torch's set_to_none)
  std::shared_ptr<Node> grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> node);
  Tensor detach() const;  // same storage, off the tape
  // Reverse-mode from this tensor: a scalar, or any tensor with an explicit cotangent of its shape.
  void backward(const Tensor& cotangent = Tensor(), bool retain_graph = false) const;

  bool same_storage(const Tensor& other) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
  const TensorImpl& impl(const char* what) const;
  TensorImpl& impl(const char* what);
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
};

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<double>() { return DType::f64; }
template <>
constexpr DType dtype_of<std::int32_t>() { return DType::i32; }

template <class T>
T* Tensor::data() {
  GS_CHECK(dtype() == dtype_of<T>(), "data<{}>() on a {} tensor", dtype_name(dtype_of<T>()), describe());
  GS_CHECK(device() == Device::cpu, "data() reads host memory but the tensor is {}; copy it with .to(Device::cpu)",
           describe());
  return static_cast<T*>(raw());
}

template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

}  // namespace gs
