#pragma once
// The exception type alone, without fmt: CUDA sources include this (nvcc cannot compile fmt's
// compile-time format checks); everything else includes engine/error.h.
#include <stdexcept>
#include <string>

namespace gs {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace gs
