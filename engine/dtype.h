#pragma once
// Element types, devices and shapes: the vocabulary every tensor, op and kernel shares.
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace gs {

// f32 and f64 carry arithmetic; i32 carries indices (labels, argmax, pooling winners) only.
enum class DType : std::uint8_t { f32, f64, i32 };
enum class Device : std::uint8_t { cpu, cuda };

constexpr std::size_t dtype_size(DType d) { return d == DType::f64 ? 8 : 4; }
const char* dtype_name(DType d);
const char* device_name(Device d);

// Shapes have at most four dimensions (N, C, H, W); unused trailing dims are absent, not 1.
class Shape {
 public:
  static constexpr int max_rank = 4;
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  static Shape of(const std::int64_t* dims, int rank);

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const;  // negative i counts from the end
  std::int64_t numel() const;
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string str() const;  // "[200, 784]"

 private:
  std::array<std::int64_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace gs
