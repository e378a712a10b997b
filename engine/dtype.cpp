#include "engine/dtype.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace gs {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  GS_CHECK(dims.size() <= max_rank, "a shape has at most {} dimensions, got {}", max_rank, dims.size());
  for (auto d : dims) {
    GS_CHECK(d >= 0, "shape dimensions must be non-negative, got {}", d);
    dims_[rank_++] = d;
  }
}

Shape Shape::of(const std::int64_t* dims, int rank) {
  GS_CHECK(rank >= 0 && rank <= max_rank, "a shape has at most {} dimensions, got {}", max_rank, rank);
  Shape s;
  for (int i = 0; i < rank; ++i) {
    GS_CHECK(dims[i] >= 0, "shape dimensions must be non-negative, got {}", dims[i]);
    s.dims_[i] = dims[i];
  }
  s.rank_ = rank;
  return s;
}

std::int64_t Shape::operator[](int i) const {
  int j = i < 0 ? rank_ + i : i;
  GS_CHECK(j >= 0 && j < rank_, "dimension {} out of range for shape {}", i, str());
  return dims_[j];
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + "]";
}

}  // namespace gs
